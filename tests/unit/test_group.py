"""Fan-out: every host runs, results in order, errors collected, bounded pool, always closed."""

from __future__ import annotations

import threading
import time

import pytest

from opskit.errors import HostError
from opskit.hosts.group import first_value, run_on_hosts
from opskit.hosts.spec import HostSpec
from opskit.testing.fake import FakeReply, FakeTransport


def specs(n: int) -> list[HostSpec]:
    return [HostSpec(name=f"h{i}") for i in range(n)]


def test_order_kept_and_every_error_reported() -> None:
    def factory(spec: HostSpec) -> FakeTransport:
        if spec.name == "h1":
            answer = FakeReply(raises=HostError("h1", "no answer within 1s"))
        elif spec.name == "h3":
            answer = FakeReply(stdout="", exit_code=2)
        else:
            answer = spec.name
        return FakeTransport(spec.name, {("hostname",): answer})

    def fn(t):  # noqa: ANN001, ANN202
        return t.run(["hostname"], check=True).stdout

    result = run_on_hosts(specs(5), fn, transport_factory=factory)
    assert [o.host for o in result] == ["h0", "h1", "h2", "h3", "h4"]
    assert result.succeeded == {"h0": "h0", "h2": "h2", "h4": "h4"}
    assert sorted(result.failed) == ["h1", "h3"]
    assert "no answer" in str(result.failed["h1"]) and "exited with 2" in str(result.failed["h3"])
    assert not result.ok and len(result) == 5


def test_bounded_pool_runs_in_parallel() -> None:
    lock = threading.Lock()
    running = peak = 0

    def fn(t):  # noqa: ANN001, ANN202
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return t.host

    result = run_on_hosts(specs(12), fn, workers=4, transport_factory=lambda s: FakeTransport(s.name))
    assert result.ok and peak == 4  # parallel, and never more than the pool's size


def test_factory_failure_and_unexpected_exception_are_per_host() -> None:
    def factory(spec: HostSpec) -> FakeTransport:
        if spec.name == "h0":
            raise HostError("h0", "cannot read known_hosts")
        return FakeTransport(spec.name)

    def fn(t):  # noqa: ANN001, ANN202
        if t.host == "h1":
            raise ValueError("a bug in a check")
        return 1

    result = run_on_hosts(specs(3), fn, transport_factory=factory)
    assert result.succeeded == {"h2": 1}
    assert isinstance(result.failed["h1"], ValueError)
    assert "known_hosts" in str(result.failed["h0"])


def test_transports_always_closed_even_if_close_fails() -> None:
    made: list[FakeTransport] = []

    class BadClose(FakeTransport):
        def close(self) -> None:
            super().close()
            raise OSError("socket already dead")

    def factory(spec: HostSpec) -> FakeTransport:
        made.append(BadClose(spec.name) if spec.name == "h0" else FakeTransport(spec.name))
        return made[-1]

    result = run_on_hosts(specs(3), lambda t: t.host, transport_factory=factory)
    assert result.ok and all(t.closed for t in made)


def test_keyboard_interrupt_propagates() -> None:
    def fn(t):  # noqa: ANN001, ANN202
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_on_hosts(specs(2), fn, transport_factory=lambda s: FakeTransport(s.name))


def test_first_value() -> None:
    ok = run_on_hosts(specs(1), lambda t: 7, transport_factory=lambda s: FakeTransport(s.name))
    assert first_value(ok) == 7

    def boom(t):  # noqa: ANN001, ANN202
        raise HostError(t.host, "down")

    bad = run_on_hosts(specs(1), boom, transport_factory=lambda s: FakeTransport(s.name))
    with pytest.raises(HostError, match="down"):
        first_value(bad)
