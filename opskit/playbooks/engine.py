"""Running plays over hosts, with Ansible's execution semantics where they serve.

- hosts run in parallel on a bounded pool (``forks``); one connection per host for the
  whole playbook, facts gathered on first use;
- a play's ``serial`` makes batches of hosts (the whole play runs batch by batch), a step's
  ``serial`` runs that one step a few hosts at a time (drain one GPU host, then the next);
- a host that fails a step (or cannot be reached: ``unreachable``) takes no further part;
  ``max_fail_percentage`` ends the play when more than that share of a batch has failed,
  ``any_errors_fatal`` at the first failure, and a batch in which every host failed ends it;
- the recap counts per host ``ok`` (ok and changed steps, as Ansible counts), ``changed``,
  ``failed``, ``skipped``, ``unreachable``, ``ignored``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.errors import HostError, OpskitError
from opskit.events import Event, EventFn
from opskit.playbooks import events as pe
from opskit.playbooks import expr
from opskit.playbooks.actionbase import (
    CHANGED,
    FAILED,
    OK,
    SKIPPED,
    UNREACHABLE,
    HostContext,
    Outcome,
)
from opskit.playbooks.hostfacts import FACT_NAMES
from opskit.playbooks.schema import Play, Step

DEFAULT_FORKS = 16
BUILTINS = ("host", "check_mode", "host_index", "host_count")
COUNTERS = ("ok", "changed", "failed", "skipped", "unreachable", "ignored")


@dataclass
class PlayOptions:
    check: bool = False
    forks: int = DEFAULT_FORKS
    base_dir: Path = field(default_factory=Path.cwd)
    connect: Callable[[Any], Any] | None = None  # HostSpec -> Transport (default: group.connect)


class StepScope(Mapping):
    """The names an expression sees on one host: item, step vars, registered results, play
    vars, facts (gathered on first read), host, check_mode."""

    def __init__(self, ctx: HostContext, layers: list[Mapping[str, Any]]):
        self.ctx = ctx
        self.layers = layers

    def __getitem__(self, name: str) -> Any:
        for layer in self.layers:
            if name in layer:
                return layer[name]
        if name == "host":
            return self.ctx.host
        if name == "check_mode":
            return self.ctx.check
        if name in ("host_index", "host_count"):
            active = getattr(self.ctx, "active", [self.ctx.host])
            return active.index(self.ctx.host) if name == "host_index" else len(active)
        if name in FACT_NAMES:
            return self.ctx.facts()[name]
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in BUILTINS or name in FACT_NAMES or any(
            name in layer for layer in self.layers)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for layer in self.layers:
            seen |= set(layer)
        return iter(sorted(seen | set(FACT_NAMES) | set(BUILTINS)))

    def __len__(self) -> int:
        return len(list(iter(self)))


def step_scope(ctx: HostContext) -> StepScope:
    """The scope of the step now running on ``ctx`` (set by the engine)."""
    return ctx.scope  # type: ignore[attr-defined]


@dataclass
class HostState:
    ctx: HostContext
    counts: dict = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    done: list[str] = field(default_factory=list)
    dead: bool = False


class Abort(Exception):
    """The play ends (max_fail_percentage, any_errors_fatal, a batch with no host left)."""


class PlaybookRun:
    def __init__(self, opts: PlayOptions, emit: EventFn):
        from opskit.hosts.group import connect

        self.opts = opts
        self.emit = emit
        self.connect = opts.connect or connect
        self.hosts: dict[str, HostState] = {}
        self.pool = ThreadPoolExecutor(max_workers=max(1, opts.forks))
        self.current = ("", "")
        self._group_seconds = 0.0

    # -- whole playbook ---------------------------------------------------------------------
    def run(self, plays: list[tuple[Play, list[Any]]]) -> dict[str, dict]:
        """Run (play, host specs) pairs in order; returns the recap {host: counters}."""
        try:
            for play, specs in plays:
                try:
                    self.run_play(play, specs)
                except Abort:
                    break
        except KeyboardInterrupt:
            self.emit(pe.Interrupted(self.current[0], self.current[1],
                                     {h: list(s.done) for h, s in self.hosts.items()}))
            raise
        finally:
            self.pool.shutdown(wait=False, cancel_futures=True)
            for state in self.hosts.values():
                state.ctx.close()
        return self.recap()

    def recap(self) -> dict[str, dict]:
        return {h: dict(s.counts) for h, s in self.hosts.items()}

    def _state(self, spec: Any) -> HostState:
        if spec.name not in self.hosts:
            self.hosts[spec.name] = HostState(HostContext(
                spec, check=self.opts.check, base_dir=self.opts.base_dir, connect=self.connect))
        return self.hosts[spec.name]

    # -- one play -----------------------------------------------------------------------------
    def run_play(self, play: Play, specs: list[Any]) -> None:
        states = [self._state(s) for s in specs]
        self.emit(pe.PlayStarted(play.name, play.where, [s.ctx.host for s in states], self.opts.check))
        for batch in batches(states, play.serial):
            self.run_batch(play, batch)

    def run_batch(self, play: Play, batch: list[HostState]) -> None:
        size = len(batch)
        for step in play.steps:
            alive = [s for s in batch if not s.dead]
            if not alive:
                raise self._abort(play, "every host of the batch failed", [])
            self.current = (play.name, step.name)
            for s in alive:  # host_index / host_count: among the hosts still in the play
                s.ctx.active = [a.ctx.host for a in alive]  # type: ignore[attr-defined]
            self.emit(pe.StepStarted(play.name, step.name, step.where, [s.ctx.host for s in alive]))
            for group in batches(alive, step.serial):
                failed_now = self._run_group(play, step, group)
                self._limits(play, batch, size, failed_now)

    def _limits(self, play: Play, batch: list[HostState], size: int, failed_now: int) -> None:
        failed = sum(1 for s in batch if s.dead)
        rest = [s.ctx.host for s in batch if not s.dead]
        if failed_now and play.any_errors_fatal:
            raise self._abort(play, "a host failed and the play says any_errors_fatal", rest)
        pct = play.max_fail_percentage
        if pct is not None and failed and 100.0 * failed / size > pct:
            raise self._abort(play, f"{failed} of {size} hosts failed, more than "
                              f"max_fail_percentage {pct}%", rest)

    def _abort(self, play: Play, reason: str, rest: list[str]) -> Abort:
        self.emit(pe.PlayAborted(play.name, reason, rest))
        return Abort(reason)

    def _run_group(self, play: Play, step: Step, group: list[HostState]) -> int:
        from opskit.playbooks.actions import ACTIONS

        action = ACTIONS[step.action]
        done: dict[str, Any] = {}
        if action.group is not None and step.loop is None and len(group) > 1:
            start = time.monotonic()
            done = run_grouped(play, step, [s.ctx for s in group], action, self.pool.map)
            self._group_seconds = time.monotonic() - start
        futures = [self.pool.submit(self._on_host, play, step, s, done.get(s.ctx.host)) for s in group]
        failed = 0
        for state, fut in zip(group, futures, strict=True):
            status, ignored = fut.result()
            if status in (FAILED, UNREACHABLE) and not ignored:
                state.dead = True
                failed += 1
        return failed

    # -- one step on one host ---------------------------------------------------------------------
    def _on_host(self, play: Play, step: Step, state: HostState, done: Any = None) -> tuple[str, bool]:
        start = time.monotonic() - (self._group_seconds if done is not None else 0.0)
        ctx = state.ctx
        try:
            if isinstance(done, HostError):
                raise done
            status, message, registered, items = done or run_step(play, step, ctx)
        except HostError as exc:
            status, message, registered, items = UNREACHABLE, exc.message, None, 0
            if exc.hint:
                message += f" ({exc.hint})"
        ignored = status == FAILED and step.ignore_errors
        if step.register and registered is not None:
            ctx.registered[step.register] = registered
        _count(state.counts, status, ignored)
        state.done.append(f"{step.name}: {status}")
        self.emit(pe.HostStep(ctx.host, step.name, status, message,
                              round(time.monotonic() - start, 3), ignored, items))
        return status, ignored


def _count(counts: dict, status: str, ignored: bool) -> None:
    if ignored:
        counts["ignored"] += 1
    elif status == CHANGED:
        counts["ok"] += 1
        counts["changed"] += 1
    else:
        counts[status] += 1


def batches(states: list[Any], serial: int | str | None) -> list[list[Any]]:
    """Ansible's batches: ``serial: N`` hosts at a time, ``'25%'`` of them (at least 1)."""
    if not serial or not states:
        return [states] if states else []
    if isinstance(serial, str):
        n = max(1, math.floor(len(states) * float(serial[:-1]) / 100))
    else:
        n = serial
    return [states[i:i + n] for i in range(0, len(states), n)]


