"""The legacy builder's JSON stream -> typed events (streams captured from Docker 20.10)."""

from __future__ import annotations

import itertools

from opskit.images.events import (
    BUILT,
    CACHED,
    FROM,
    META,
    BuildFailed,
    BuildSucceeded,
    StepDone,
    StepOutput,
    StepStarted,
    StreamParser,
    clean_line,
    parse_stream,
)


def _s(text: str) -> dict:
    return {"stream": text}


# A rebuild after a one-line change in src/ (captured; ids as the engine printed them).
CODE_CHANGE = [
    _s("Step 1/8 : ARG BASE_IMAGE=opskit-base:bookworm"), _s("\n"),
    _s("Step 2/8 : FROM ${BASE_IMAGE}"), _s("\n"), _s(" ---> 9e42238326ad\n"),
    _s("Step 3/8 : COPY --from=deps /opt/venv /opt/venv"), _s("\n"),
    _s(" ---> Using cache\n"), _s(" ---> 761b429d956e\n"),
    _s("Step 4/8 : WORKDIR /app"), _s("\n"), _s(" ---> Using cache\n"), _s(" ---> cd45e9c1c33a\n"),
    _s("Step 5/8 : COPY ./src /app/src"), _s("\n"), _s(" ---> 2595c6b5c56a\n"),
    _s("Step 6/8 : COPY ./test /app/test"), _s("\n"), _s(" ---> 48210e88534e\n"),
    _s('Step 7/8 : ENTRYPOINT ["python", "-m", "pkg"]'), _s("\n"),
    _s(" ---> Running in b98ff1eb561c\n"), _s("Removing intermediate container b98ff1eb561c\n"),
    _s(" ---> c4b28a3fe464\n"),
    _s("Step 8/8 : LABEL org.opskit.x=1"), _s("\n"), _s(" ---> Running in a72b51581233\n"),
    _s("Removing intermediate container a72b51581233\n"), _s(" ---> 3e7105f6dab8\n"),
    {"aux": {"ID": "sha256:3e7105f6dab8ed07b741d3705e800314e1fec245d492518b01796505f3fa4152"}},
    _s("Successfully built 3e7105f6dab8\n"), _s("Successfully tagged opskit-proto-main:latest\n"),
]

# A RUN step that fails (stderr painted red by the engine).
FAILED = [
    _s("Step 1/3 : FROM opskit-base:bookworm"), _s("\n"), _s(" ---> 9e42238326ad\n"),
    _s("Step 2/3 : RUN echo hello && echo to-stderr >&2 && exit 3"), _s("\n"),
    _s(" ---> Running in 077d0db8724f\n"), _s("hello\n"), _s("\x1b[91mto-stderr\n\x1b[0m"),
    _s("Removing intermediate container 077d0db8724f\n"),
    {"errorDetail": {"code": 3, "message": "The command '/bin/sh -c echo hello && echo to-stderr "
                     ">&2 && exit 3' returned a non-zero code: 3"},
     "error": "The command '/bin/sh -c echo hello && echo to-stderr >&2 && exit 3' returned a "
              "non-zero code: 3"},
]

# FROM an image the engine lacks, with no registry reachable.
MISSING_BASE = [
    _s("Step 1/2 : FROM opskit-nonexistent-base:bookworm"), _s("\n"),
    {"errorDetail": {"message": "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup "
                     "registry-1.docker.io: no such host"},
     "error": "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: "
              "no such host"},
]


def _clock():
    ticks = itertools.count()
    return lambda: float(next(ticks))


def test_code_change_marks_cached_and_built_steps() -> None:
    events = list(parse_stream(CODE_CHANGE, clock=_clock()))
    done = [e for e in events if isinstance(e, StepDone)]
    assert [(d.index, d.status) for d in done] == [
        (1, META), (2, FROM), (3, CACHED), (4, CACHED), (5, BUILT), (6, BUILT), (7, BUILT),
        (8, BUILT),
    ]
    assert done[1].image_id == "9e42238326ad"
    assert done[2].image_id == "761b429d956e" and done[2].cached
    assert done[4].instruction == "COPY ./src /app/src"
    assert done[4].image_id == "2595c6b5c56a"
    assert done[6].image_id == "c4b28a3fe464"  # "Running in" is not the result
    assert all(d.seconds > 0 for d in done)
    last = events[-1]
    assert isinstance(last, BuildSucceeded)
    assert last.image_id.startswith("sha256:3e7105f6dab8")
    # No output lines: "Removing intermediate container" and "Successfully ..." are not output.
    assert not [e for e in events if isinstance(e, StepOutput)]


def test_started_events_precede_done_and_carry_total() -> None:
    events = list(parse_stream(CODE_CHANGE, clock=_clock()))
    started = [e for e in events if isinstance(e, StepStarted)]
    assert [s.index for s in started] == list(range(1, 9))
    assert {s.total for s in started} == {8}
    first_done = next(i for i, e in enumerate(events) if isinstance(e, StepDone))
    assert isinstance(events[first_done - 1], StepStarted)


def test_failed_step_is_named_with_its_output_tail() -> None:
    events = list(parse_stream(FAILED, clock=_clock()))
    failed = events[-1]
    assert isinstance(failed, BuildFailed)
    assert failed.index == 2
    assert failed.instruction.startswith("RUN echo hello")
    assert "returned a non-zero code: 3" in failed.message
    assert failed.tail == ["hello", "to-stderr"]  # colours removed
    outputs = [e.line for e in events if isinstance(e, StepOutput)]
    assert outputs == ["hello", "to-stderr"]
    assert not [e for e in events if isinstance(e, BuildSucceeded)]


