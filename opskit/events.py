"""The typed events long operations yield (build, ship, run, collect); the CLI renders them.

An operation takes one ``emit: EventFn`` and calls it with :class:`Event` objects; it never
prints. ``opskit.cli.render`` has one renderer for people (host-prefixed lines and byte bars
on stderr, a run's own output on stdout) and writes ``to_dict()`` for machines. Build events
(:mod:`opskit.images.events`) are events of this kind too, so one stream carries a whole
``run-remote``: build steps, preflight checks, bytes shipped, the run's log lines, its end.

Every event has ``kind`` (a stable string) and ``to_dict()``: ``{"event": kind, ...fields}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict:
        return {"event": self.kind, **asdict(self)}


EventFn = Callable[[Event], None]


def ignore(event: Event) -> None:
    """An ``emit`` that drops every event (an operation run without a listener)."""


@dataclass(frozen=True)
class Step(Event):
    """A step of a long operation on ``host``, in words (``preflight disk: 62G free ...``)."""

    kind: ClassVar[str] = "step"
    host: str
    message: str


@dataclass(frozen=True)
class Check(Event):
    """One preflight check's verdict on ``host``."""

    kind: ClassVar[str] = "check"
    host: str
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class TransferStarted(Event):
    """Bytes begin to travel to ``host`` (``total`` when known)."""

    kind: ClassVar[str] = "transfer_started"
    host: str
    what: str
    total: int | None = None


@dataclass(frozen=True)
class BytesSent(Event):
    kind: ClassVar[str] = "bytes_sent"
    host: str
    bytes: int


@dataclass(frozen=True)
class TransferDone(Event):
    kind: ClassVar[str] = "transfer_done"
    host: str
    what: str


@dataclass(frozen=True)
class LogLine(Event):
    """One line a run printed (its container's stdout and stderr)."""

    kind: ClassVar[str] = "log"
    host: str
    run_id: str
    line: str


@dataclass(frozen=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    host: str
    run_id: str
    container: str
