"""``scp`` as an operation: ``HOST:PATH`` words -> endpoints -> plan -> verified copy.

``scp(src, dst, ...)`` parses both locations (refused before connecting), opens one transport
per distinct host (none for a local path; nothing connects before the plan needs it), plans
the copy, runs it, and closes what it opened. Bytes travel as events (TransferStarted with
the total, BytesSent, TransferDone; see :mod:`opskit.events`), so the CLI draws a bar and a
playbook can count. Never prints.
"""

from __future__ import annotations

from typing import Any

from opskit import events as ev
from opskit.files.chmod import Location, current_umask, host_path, parse_location
from opskit.files.copyplan import Endpoint
from opskit.files.transfer import CopyResult, plan_copy, run_copy


def open_endpoints(src: Location, dst: Location, inventory: str | None) -> tuple[Endpoint, Endpoint, list[Any]]:
    """Locations -> Endpoints. One transport per distinct host; nothing connects yet."""
    from opskit.hosts.group import connect
    from opskit.hosts.local import LocalTransport

    inv = None
    transports: dict[str | None, Any] = {}
    endpoints = []
    for loc in (src, dst):
        if loc.host not in transports:
            if loc.host is None:
                transports[None] = LocalTransport()
            else:
                if inv is None:
                    from opskit.hosts.inventory import load_inventory

                    inv = load_inventory(inventory)
                transports[loc.host] = connect(inv.resolve(loc.host))
        t = transports[loc.host]
        endpoints.append(Endpoint(t, host_path(loc.path, is_local=t.is_local)))
    return endpoints[0], endpoints[1], list(transports.values())


def scp(src: str, dst: str, *, recursive: bool = False, preserve_mode: bool = False,
        inventory: str | None = None, emit: ev.EventFn = ev.ignore) -> CopyResult:
    """Copy ``src`` to ``dst`` (``[HOST:]PATH`` each), sha256-verified, never half-written."""
    src_loc, dst_loc = parse_location(src), parse_location(dst)  # refused before connecting
    src_ep, dst_ep, transports = open_endpoints(src_loc, dst_loc, inventory)
    host = dst_loc.host or src_loc.host or "localhost"
    try:
        plan = plan_copy(src_ep, dst_ep, recursive=recursive, preserve_mode=preserve_mode,
                         umask=current_umask())
        what = f"{src_loc} -> {dst_loc}"
        emit(ev.TransferStarted(host, what, plan.total_bytes))
        try:
            return run_copy(plan, lambda n: emit(ev.BytesSent(host, n)))
        finally:
            emit(ev.TransferDone(host, what))
    finally:
        for t in transports:
            t.close()