def run_step(play: Play, step: Step, ctx: HostContext) -> tuple[str, str, dict | None, int]:
    """(status, message, registered value, loop items) of one step on one host. HostError
    (unreachable) propagates; every other error is this host's failure of this step."""
    from opskit.playbooks.actions import ACTIONS

    base = [step.vars, ctx.registered, play.vars]
    try:
        items = _loop_items(step, StepScope(ctx, base))
    except (expr.ExprError, OpskitError) as exc:
        return FAILED, f"loop: {exc}", None, 0
    outs: list[Outcome] = []
    for item in items:
        layers = ([{"item": item}] if step.loop is not None else []) + base
        outs.append(_one(step, ctx, StepScope(ctx, layers), ACTIONS[step.action]))
    if step.loop is None:
        return outs[0].status, outs[0].message, outs[0].registered(), 0
    status = _overall([o.status for o in outs])
    shown = _loop_message([o.message for o in outs if o.status != SKIPPED])
    registered = {"results": [o.registered() for o in outs], "changed": status == CHANGED,
                  "failed": status == FAILED, "skipped": status == SKIPPED, "status": status}
    return status, shown, registered, len(outs)


def _loop_message(messages: list[str]) -> str:
    """The loop's items' messages, each said once (with how many items said it), in order."""
    if not messages:
        return "all items skipped"
    counts: dict[str, int] = {}
    for m in messages:
        counts[m] = counts.get(m, 0) + 1
    return "; ".join(m if n == 1 else f"{m} ({n} items)" for m, n in counts.items())[:500]


