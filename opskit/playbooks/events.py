"""The events of a play run (one stream: rendered for people, written as JSON Lines)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from opskit.events import Event


@dataclass(frozen=True)
class PlayStarted(Event):
    kind: ClassVar[str] = "play_started"
    play: str
    where: str
    hosts: list[str]
    check: bool


@dataclass(frozen=True)
class StepStarted(Event):
    kind: ClassVar[str] = "step_started"
    play: str
    step: str
    where: str
    hosts: list[str]


@dataclass(frozen=True)
class HostStep(Event):
    """One step's outcome on one host (``item`` when the step loops)."""

    kind: ClassVar[str] = "host_step"
    host: str
    step: str
    status: str  # ok | changed | skipped | failed | unreachable
    message: str
    seconds: float
    ignored: bool = False
    items: int = 0


@dataclass(frozen=True)
class PlayAborted(Event):
    kind: ClassVar[str] = "play_aborted"
    play: str
    reason: str
    hosts_not_run: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Interrupted(Event):
    """Ctrl-C: which steps had finished on which host."""

    kind: ClassVar[str] = "interrupted"
    play: str
    step: str
    done: dict


@dataclass(frozen=True)
class Recap(Event):
    kind: ClassVar[str] = "recap"
    hosts: dict  # host -> {ok, changed, failed, skipped, unreachable, ignored}
    check: bool
    failed: bool
