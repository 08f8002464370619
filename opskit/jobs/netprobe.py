"""Proving the network of a multi-host job from the hosts themselves, before anything starts.

Each probe is a short container of the job's own image on the host's engine, on the host's
network (as the job's containers will be), as the login user, with no capabilities; it runs
the stdlib script below and is removed after:

- ``addrs``: the host's IPv4 addresses and their interfaces (and whether the image has the
  node launcher, ``opskit.train.torchrun``);
- ``serve PORT SECONDS``: ``addrs`` then ``listen`` in one container (rank 0's host);
- ``idle SECONDS``: waits, so that ``reach`` runs in it by ``docker exec`` the moment rank 0's
  addresses are known (each other host's container starts while rank 0's does);
- ``listen PORT SECONDS``: binds the rendezvous port (a port in use is refused here) and
  answers every connection with a banner until it is stopped. It binds as torch's store
  does (SO_REUSEADDR): connections of an earlier run left in TIME_WAIT do not count as "in
  use" (the store binds over them), a socket listening there does. The client closes first,
  so that the probe itself leaves no TIME_WAIT on the port;
- ``reach PORT ADDR...``: connects to each address (3 s each), reads the banner, and says by
  which local interface the connection left.

A name only resolvable on this machine never enters it: the addresses are the hosts' own.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from opskit.errors import JobError
from opskit.hosts.transport import Transport
from opskit.jobs.launch import HARDENING
from opskit.jobs.nodes import Iface, Reach

BANNER = "opskit-rdzv-probe"
PORT_TAKEN = 3
SCRIPT = r"""
import fcntl, json, socket, struct, sys
def addrs():
    out = []
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _, name in socket.if_nameindex():
        try:
            raw = fcntl.ioctl(s.fileno(), 0x8915, struct.pack('256s', name.encode()[:15]))
        except OSError:
            continue
        out.append([name, socket.inet_ntoa(raw[20:24])])
    return out
def report():
    import importlib.util
    print(json.dumps({'addrs': addrs(), 'launcher': importlib.util.find_spec('opskit.train.torchrun') is not None}),
          flush=True)
def listen():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as torch's store: TIME_WAIT is no refusal
    try:
        srv.bind(('0.0.0.0', int(sys.argv[2])))
    except OSError as e:
        print(json.dumps({'error': str(e)}), flush=True)
        sys.exit(3)
    srv.listen(64)
    srv.settimeout(float(sys.argv[3]))
    print(json.dumps({'listening': int(sys.argv[2])}), flush=True)
    try:
        while True:
            c, peer = srv.accept()
            c.sendall(b'BANNER\n')
            c.settimeout(5)
            try:
                c.recv(1)  # the client closes first: the TIME_WAIT is on its side, not on PORT
            except OSError:
                pass
            c.close()
    except socket.timeout:
        pass
mode = sys.argv[1]
if mode == 'addrs':
    report()
elif mode == 'serve':
    report()
    listen()
elif mode == 'listen':
    listen()
elif mode == 'idle':
    import time
    time.sleep(float(sys.argv[2]))
elif mode == 'reach':
    port, res, names = int(sys.argv[2]), {}, {a: n for n, a in addrs()}
    for a in sys.argv[3:]:
        try:
            c = socket.create_connection((a, port), timeout=3)
            c.settimeout(3)
            got = c.recv(64).decode(errors='replace').strip()
            local = c.getsockname()[0]
            c.close()
            res[a] = {'ok': got == 'BANNER', 'local': local, 'ifname': names.get(local, '?'),
                      'error': '' if got == 'BANNER' else 'something else answers there: %r' % got}
        except OSError as e:
            res[a] = {'ok': False, 'error': '%s: %s' % (type(e).__name__, e)}
    print(json.dumps(res))
""".replace("BANNER", BANNER)


class DockerProber:
    """The probes, run in ``image`` (the job's image, already on every host) by the host's engine:
    one container per host, all started at once (``serve`` on rank 0's host, ``prepare`` on
    the others), ``reach`` by ``docker exec`` in the others' once rank 0's addresses are known."""

    def __init__(self, images: dict[str, str], uid: dict[str, str]):
        self.images = images  # host -> image ID there
        self.uid = uid  # host -> "uid:gid" of the login user
        self.listeners: dict[str, Any] = {}
        self.idle: dict[str, Any] = {}

    def _run(self, t: Transport, argv: list[str], what: str) -> Any:
        return t.docker().containers.run(
            self.images[t.host], argv, detach=True, entrypoint=["python3", "-c", SCRIPT], network_mode="host",
            user=self.uid[t.host], name=f"opskit-probe-{what}-{secrets.token_hex(3)}",
            labels={"opskit.probe": what}, **HARDENING)

    def serve(self, t: Transport, port: int, seconds: int = 90) -> list[Iface]:
        """Rank 0's host: its addresses, then its rendezvous port bound and answering until ``stop``."""
        c = self._run(t, ["serve", str(port), str(seconds)], "serve")
        self.listeners[t.host] = c
        from opskit.waiting import wait_until

        def answered() -> bool:
            c.reload()
            return b'"listening"' in c.logs(stdout=True) or c.status not in ("created", "running")

        wait_until(answered, 60, f"{t.host}: the rendezvous port probe to start", interval=0.1)
        lines = c.logs(stdout=True).decode("utf-8", "replace").strip().splitlines()
        if not lines or not lines[0].startswith('{"addrs"'):
            text = c.logs(stdout=True, stderr=True).decode("utf-8", "replace").strip()
            self.stop(t)
            raise JobError(f"{t.host}: the address probe failed: {text[-300:]}")
        got = json.loads(lines[0])
        if not got["launcher"]:
            self.stop(t)
            raise JobError(f"{t.host}: the image has no opskit.train.torchrun (it was built by an older opskit)",
                           "rebuild it with this opskit ('opskit build'), or leave --image out")
        if not any('"listening"' in line for line in lines[1:]):
            text = c.logs(stdout=True, stderr=True).decode("utf-8", "replace").strip().splitlines()[-1:]
            self.stop(t)
            raise JobError(f"{t.host}: the rendezvous port {port} is taken there ({' '.join(text)[-200:]})",
                           "stop what uses it, or give another port with --rdzv-port")
        return [Iface(n, a) for n, a in got["addrs"]]

    def prepare(self, t: Transport, seconds: int = 120) -> None:
        """Another host: its probe container started (idle), for ``reach`` to run in."""
        self.idle[t.host] = self._run(t, ["idle", str(seconds)], "reach")

    def reach(self, t: Transport, port: int, addrs: list[str]) -> Reach:
        if t.host not in self.idle:
            self.prepare(t)
        code, out = self.idle[t.host].exec_run(["python3", "-c", SCRIPT, "reach", str(port), *addrs],
                                               user=self.uid[t.host])
        text = out.decode("utf-8", "replace") if isinstance(out, bytes) else str(out)
        if code != 0:
            raise JobError(f"{t.host}: the reachability probe failed (exit {code}): {text.strip()[-300:]}")
        res = Reach(t.host)
        for addr, r in json.loads(text.strip().splitlines()[-1]).items():
            if r["ok"]:
                res.ok[addr] = Iface(r["ifname"], r["local"])
            else:
                res.failed[addr] = r["error"]
        return res

    def stop(self, t: Transport) -> None:
        """This host's probe container removed (rank 0's: its port free again)."""
        for held in (self.listeners, self.idle):
            c = held.pop(t.host, None)
            if c is not None:
                c.remove(force=True)
