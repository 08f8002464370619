"""Playbook files -> plays and steps, checked before anything runs.

A playbook is a list of plays (or one play as a mapping). A play:
``name, hosts, vars, serial, max_fail_percentage, any_errors_fatal, steps`` (``tasks`` is
accepted for ``steps``). A step has exactly one action key (see ``opskit.playbooks.actions``)
and any of ``name, when, register, loop, serial, ignore_errors, changed_when, failed_when,
vars``; ``include: FILE`` (a step) splices in that file's steps, ``include: FILE`` (a play)
that file's plays. Every error names the file, the line and the key at fault, and the names
a ``when:`` or ``{{ }}`` reads are checked against facts, vars, registered results and
``item`` before any host is touched.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.errors import ConfigError
from opskit.playbooks import expr
from opskit.playbooks.hostfacts import FACT_NAMES
from opskit.playbooks.yamlines import LineDict, load

PLAY_KEYS = ("name", "hosts", "vars", "serial", "max_fail_percentage", "any_errors_fatal",
             "steps", "tasks", "include")
STEP_KEYS = ("name", "when", "register", "loop", "serial", "ignore_errors", "changed_when",
             "failed_when", "vars")
BUILTIN_NAMES = ("item", "host", "check_mode", "host_index", "host_count")
MAX_INCLUDE_DEPTH = 8


@dataclass
class Step:
    action: str
    args: Any
    name: str
    where: str  # "FILE:LINE"
    when: str | None = None
    register: str | None = None
    loop: Any = None
    serial: int | str | None = None
    ignore_errors: bool = False
    changed_when: str | None = None
    failed_when: str | None = None
    vars: dict = field(default_factory=dict)


@dataclass
class Play:
    name: str
    where: str
    hosts: list[str] | None
    vars: dict
    serial: int | str | None
    max_fail_percentage: float | None
    any_errors_fatal: bool
    steps: list[Step]


def _err(where: str, message: str, hint: str) -> ConfigError:
    return ConfigError(f"{where}: {message}", hint)


def _unknown_key(where: str, what: str, key: str, known: Any) -> ConfigError:
    close = difflib.get_close_matches(key, list(known), n=1)
    return _err(where, f"{what}: unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
                f"known keys: {', '.join(sorted(known))}")


def load_playbook(path: str | Path, extra_vars: dict | None = None) -> list[Play]:
    """Read, include and check a playbook file. Raises ConfigError naming file:line:key.
    ``extra_vars`` (``--var KEY=VALUE``) win over every play's own vars."""
    plays = _plays(Path(path), [])
    for play in plays:
        play.vars.update(extra_vars or {})
        check_names(play)
    return plays


