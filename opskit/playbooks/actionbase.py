"""What every step type shares: its outcome, the per-host context, argument checks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.errors import ConfigError
from opskit.hosts.transport import Transport

OK, CHANGED, SKIPPED, FAILED, UNREACHABLE = "ok", "changed", "skipped", "failed", "unreachable"


@dataclass
class Outcome:
    """One step on one host (one loop item): ``status`` is ok, changed, skipped or failed;
    ``message`` says what was done (in check mode: what would be); ``data`` is what
    ``register`` keeps (besides status, changed, failed, skipped, msg)."""

    status: str
    message: str = ""
    data: dict = field(default_factory=dict)

    def registered(self) -> dict:
        return {**self.data, "status": self.status, "changed": self.status == CHANGED,
                "failed": self.status == FAILED, "skipped": self.status == SKIPPED,
                "msg": self.message}


class HostContext:
    """One host during a play: its transport (connected on first use, kept for the play),
    its facts (gathered on first use), its variables, and whether this is a dry run."""

    def __init__(self, spec: Any, *, check: bool, base_dir: Path,
                 connect: Callable[[Any], Transport]):
        self.spec = spec
        self.host: str = spec.name
        self.check = check
        self.base_dir = base_dir
        self._connect = connect
        self._transport: Transport | None = None
        self._facts: dict | None = None
        self.registered: dict[str, Any] = {}
        self.lock = threading.Lock()

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = self._connect(self.spec)
        return self._transport

    def facts(self, refresh: bool = False) -> dict:
        if self._facts is None or refresh:
            from opskit.playbooks.hostfacts import gather

            self._facts = gather(self.transport)
        return self._facts

    @property
    def has_facts(self) -> bool:
        return self._facts is not None

    def local_path(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def close(self) -> None:
        if self._transport is not None:
            try:
                self._transport.close()
            except Exception:  # noqa: BLE001, S110 - the host's results are already recorded
                pass
            self._transport = None


@dataclass(frozen=True)
class Action:
    """A step type: ``check(args, where)`` validates the YAML before the play runs (returns
    the args in their canonical shape), ``run(ctx, args)`` does it on one host (``args``
    already rendered; in check mode it changes nothing and says what it would do)."""

    name: str
    check: Callable[[Any, str], Any]
    run: Callable[[HostContext, Any], Outcome]
    help: str
    # Many hosts with the same args at once: [(ctx, args)] -> one Outcome, HostError or other
    # exception per host, in order (ship reads an image's layers once for all of them).
    group: Callable[[list[tuple[HostContext, Any]]], list[Any]] | None = None


def bad(where: str, action: str, message: str, example: str) -> ConfigError:
    return ConfigError(f"{where}: {action}: {message}", f"for example: {action}: {example}")


def mapping_args(args: Any, where: str, action: str, *, required: tuple[str, ...],
                 optional: tuple[str, ...], example: str) -> dict:
    if not isinstance(args, dict):
        raise bad(where, action, f"expected a mapping, got {type(args).__name__}", example)
    for key in args:
        if key not in required and key not in optional:
            known = ", ".join((*required, *optional))
            raise ConfigError(f"{where}: {action}: unknown key {key!r}", f"known keys: {known}")
    for key in required:
        if key not in args:
            raise bad(where, action, f"key {key!r} missing", example)
    return dict(args)


def no_args(args: Any, where: str, action: str) -> dict:
    if args not in (None, {}, True):
        if isinstance(args, dict):
            return args
        raise bad(where, action, "takes no arguments", "{}")
    return {}


def names_or_template(value: Any) -> bool:
    """A list of non-empty strings, or a ``{{ }}`` template (a list from vars, checked when run)."""
    if isinstance(value, str):
        return "{{" in value
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)
