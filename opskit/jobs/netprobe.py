"""Proving the network of a multi-host job from the hosts themselves, before anything starts.

Each probe is a short container of the job's own image on the host's engine, on the host's
network (as the job's containers will be), as the login user, with no capabilities; it runs
the stdlib script below and is removed after:

- ``addrs``: the host's IPv4 addresses and their interfaces (and whether the image has the
  node launcher, ``opskit.train.torchrun``);
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
mode = sys.argv[1]
if mode == 'addrs':
    import importlib.util
    print(json.dumps({'addrs': addrs(), 'launcher': importlib.util.find_spec('opskit.train.torchrun') is not None}))
elif mode == 'listen':
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
    """The probes, run in ``image`` (the job's image, already on every host) by the host's engine."""

    def __init__(self, images: dict[str, str], uid: dict[str, str]):
        self.images = images  # host -> image ID there
        self.uid = uid  # host -> "uid:gid" of the login user
        self.listeners: dict[str, Any] = {}

    def _kwargs(self, host: str, name: str) -> dict:
        return {"entrypoint": ["python3", "-c", SCRIPT], "network_mode": "host", "user": self.uid[host],
                "name": f"opskit-probe-{name}-{secrets.token_hex(3)}", "labels": {"opskit.probe": name},
                **HARDENING}

    def _once(self, t: Transport, argv: list[str], what: str) -> tuple[int, str]:
        c = t.docker().containers.run(self.images[t.host], argv, detach=True, **self._kwargs(t.host, what))
        try:
            code = int(c.wait(timeout=60).get("StatusCode", 1))
            return code, c.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        finally:
            c.remove(force=True)

    def addrs(self, t: Transport) -> list[Iface]:
        code, out = self._once(t, ["addrs"], "addrs")
        if code != 0:
            raise JobError(f"{t.host}: the address probe failed (exit {code}): {out.strip()[-300:]}")
        got = json.loads(out.strip().splitlines()[-1])
        if not got["launcher"]:
            raise JobError(f"{t.host}: the image has no opskit.train.torchrun (it was built by an older opskit)",
                           "rebuild it with this opskit ('opskit build'), or leave --image out")
        return [Iface(n, a) for n, a in got["addrs"]]

    def listen(self, t: Transport, port: int, seconds: int = 90) -> None:
        c = t.docker().containers.run(self.images[t.host], ["listen", str(port), str(seconds)], detach=True,
                                      **self._kwargs(t.host, "listen"))
        self.listeners[t.host] = c
        from opskit.waiting import wait_until

        def answered() -> bool:
            c.reload()
            return b"listening" in c.logs(stdout=True) or c.status != "running"

        wait_until(answered, 60, f"{t.host}: the rendezvous port probe to start", interval=0.2)
        if b"listening" not in c.logs(stdout=True):
            text = c.logs(stdout=True, stderr=True).decode("utf-8", "replace").strip()
            self.stop(t)
            raise JobError(f"{t.host}: the rendezvous port {port} is taken there ({text[-200:]})",
                           "stop what uses it, or give another port with --rdzv-port")

    def reach(self, t: Transport, port: int, addrs: list[str]) -> Reach:
        code, out = self._once(t, ["reach", str(port), *addrs], "reach")
        if code != 0:
            raise JobError(f"{t.host}: the reachability probe failed (exit {code}): {out.strip()[-300:]}")
        res = Reach(t.host)
        for addr, r in json.loads(out.strip().splitlines()[-1]).items():
            if r["ok"]:
                res.ok[addr] = Iface(r["ifname"], r["local"])
            else:
                res.failed[addr] = r["error"]
        return res

    def stop(self, t: Transport) -> None:
        c = self.listeners.pop(t.host, None)
        if c is not None:
            c.remove(force=True)