def _plays(path: Path, stack: list[Path]) -> list[Play]:
    data = load(path)
    if isinstance(data, LineDict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise _err(str(path), "a playbook is a list of plays (or one play)",
                   "start the file with '- name: ...' and 'steps:'")
    plays: list[Play] = []
    for entry in data:
        if not isinstance(entry, LineDict):
            raise _err(str(path), f"a play must be a mapping, not {type(entry).__name__}",
                       "each play has name, hosts and steps")
        if "include" in entry:
            plays += _plays(_included(path, entry, stack), [*stack, path])
        else:
            plays.append(_play(path, entry, stack))
    return plays


def _included(path: Path, entry: LineDict, stack: list[Path]) -> Path:
    where = f"{path}:{entry.line_of('include')}"
    target = entry["include"]
    if not isinstance(target, str) or not target:
        raise _err(where, "key 'include': expected a file name", "include: other.yaml")
    extra = set(entry) - {"include", "name", "vars", "when"}
    if extra:
        raise _unknown_key(where, "include", sorted(extra)[0], ["include", "name", "vars", "when"])
    full = (path.parent / target).resolve()
    if full in [p.resolve() for p in (*stack, path)] or len(stack) >= MAX_INCLUDE_DEPTH:
        raise _err(where, f"key 'include': {target} includes itself (directly or not)",
                   "remove the loop of includes")
    if not full.is_file():
        raise _err(where, f"key 'include': no such file {target}",
                   f"paths are relative to {path.parent}")
    return full


def _play(path: Path, d: LineDict, stack: list[Path]) -> Play:
    where = f"{path}:{d.line}"
    for key in d:
        if key not in PLAY_KEYS:
            raise _unknown_key(f"{path}:{d.line_of(key)}", "play", key, PLAY_KEYS[:-1])
    if "steps" in d and "tasks" in d:
        raise _err(where, "play: give 'steps' or 'tasks', not both", "keep 'steps'")
    raw_steps = d.get("steps", d.get("tasks"))
    if not isinstance(raw_steps, list) or not raw_steps:
        raise _err(where, "play: key 'steps' missing or empty", "list the play's steps under 'steps:'")
    hosts = d.get("hosts")
    if isinstance(hosts, str):
        hosts = [h.strip() for h in hosts.split(",") if h.strip()]
    if hosts is not None and not (isinstance(hosts, list) and all(isinstance(h, str) for h in hosts)):
        raise _err(f"{path}:{d.line_of('hosts')}", "key 'hosts': expected a name, @group or a list",
                   "hosts: '@gpus' or hosts: [gpu1, gpu2]")
    pct = d.get("max_fail_percentage")
    if pct is not None and (isinstance(pct, bool) or not isinstance(pct, (int, float)) or not 0 <= pct <= 100):
        raise _err(f"{path}:{d.line_of('max_fail_percentage')}",
                   "key 'max_fail_percentage': expected a number from 0 to 100", "max_fail_percentage: 25")
    return Play(
        name=str(d.get("name") or path.stem), where=where, hosts=hosts,
        vars=_mapping(path, d, "vars"), serial=_serial(f"{path}:{d.line_of('serial')}", d.get("serial")),
        max_fail_percentage=pct, any_errors_fatal=_bool(path, d, "any_errors_fatal"),
        steps=_steps(path, raw_steps, stack),
    )


def _mapping(path: Path, d: LineDict, key: str) -> dict:
    value = d.get(key) or {}
    if not isinstance(value, dict):
        raise _err(f"{path}:{d.line_of(key)}", f"key {key!r}: expected a mapping", f"{key}: {{name: value}}")
    return dict(value)


def _bool(path: Path, d: LineDict, key: str) -> bool:
    value = d.get(key, False)
    if not isinstance(value, bool):
        raise _err(f"{path}:{d.line_of(key)}", f"key {key!r}: expected true or false", f"{key}: true")
    return value


def _serial(where: str, value: Any) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = float(value[:-1])
        except ValueError:
            pct = -1.0
        if 0 < pct <= 100:
            return value
    raise _err(where, f"key 'serial': {value!r} is not a batch size",
               "serial: 1 (hosts at a time) or serial: '25%'")


def _steps(path: Path, raw: list, stack: list[Path]) -> list[Step]:
    steps: list[Step] = []
    for item in raw:
        if not isinstance(item, LineDict):
            raise _err(str(path), f"a step must be a mapping, not {item!r}",
                       "each step is '- name: ...' with one action such as command: [...]")
        if "include" in item:
            steps += _include_steps(path, item, stack)
        else:
            steps.append(_step(path, item))
    return steps


def _include_steps(path: Path, item: LineDict, stack: list[Path]) -> list[Step]:
    target = _included(path, item, stack)
    data = load(target)
    if isinstance(data, LineDict) and "steps" in data:
        data = data["steps"]
    if not isinstance(data, list):
        raise _err(str(target), "an included file is a list of steps", "- name: ...\n  command: [...]")
    steps = _steps(target, data, [*stack, path])
    extra_vars, when = dict(item.get("vars") or {}), item.get("when")
    for s in steps:
        s.vars = {**extra_vars, **s.vars}
        if when:
            s.when = f"({when}) and ({s.when})" if s.when else str(when)
    return steps


def _step(path: Path, d: LineDict) -> Step:
    from opskit.playbooks.actions import ACTIONS

    actions = [k for k in d if k in ACTIONS]
    for key in d:
        if key not in STEP_KEYS and key not in ACTIONS:
            raise _unknown_key(f"{path}:{d.line_of(key)}", "step", key, [*STEP_KEYS, *ACTIONS])
    if len(actions) != 1:
        raise _err(f"{path}:{d.line}", f"step {d.get('name', '')!r}: " + (
            "no action" if not actions else f"several actions ({', '.join(actions)})"),
            f"give exactly one of: {', '.join(ACTIONS)}")
    action = actions[0]
    where = f"{path}:{d.line_of(action)}"
    args = ACTIONS[action].check(d[action], where)
    for key in ("when", "changed_when", "failed_when", "register"):
        if key in d and not isinstance(d[key], (str, bool)):
            raise _err(f"{path}:{d.line_of(key)}", f"key {key!r}: expected text", f"{key}: gpu_count > 0")
    reg = d.get("register")
    if reg is not None and not (isinstance(reg, str) and reg.isidentifier()):
        raise _err(f"{path}:{d.line_of('register')}", f"key 'register': {reg!r} is not a name",
                   "register: result")
    return Step(
        action=action, args=args, name=str(d.get("name") or f"{action} ({path.name}:{d.line})"),
        where=f"{path}:{d.line}", when=_text(d.get("when")), register=reg, loop=d.get("loop"),
        serial=_serial(f"{path}:{d.line_of('serial')}", d.get("serial")),
        ignore_errors=_bool(path, d, "ignore_errors"), changed_when=_text(d.get("changed_when")),
        failed_when=_text(d.get("failed_when")), vars=_mapping(path, d, "vars"),
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "True" if value else "False"
    return value


def check_names(play: Play) -> None:
    """Every name a play's expressions read exists (fact, var, register, item, host)."""
    known = set(FACT_NAMES) | set(BUILTIN_NAMES) | set(play.vars)
    for step in play.steps:
        scope = known | set(step.vars)
        texts = [(k, getattr(step, k)) for k in ("when", "changed_when", "failed_when")]
        for key, text in texts:
            if text is not None:
                extra = {"result", step.register} if key != "when" and step.register else \
                    ({"result"} if key != "when" else set())
                _check(step, key, expr_names(step, key, text), scope | extra)
        _check(step, "loop", _value_names(step, "loop", step.loop), scope)
        _check(step, step.action, _value_names(step, step.action, step.args),
               scope | ({"item"} if step.loop is not None else set()))
        if step.register:
            known.add(step.register)


def _value_names(step: Step, key: str, value: Any) -> set[str]:
    try:
        return expr.value_names(value)
    except expr.ExprError as exc:
        raise _err(step.where, f"step {step.name!r}: key {key!r}: {exc}",
                   "write {{ name }} or {{ expression }} inside text") from None


def expr_names(step: Step, key: str, text: str) -> set[str]:
    try:
        return expr.names(text)
    except expr.ExprError as exc:
        raise _err(step.where, f"step {step.name!r}: key {key!r}: {exc}",
                   "expressions are Python-like: gpu_count >= 1 and cuda_version") from None


def _check(step: Step, key: str, used: set[str], scope: set[str]) -> None:
    for name in sorted(used - scope):
        close = difflib.get_close_matches(name, list(scope), n=2)
        raise _err(step.where, f"step {step.name!r}: key {key!r}: unknown fact or variable {name!r}"
                   + (f" (did you mean {' or '.join(close)}?)" if close else ""),
                   "facts: " + ", ".join(sorted(FACT_NAMES)) + "; or define it under vars: "
                   "or register: it in an earlier step")
