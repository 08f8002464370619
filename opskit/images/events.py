"""Typed events of an image build, and the pure parser of docker's legacy-builder JSON stream.

``client.api.build(..., decode=True)`` yields dicts such as ``{"stream": "Step 3/9 : COPY ..."}``,
``{"stream": " ---> Using cache\\n"}``, ``{"stream": " ---> 2595c6b5c56a\\n"}``,
``{"aux": {"ID": "sha256:..."}}`` and ``{"error": ..., "errorDetail": ...}``.
:class:`StreamParser` turns them into :class:`StepStarted`, :class:`StepOutput`,
:class:`StepDone` and :class:`BuildFailed` events. It never prints and never talks to an engine.

Step boundaries come from the stream's structure, never from text a step prints: the engine
writes a step header as a chunk of its own (``"Step 3/9 : COPY ..."``, then ``"\n"``), and a
``RUN`` step's output comes between the engine's own ``" ---> Running in <id>\n"`` and
``"Removing intermediate container <id>\n"`` chunks. Everything in between is output, whatever
it says; a header is taken only outside a container's output, as a whole chunk, numbered as the
next step of the same total. (A RUN step that knows its own container id can still print the
closing chunk; the image id always comes from the engine's ``aux`` record, never from text.)

Every event is an :class:`opskit.events.Event`: ``kind`` (a stable string) and ``to_dict()``
(what ``--json`` prints, one object per line, with ``"event": kind``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from opskit.events import Event  # the one event base of every long operation

_STEP = re.compile(r"Step (\d+)/(\d+) : (.*?)\n?", re.S)
_RUNNING = re.compile(r" ---> Running in ([0-9a-f]{12,64})\n?")
_ARROW = re.compile(r"^ ---> (.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TAIL_LINES = 20
_STDERR_ON, _STDERR_OFF = "\x1b[91m", "\x1b[0m"

# Step status values.
CACHED = "cached"  # the engine reused a layer from its cache
BUILT = "built"  # the step ran in this build
FROM = "from"  # a FROM step: an existing image, neither cached nor built
META = "meta"  # an ARG before the first FROM: no image at all


@dataclass(frozen=True)
class PhaseStarted(Event):
    """A phase of ``build_image`` began: wheelhouse, deps, context, image."""

    kind: ClassVar[str] = "phase_started"
    phase: str
    detail: str = ""


@dataclass(frozen=True)
class PhaseDone(Event):
    kind: ClassVar[str] = "phase_done"
    phase: str
    seconds: float
    reused: bool = False
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Notice(Event):
    """Something the user should know (a large context, an ignored requirement)."""

    kind: ClassVar[str] = "warning"
    message: str


@dataclass(frozen=True)
class StepStarted(Event):
    kind: ClassVar[str] = "step_started"
    build: str  # "deps" or "image"
    index: int
    total: int
    instruction: str


@dataclass(frozen=True)
class StepOutput(Event):
    kind: ClassVar[str] = "step_output"
    build: str
    index: int
    line: str


@dataclass(frozen=True)
class StepDone(Event):
    kind: ClassVar[str] = "step_done"
    build: str
    index: int
    total: int
    instruction: str
    status: str  # CACHED, BUILT, FROM or META
    seconds: float
    image_id: str | None  # the short id the engine printed after the step

    @property
    def cached(self) -> bool:
        return self.status == CACHED


@dataclass(frozen=True)
class BuildFailed(Event):
    kind: ClassVar[str] = "build_failed"
    build: str
    index: int | None
    instruction: str | None
    message: str
    tail: list[str]


@dataclass(frozen=True)
class BuildSucceeded(Event):
    kind: ClassVar[str] = "build_succeeded"
    build: str
    image_id: str
    seconds: float


def clean_line(text: str) -> str:
    """A stream line without ANSI colours (the engine paints a step's stderr red)."""
    return _ANSI.sub("", text).rstrip("\r\n")


@dataclass
class _Step:
    index: int
    total: int
    instruction: str
    started: float
    status: str = BUILT
    image_id: str | None = None
    output: list[str] = field(default_factory=list)


class StreamParser:
    """Feed decoded chunks with :meth:`feed`; call :meth:`finish` at the end of the stream.

    ``clock`` is injectable so unit tests get exact step times.
    """

    def __init__(self, build: str = "image", clock: Callable[[], float] = time.monotonic):
        self.build = build
        self.clock = clock
        self.started = clock()
        self.image_id: str | None = None
        self.failed: BuildFailed | None = None
        self.steps: list[StepDone] = []
        self._step: _Step | None = None
        self._container: str | None = None  # a step's container whose output is streaming
        self._output = ""  # that output's unfinished last line (stdout)
        self._errors = ""  # and stderr's
        self._last_index = 0
        self._total: int | None = None
        self._tail: list[str] = []
        self._seen_from = False

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        if "error" in chunk or "errorDetail" in chunk:
            events.extend(self._end_container())
            detail = chunk.get("errorDetail") or {}
            message = str(detail.get("message") or chunk.get("error") or "unknown error")
            events.append(self._fail(message))
            return events
        aux = chunk.get("aux")
        if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
            self.image_id = aux["ID"]
        text = chunk.get("stream")
        if isinstance(text, str):
            events.extend(self._stream(text))
        status = chunk.get("status")
        if isinstance(status, str) and self._step is not None:  # a pull during FROM
            events.append(self._output_line(status))
        return events

    def finish(self) -> list[Event]:
        """End of stream: close the last step; a stream that just stops is a failure."""
        events = self._end_container()
        if self.failed is not None:
            return events
        events.extend(self._close_step())
        if self.image_id is None:
            events.append(self._fail("the engine ended the build without an image id"))
        else:
            events.append(BuildSucceeded(self.build, self.image_id, round(self.clock() - self.started, 4)))
        return events

    def _stream(self, text: str) -> list[Event]:
        if self._container is not None:
            if text == f"Removing intermediate container {self._container[:12]}\n":
                return self._end_container()
            return self._container_output(text)
        header = _STEP.fullmatch(text)
        if header and self._is_next(int(header.group(1)), int(header.group(2))):
            return self._start_step(int(header.group(1)), int(header.group(2)), header.group(3))
        running = _RUNNING.fullmatch(text)
        if running and self._step is not None:
            self._container = running.group(1)
            return []
        events: list[Event] = []
        for line in text.split("\n"):
            events.extend(self._engine_line(clean_line(line)))
        return events

    def _is_next(self, index: int, total: int) -> bool:
        return index == self._last_index + 1 and self._total in (None, total)

    def _start_step(self, index: int, total: int, instruction: str) -> list[Event]:
        events = self._close_step()
        self._last_index, self._total = index, total
        self._step = _Step(index, total, instruction, self.clock())
        if instruction.upper().startswith("FROM "):
            self._step.status = FROM
            self._seen_from = True
        elif not self._seen_from:
            self._step.status = META
        events.append(StepStarted(self.build, index, total, instruction))
        return events

    def _container_output(self, text: str) -> list[Event]:
        """One chunk of a step's output; stdout and stderr keep their own unfinished lines
        (the engine wraps each stderr chunk in red: ``\\x1b[91m ... \\x1b[0m``)."""
        if text.startswith(_STDERR_ON) and text.endswith(_STDERR_OFF):
            self._errors += text[len(_STDERR_ON):len(text) - len(_STDERR_OFF)]
            *lines, self._errors = self._errors.split("\n")
        else:
            self._output += text
            *lines, self._output = self._output.split("\n")
        return [e for line in lines for e in self._output_lines(line)]

    def _end_container(self) -> list[Event]:
        rest = [self._output, self._errors]
        self._output, self._errors, self._container = "", "", None
        return [e for line in rest for e in self._output_lines(line)]

    def _output_lines(self, raw: str) -> list[Event]:
        line = clean_line(raw)
        return [self._output_line(line)] if line.strip() else []

    def _engine_line(self, line: str) -> list[Event]:
        """One line the engine wrote outside a step's container output."""
        arrow = _ARROW.match(line)
        if arrow and self._step is not None:
            value = arrow.group(1).strip()
            if value == "Using cache":
                self._step.status = CACHED
            elif not value.startswith("Running in"):
                self._step.image_id = value or None
            return []
        if line.startswith(("Successfully built ", "Successfully tagged ",
                            "Removing intermediate container ")) or not line.strip():
            return []
        return [self._output_line(line)]

    def _output_line(self, raw: str) -> StepOutput:
        line = clean_line(raw)
        self._tail = (self._tail + [line])[-_TAIL_LINES:]
        if self._step is None:
            return StepOutput(self.build, 0, line)
        self._step.output.append(line)
        return StepOutput(self.build, self._step.index, line)

    def _close_step(self) -> list[Event]:
        step, self._step = self._step, None
        if step is None:
            return []
        done = StepDone(
            self.build, step.index, step.total, step.instruction, step.status,
            round(self.clock() - step.started, 4), step.image_id,
        )
        self.steps.append(done)
        self._tail = []
        return [done]

    def _fail(self, message: str) -> BuildFailed:
        step = self._step
        self.failed = BuildFailed(
            self.build,
            step.index if step else None,
            step.instruction if step else None,
            message,
            list(step.output[-_TAIL_LINES:] if step else self._tail),
        )
        self._step = None
        return self.failed


def parse_stream(
    chunks: Iterable[dict[str, Any]],
    build: str = "image",
    clock: Callable[[], float] = time.monotonic,
    *,
    parser: StreamParser | None = None,
) -> Iterator[Event]:
    """All events of a finished or live stream, in order (the last is succeeded or failed).

    Reading stops at the first failure. Pass ``parser`` to read its steps and image id after.
    """
    parser = parser or StreamParser(build, clock)
    for chunk in chunks:
        yield from parser.feed(chunk)
        if parser.failed is not None:
            return
    yield from parser.finish()
