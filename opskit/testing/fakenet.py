"""A made-up network between fake hosts, in the shape of :class:`opskit.jobs.netprobe.DockerProber`,
for unit tests of a multi-host job's control flow (the real probes run in
tests/integration/test_run_multihost.py):

    net = FakeNetwork({"gpu1": [("lo", "127.0.0.1"), ("eth0", "10.0.0.1")],
                       "gpu2": [("eth0", "10.0.0.2")]})
    net.link("gpu2", "10.0.0.1", via="eth0")      # gpu2 reaches gpu1's 10.0.0.1 by its eth0
    MultiRunner(store, opts, connect=..., engine=..., prober=net)

An address not linked answers "connection timed out"; ``taken`` ports refuse the listener.
"""

from __future__ import annotations

from typing import Any

from opskit.errors import JobError
from opskit.jobs.nodes import Iface, Reach


class FakeNetwork:
    def __init__(self, addrs: dict[str, list[tuple[str, str]]]):
        self.addrs_of = {h: [Iface(n, a) for n, a in pairs] for h, pairs in addrs.items()}
        self.links: dict[tuple[str, str], str] = {}  # (from host, to address) -> local ifname
        self.taken: dict[str, set[int]] = {}
        self.listening: dict[str, int] = {}
        self.calls: list[tuple[str, str]] = []
        self.images: dict[str, str] = {}

    def __call__(self, images: dict[str, str], uids: dict[str, str]) -> FakeNetwork:
        self.images = dict(images)
        return self

    def link(self, src: str, addr: str, via: str = "eth0") -> FakeNetwork:
        self.links[(src, addr)] = via
        return self

    def serve(self, t: Any, port: int, seconds: int = 90) -> list[Iface]:
        """Rank 0's host: its addresses, and its port bound (as the one real probe container)."""
        self.calls.append(("serve", t.host))
        if port in self.taken.get(t.host, set()):
            raise JobError(f"{t.host}: the rendezvous port {port} is taken there (Address already in use)")
        self.listening[t.host] = port
        return list(self.addrs_of[t.host])

    def prepare(self, t: Any, seconds: int = 120) -> None:
        self.calls.append(("prepare", t.host))

    def reach(self, t: Any, port: int, addrs: list[str]) -> Reach:
        self.calls.append(("reach", t.host))
        res = Reach(t.host)
        local = {i.name: i for i in self.addrs_of[t.host]}
        for a in addrs:
            via = self.links.get((t.host, a))
            if via is None or port not in self.listening.values():
                res.failed[a] = "TimeoutError: timed out"
            else:
                res.ok[a] = local[via]
        return res

    def stop(self, t: Any) -> None:
        self.calls.append(("stop", t.host))
        self.listening.pop(t.host, None)
