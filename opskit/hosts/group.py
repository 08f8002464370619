"""Fan-out over many hosts: every host runs, each host's result or error is collected."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from opskit.hosts.spec import HostSpec
from opskit.hosts.transport import Transport

T = TypeVar("T")
DEFAULT_WORKERS = 32


@dataclass
class HostOutcome(Generic[T]):
    host: str
    value: T | None = None
    error: BaseException | None = None
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class GroupResult(Generic[T]):
    """Per-host outcomes in the order the hosts were given."""

    outcomes: list[HostOutcome[T]] = field(default_factory=list)

    def __iter__(self) -> Iterator[HostOutcome[T]]:
        return iter(self.outcomes)

    def __len__(self) -> int:
        return len(self.outcomes)

    @property
    def succeeded(self) -> dict[str, T]:
        return {o.host: o.value for o in self.outcomes if o.ok}  # type: ignore[misc]

    @property
    def failed(self) -> dict[str, BaseException]:
        return {o.host: o.error for o in self.outcomes if o.error is not None}

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)


def connect(spec: HostSpec) -> Transport:
    """The transport for a spec. Never touches the network (connections open on first use)."""
    if spec.local:
        from opskit.hosts.local import LocalTransport

        return LocalTransport(spec.name, command_timeout=spec.command_timeout)
    from opskit.hosts.ssh import SSHTransport

    return SSHTransport(spec)


def run_on_hosts(
    specs: Iterable[HostSpec],
    fn: Callable[[Transport], T],
    *,
    workers: int = DEFAULT_WORKERS,
    transport_factory: Callable[[HostSpec], Transport] = connect,
) -> GroupResult[T]:
    """Run ``fn(transport)`` on every host in parallel with a bounded pool.

    Errors are collected per host (OpskitError and any other Exception); one failing host
    never hides the others. KeyboardInterrupt still propagates.
    """
    specs = list(specs)

    def one(spec: HostSpec) -> HostOutcome[T]:
        start = time.monotonic()
        transport = None
        try:
            transport = transport_factory(spec)
            value = fn(transport)
            return HostOutcome(spec.name, value=value, duration=time.monotonic() - start)
        except Exception as exc:  # noqa: BLE001 - reported per host (OpskitError or any other)
            return HostOutcome(spec.name, error=exc, duration=time.monotonic() - start)
        finally:
            if transport is not None:
                _close_quietly(transport)

    if len(specs) == 1:
        return GroupResult([one(specs[0])])
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(specs)))) as pool:
        outcomes = list(pool.map(one, specs))
    return GroupResult(outcomes)


def _close_quietly(transport: Transport) -> None:
    """Close after the work is done. A failure to close a (dead) connection changes nothing
    about the host's result, which is already recorded, so it is not reported."""
    try:
        transport.close()
    except Exception:  # noqa: BLE001, S110 - see docstring
        pass


def first_value(result: GroupResult[Any]) -> Any:
    """The single host's value, or raise its error (for single-host commands)."""
    outcome = result.outcomes[0]
    if outcome.error is not None:
        raise outcome.error
    return outcome.value