def test_missing_base_fails_at_the_from_step() -> None:
    events = list(parse_stream(MISSING_BASE, clock=_clock()))
    failed = events[-1]
    assert isinstance(failed, BuildFailed)
    assert failed.index == 1 and failed.instruction.startswith("FROM opskit-nonexistent-base")
    assert "registry-1.docker.io" in failed.message


# A RUN step printing a fake step header and arrow, stderr first, a last line without a
# newline (captured from Docker 20.10's legacy builder, chunk by chunk).
FORGED = [
    _s("Step 1/4 : FROM opskit-base:bookworm"), _s("\n"), _s(" ---> bd6418eb03d3\n"),
    _s("Step 2/4 : ARG X=1"), _s("\n"), _s(" ---> Running in 964c0798fb8d\n"),
    _s("Removing intermediate container 964c0798fb8d\n"), _s(" ---> 8c889834b624\n"),
    _s("Step 3/4 : RUN printf 'Step 3/4 : COPY fake\\n' && printf ' ---> Using cache\\n' && "
       "echo out && echo err >&2 && printf 'no newline'"), _s("\n"),
    _s(" ---> Running in 8fe3fcbaf247\n"), _s("\x1b[91merr\n\x1b[0m"),
    _s("Step 3/4 : COPY fake\n ---> Using cache\nout\nno newline"),
    _s("Removing intermediate container 8fe3fcbaf247\n"), _s(" ---> d4f1513be0dd\n"),
    _s("Step 4/4 : RUN echo two"), _s("\n"), _s(" ---> Running in e0ab5fde3b42\n"),
    _s("Step 4/4 : RUN fake"), _s("\n"), _s(" ---> 000000000000\n"), _s("two\n"),
    _s("Removing intermediate container e0ab5fde3b42\n"), _s(" ---> 10e79af86408\n"),
    {"aux": {"ID": "sha256:10e79af86408ef16d350bee424f7105f0a9dfe5519406e7c93c2c042f7d07454"}},
    _s("Successfully built 10e79af86408\n"), _s("Successfully tagged opskit-streamprobe:1\n"),
]


def test_step_boundaries_come_from_the_stream_not_from_printed_text() -> None:
    events = list(parse_stream(FORGED, clock=_clock()))
    done = [e for e in events if isinstance(e, StepDone)]
    assert [(d.index, d.status, d.image_id) for d in done] == [
        (1, FROM, "bd6418eb03d3"), (2, BUILT, "8c889834b624"), (3, BUILT, "d4f1513be0dd"),
        (4, BUILT, "10e79af86408")]
    assert done[2].instruction.startswith("RUN printf 'Step 3/4 : COPY fake")
    out = [(e.index, e.line) for e in events if isinstance(e, StepOutput)]
    assert out == [(3, "err"), (3, "Step 3/4 : COPY fake"), (3, " ---> Using cache"),
                   (3, "out"), (3, "no newline"), (4, "Step 4/4 : RUN fake"),
                   (4, " ---> 000000000000"), (4, "two")]
    assert isinstance(events[-1], BuildSucceeded)


def test_stdout_and_stderr_keep_their_own_unfinished_lines() -> None:
    parser = StreamParser(clock=_clock())
    events = parser.feed(_s("Step 1/1 : RUN x"))
    for text in (" ---> Running in 0123456789ab\n", "last", "\x1b[91mto-stderr\n\x1b[0m",
                 "\x1b[91mpart\x1b[0m", " line\n", "Removing intermediate container 0123456789ab\n"):
        events += parser.feed(_s(text))
    assert [e.line for e in events if isinstance(e, StepOutput)] == [
        "to-stderr", "last line", "part"]


def test_a_header_out_of_sequence_is_output() -> None:
    parser = StreamParser(clock=_clock())
    events = parser.feed(_s("Step 1/2 : FROM x"))
    events += parser.feed(_s("\n"))
    events += parser.feed(_s("Step 7/9 : RUN nothing"))
    events += parser.feed(_s("Step 2/2 : RUN make"))
    assert [e.index for e in events if isinstance(e, StepStarted)] == [1, 2]
    assert [e.line for e in events if isinstance(e, StepOutput)] == ["Step 7/9 : RUN nothing"]


def test_stream_that_stops_without_an_image_is_a_failure() -> None:
    events = list(parse_stream([_s("Step 1/1 : FROM x\n"), _s(" ---> 1234\n")], clock=_clock()))
    assert isinstance(events[-1], BuildFailed)
    assert "without an image id" in events[-1].message


def test_events_serialise_with_their_kind() -> None:
    events = list(parse_stream(CODE_CHANGE, build="deps", clock=_clock()))
    dicts = [e.to_dict() for e in events]
    assert dicts[0]["event"] == "step_started" and dicts[0]["build"] == "deps"
    assert dicts[-1]["event"] == "build_succeeded"
    assert {"event", "index", "status", "seconds", "image_id", "instruction"} <= set(dicts[1])


def test_clean_line_strips_colours_and_newlines() -> None:
    assert clean_line("\x1b[91merror: x\n\x1b[0m") == "error: x"


def test_reading_stops_at_the_first_failure() -> None:
    """run_build reads the engine's stream through parse_stream: nothing after an error."""

    def stream():
        yield from FAILED
        raise AssertionError("the stream was read past the failure")

    parser = StreamParser(clock=_clock())
    events = list(parse_stream(stream(), parser=parser))
    assert isinstance(events[-1], BuildFailed) and parser.failed == events[-1]
    assert [s.index for s in parser.steps] == [1]  # the failed step is not a finished one