def _overall(statuses: list[str]) -> str:
    for s in (FAILED, CHANGED, OK):
        if s in statuses:
            return s
    return SKIPPED


def _loop_items(step: Step, scope: StepScope) -> list[Any]:
    if step.loop is None:
        return [None]
    items = expr.render(step.loop, scope)
    if not isinstance(items, list):
        raise expr.ExprError(f"loop: expected a list, got {type(items).__name__}")
    return items


def _prepare(step: Step, scope: StepScope) -> Outcome | tuple[Any]:
    """``(args,)`` rendered for this host, or the Outcome that ends the step here
    (skipped by ``when``, or an expression that fails)."""
    try:
        if step.when is not None and not expr.evaluate(step.when, scope):
            return Outcome(SKIPPED, f"when: {step.when} is false")
        return (expr.render(step.args, scope),)
    except HostError:
        raise
    except (expr.ExprError, OpskitError) as exc:
        return Outcome(FAILED, f"{exc}")


def _failure(exc: Exception) -> Outcome:
    """An action's error as this host's failure (HostError is raised, never passed here)."""
    if isinstance(exc, OpskitError):
        return Outcome(FAILED, exc.message + (f" ({exc.hint})" if exc.hint else ""))
    return Outcome(FAILED, f"{type(exc).__name__}: {exc}")


def _one(step: Step, ctx: HostContext, scope: StepScope, action: Any) -> Outcome:
    prepared = _prepare(step, scope)
    if isinstance(prepared, Outcome):
        return prepared
    ctx.scope = scope  # type: ignore[attr-defined]  # for assert
    try:
        out = action.run(ctx, prepared[0])
    except HostError:
        raise
    except (OpskitError, OSError, ValueError) as exc:
        return _failure(exc)
    return _conditions(step, scope, out)


def _prepare_safe(step: Step, scope: StepScope) -> Any:
    try:
        return _prepare(step, scope)
    except HostError as exc:
        return exc


def run_grouped(play: Play, step: Step, ctxs: list[HostContext], action: Any,
                mapper: Callable[..., Any] = map) -> dict[str, Any]:
    """A step whose action works on many hosts at once (``ship``: the image's layers read
    once for all of them): hosts with the same rendered args go in one call. Returns, per
    host, (status, message, registered, 0) or the HostError that makes it unreachable."""
    scopes = {c.host: StepScope(c, [step.vars, c.registered, play.vars]) for c in ctxs}
    done: dict[str, Any] = {}
    buckets: dict[str, list[tuple[HostContext, Any]]] = {}
    prepared_all = list(mapper(lambda c: _prepare_safe(step, scopes[c.host]), ctxs))  # facts in parallel
    for c, prepared in zip(ctxs, prepared_all, strict=True):
        if isinstance(prepared, (Outcome, HostError)):
            done[c.host] = prepared
        else:
            key = json.dumps(prepared[0], sort_keys=True, default=str)
            buckets.setdefault(key, []).append((c, prepared[0]))
    for members in buckets.values():
        for (c, _args), out in zip(members, action.group(members), strict=True):
            done[c.host] = out if isinstance(out, (Outcome, HostError)) else _failure(out)
    result: dict[str, Any] = {}
    for host, out in done.items():
        if isinstance(out, HostError):
            result[host] = out
        else:
            out = _conditions(step, scopes[host], out) if out.status != SKIPPED else out
            result[host] = (out.status, out.message, out.registered(), 0)
    return result


def _conditions(step: Step, scope: StepScope, out: Outcome) -> Outcome:
    """``changed_when`` / ``failed_when``, reading the step's result as ``result`` (and under
    its register name)."""
    if step.changed_when is None and step.failed_when is None:
        return out
    reg = out.registered()
    names = {"result": reg, **({step.register: reg} if step.register else {})}
    inner = StepScope(scope.ctx, [names, *scope.layers])
    try:
        if step.failed_when is not None:
            failed = bool(expr.evaluate(step.failed_when, inner))
            out = Outcome(FAILED if failed else (CHANGED if out.status == CHANGED else OK),
                          out.message + (f" (failed_when: {step.failed_when})" if failed else ""),
                          out.data)
        if step.changed_when is not None and out.status in (OK, CHANGED):
            changed = bool(expr.evaluate(step.changed_when, inner))
            out = Outcome(CHANGED if changed else OK, out.message, out.data)
    except expr.ExprError as exc:
        return Outcome(FAILED, f"changed_when/failed_when: {exc}", out.data)
    return out


def any_failed(recap: dict[str, dict]) -> bool:
    return any(c["failed"] or c["unreachable"] for c in recap.values())


def collect_events() -> tuple[list[Event], EventFn]:
    """A list and an ``emit`` that appends to it (tests, --json)."""
    got: list[Event] = []
    return got, got.append
