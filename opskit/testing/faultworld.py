"""The world the fault-injection suite runs in: one real host, a proxy, counters, checks.

One Docker-in-Docker host of its own (real sshd, a real engine whose image store sits on a
small tmpfs, so that "disk full" is real), reached through a :class:`FaultProxy` on
127.0.0.1; a small image made from the offline base; a local work folder. The checks read
the truth from the host itself (``docker exec``), never through opskit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.hosts.spec import HostSpec
from opskit.testing.faultproxy import FaultProxy

HOME = "/home/opskit"
SENTINELS = (".ssh/authorized_keys", ".profile", ".bashrc")
ENTRY = ["/bin/sh", "-c", 'exec /bin/sh -c "$2"', "entry"]  # the run's script is its 2nd argument
COUNTS = ("injections", "results_lost", "unverified_at_final_path", "writes_outside_destination",
          "host_keys_accepted_wrongly", "injected_commands_executed", "duplicate_jobs",
          "leaked_containers", "runs_needing_more_than_one_rerun")

_TREE = r"""
import hashlib, json, os, sys
root = sys.argv[1]
out = {}
for d, dirs, files in os.walk(os.fsencode(root)):
    for n in dirs + files:
        p = os.path.join(d, n)
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        with open(p, 'rb') as fh:
            out[os.path.relpath(p, os.fsencode(root)).decode('utf-8', 'backslashreplace')] = hashlib.sha256(fh.read()).hexdigest()
print(json.dumps(out))
"""


@dataclass
class Counts:
    injections: int = 0
    results_lost: int = 0
    unverified_at_final_path: int = 0
    writes_outside_destination: int = 0
    host_keys_accepted_wrongly: int = 0
    injected_commands_executed: int = 0
    duplicate_jobs: int = 0
    leaked_containers: int = 0
    runs_needing_more_than_one_rerun: int = 0
    notes: list[str] = field(default_factory=list)

    def bad(self) -> int:
        return sum(getattr(self, k) for k in COUNTS[1:])


@dataclass
class World:
    client: Any
    bed: Any  # SSHTestBed of one host
    proxy: FaultProxy
    spec: HostSpec  # the host through the proxy
    work: Path
    image: str  # the small image, on the host
    rng: random.Random
    uid: int = 1000
    seq: int = 0

    @property
    def host(self) -> Any:
        return self.bed.hosts[0]

    def next_id(self, kind: str) -> str:
        self.seq += 1
        return f"f-{kind.replace('_', '-')}-{self.seq}"

    def sh(self, script: str, user: str = "opskit") -> tuple[int, str]:
        return self.host.exec(["sh", "-c", script], user=user)

    def host_tree(self, path: str) -> dict[str, str]:
        """{relative path: sha256} of the regular files under ``path`` on the host, read there
        (stdout only; a failed read is an error of the suite, never an empty tree)."""
        for _ in range(3):
            res = self.host.container.exec_run(["python3", "-c", _TREE, path], user="root", demux=True)
            out = (res.output[0] or b"").decode() if res.output else ""
            if res.exit_code == 0 and out.strip().startswith("{"):
                return json.loads(out)
            time.sleep(1)
        raise RuntimeError(f"cannot read {path} on the fault host: exit {res.exit_code}")

    def sentinels(self) -> dict[str, str]:
        """The login user's files opskit must never touch, and what the home folder holds."""
        script = (" ; ".join(f"sha256sum {HOME}/{s} 2>/dev/null || echo missing {s}" for s in SENTINELS)
                  + f"; ls -A {HOME}; echo END")
        for _ in range(3):
            res = self.host.container.exec_run(["sh", "-c", script], user="root", demux=True)
            out = (res.output[0] or b"").decode() if res.output else ""
            if out.rstrip().endswith("END"):
                return {line.split()[-1]: line for line in out.splitlines() if line.strip()}
            time.sleep(1)
        raise RuntimeError("cannot read the login user's files on the fault host")

    def outside_changes(self, before: dict[str, str]) -> list[str]:
        now = self.sentinels()
        return sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))

    def containers(self, run_id: str) -> list[str]:
        code, out = self.host.exec(["docker", "ps", "-aq", "--filter", f"name=^opskit-run-{run_id}$"])
        return out.split()

    def spec_with(self, **changes: Any) -> HostSpec:
        return dataclasses.replace(self.spec, **changes)

    def pwned(self) -> bool:
        code, out = self.sh(f"find {HOME} /tmp -maxdepth 3 -name 'PWNED*' 2>/dev/null", user="root")
        local = list(self.work.rglob("PWNED*"))
        return bool(out.strip()) or bool(local)


def write_known_hosts(path: Path, port: int, keys: list[str]) -> None:
    path.write_text("".join(f"[127.0.0.1]:{port} {k}\n" for k in keys))


def small_image(client: Any, base: str, tag: str = "opskit-faults-small:1") -> str:
    """The offline base with the entry the suite's containers use (built once, by tag)."""
    from docker.errors import ImageNotFound

    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:
        pass
    with tempfile.TemporaryDirectory(prefix="opskit-faults-") as ctx:
        (Path(ctx) / "Dockerfile").write_text(f"FROM {base}\nENTRYPOINT {json.dumps(ENTRY)}\n")
        client.images.build(path=ctx, tag=tag, rm=True, pull=False, labels={"opskit.testing": "faults"})
    return tag


def layer_image(client: Any, base: str, rng: random.Random, n: int) -> tuple[str, int]:
    """``base`` plus one layer of random bytes: an image the host does not have yet, and the
    layer's size (random bytes: about what travels)."""
    tag = f"opskit-faults-layer:{os.getpid()}-{n}"  # two suites at once never share a tag
    size = rng.randint(64 << 10, 3 << 20)
    with tempfile.TemporaryDirectory(prefix="opskit-faults-") as ctx:
        (Path(ctx) / "blob").write_bytes(rng.randbytes(size))
        (Path(ctx) / "Dockerfile").write_text(f"FROM {base}\nCOPY blob /blob\n")
        client.images.build(path=ctx, tag=tag, rm=True, pull=False, labels={"opskit.testing": "faults"})
    return tag, size


def start_world(client: Any, base: str, workdir: Path, seed: int, disk: str = "1g") -> World:
    from opskit.images import ship as shipmod
    from opskit.testing.dind import start_gpu_hosts

    bed = start_gpu_hosts(client, 1, workdir=str(workdir / "host"), base_image=base,
                          name_prefix="opskit-faults", disk=disk)
    try:
        host = bed.hosts[0]
        proxy = FaultProxy(host.port).start()
        kh = workdir / "known_hosts_proxy"
        write_known_hosts(kh, proxy.port, host.host_keys)
        [spec] = bed.specs()
        spec = dataclasses.replace(spec, port=proxy.port, known_hosts=(str(kh),), global_known_hosts=(),
                                   keepalive=1, connect_timeout=5, command_timeout=60)
        image = small_image(client, base)
        res = shipmod.ship(client, image, [spec])
        if not res.ok:
            raise RuntimeError(f"could not ship {image} to the fault host: {res.failed}")
        uid = int(host.exec(["id", "-u", "opskit"])[1].strip() or 1000)
        return World(client, bed, proxy, spec, workdir, image, random.Random(seed), uid)
    except BaseException:
        bed.close()
        raise


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
