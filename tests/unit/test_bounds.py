"""Bounds on what a host can make opskit hold or wait for (issue 11 class 7), without a host:
captured output is capped, a silent connection is closed by the liveness watch, an endless
log line is cut. The same bounds against real hosts: tests/integration/test_bounds.py."""

from __future__ import annotations

import threading
import time

import pytest

from opskit.errors import HostError
from opskit.hosts.liveness import Liveness, RxClock
from opskit.hosts.local import LocalTransport


def test_a_local_command_that_floods_is_stopped_at_the_cap(monkeypatch):
    monkeypatch.setenv("OPSKIT_MAX_OUTPUT_MB", "1")
    with pytest.raises(HostError, match=r"printed more than 1 MiB on stdout") as err:
        LocalTransport().run(["head", "-c", "3000000", "/dev/zero"])
    assert "OPSKIT_MAX_OUTPUT_MB" in err.value.hint
    assert LocalTransport().run(["head", "-c", "1000000", "/dev/zero"]).ok  # under the cap: whole


class _Sock:
    def __init__(self):
        self.data = [b"x", b""]

    def recv(self, n):
        return self.data.pop(0) if self.data else b""


class _Transport:
    def __init__(self):
        self.active = True
        self.sent = 0
        self.closed = threading.Event()

    def is_active(self):
        return self.active

    def close(self):
        self.active = False
        self.closed.set()

    def _send_user_message(self, msg):
        self.sent += 1


def test_a_silent_connection_is_pinged_then_closed_with_a_reason():
    clock = RxClock(_Sock())
    assert clock.recv(1) == b"x"
    t = _Transport()
    alive = Liveness("gpu1", clock, interval=0.2, count=3).start(t)
    assert t.closed.wait(10), "the watch never closed a silent connection"
    assert alive.pings >= 1 and "stopped answering" in alive.dead and "3 missed" in alive.dead


def test_a_connection_that_answers_is_left_open():
    clock = RxClock(_Sock())
    t = _Transport()
    alive = Liveness("gpu1", clock, interval=0.2, count=3).start(t)
    for _ in range(15):  # bytes keep coming: never closed
        clock.last_rx = time.monotonic()
        assert not t.closed.wait(0.1)
    alive.stop()
    assert alive.dead is None and t.active


def test_an_endless_log_line_is_cut_into_bounded_pieces(monkeypatch):
    from types import SimpleNamespace

    from opskit.jobs import launch

    chunks = [b"a" * 50_000] * 6 + [b"end\n"]
    container = SimpleNamespace(logs=lambda **kw: iter(chunks))
    monkeypatch.setattr(launch, "require_container", lambda t, r: container)
    lines = list(launch.stream_logs(None, "r1", follow=True))
    assert all(len(line) <= launch.MAX_LINE + 40 for line in lines)
    assert "".join(line.split(" [line cut")[0] for line in lines) == "a" * 300_000 + "end"


def test_a_lost_connection_is_reported_once_not_by_paramikos_read_ahead_thread(monkeypatch):
    from opskit.jobs import collect

    seen: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.thread.name))
    collect._quiet_prefetch_threads()

    def boom(exc):
        raise exc

    for name, exc in (("Thread-9 (_prefetch_thread)", EOFError()), ("worker", ValueError("real bug"))):
        t = threading.Thread(target=boom, args=(exc,), name=name)
        t.start()
        t.join()
    assert seen == ["worker"]  # the read-ahead thread's EOFError dropped, any other error kept
