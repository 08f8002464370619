"""Fan-out cost: ``status`` of one host vs N sshd hosts (real containers this bench starts),
with OpenSSH's own client on the same hosts as the reference. Prints, never asserts.

Real hosts have their own CPUs and sit a network away; here N containers share this machine's
cores. So every connection goes through a small delaying TCP proxy on loopback (this kernel has
no netem), run in its own process: each direction of each connection is held RTT/2, in order;
it talks to each container's sshd on the bridge network (no engine userland proxy between).
The hosts are named in an ssh config (as a user's would be) and resolved by opskit each run.

What the hosts themselves cost (sshd, the login shell, the status script) lands on this
machine's cores too, all N at once: the same N hosts fanned out by OpenSSH's ``ssh`` (N
processes, C, no GIL), with the same script on the same proxy, measured in the same rounds,
is the floor any client meets here. The bench raises its own priority (this process, the proxy
and ``ssh`` at nice -10; the hosts in a cgroup of their own, weighted as 10 processes) so that
other users of a shared machine land little in the figures. Figures, next to their goals
(issue 10 section 4):

- ``status`` of 16 hosts vs one at 50 ms RTT: goal <= 1.3x (beside OpenSSH's extra time for
  16 hosts over one, put on opskit's one-host time: the floor);
- client CPU per host (this process, all threads; resolving the names included): goal <= 5 ms;
- ``status`` of one host whose ``df`` hangs (a stand-in df first in the login PATH of one
  container): returns within the df section's limit + 1 s, every other section filled, and no
  df left running on the host.

Usage: python bench/fanout.py [--hosts 16] [--repeat 7] [--rtt-ms 50]
"""

from __future__ import annotations

import argparse
import heapq
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HUNG_DF = "#!/bin/sh\n# bench: a df blocked on a dead network mount\nexec sleep 300\n"


PRIORITY_NICE = -10  # this process, the proxy and the ssh processes it starts
HOSTS_SHARES = 10240  # the hosts' cgroup, as 10 ordinary processes weigh (cgroup v1 cpu.shares)


def cgroup_cpu_seconds(pid: int) -> float | None:
    """CPU seconds used by the cgroup of process ``pid`` (v1 cpuacct or v2), None if unreadable."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        try:
            if "cpuacct" in controllers.split(","):
                return int(Path(f"/sys/fs/cgroup/cpuacct{path}/cpuacct.usage").read_text()) * 1e-9
            if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
                stat = Path(f"/sys/fs/cgroup{path}/cpu.stat").read_text().split()
                return int(stat[stat.index("usage_usec") + 1]) * 1e-6
        except (OSError, ValueError):
            return None
    return None


def priority_kwargs(client: Any) -> tuple[dict, str | None]:
    """Container options that put the hosts in a cgroup of their own (cgroupfs driver only),
    and that cgroup's name (None: the hosts keep the engine's default cgroup)."""
    if client.info().get("CgroupDriver") != "cgroupfs":
        return {}, None
    parent = f"/opskit-bench-{os.getpid()}"
    return {"cgroup_parent": parent}, parent


def raise_priority(parent: str | None) -> str:
    """Raise this process (nice) and the hosts' cgroup (CPU weight) above the machine's other
    work, so that other users of a shared machine land as little as possible in the figures.
    Returns what was done, for the printout."""
    done = []
    try:
        os.nice(PRIORITY_NICE)
        done.append(f"client, proxy and ssh at nice {PRIORITY_NICE}")
    except OSError:
        done.append("client priority not raised (not permitted)")
    for path, value in ((f"/sys/fs/cgroup/cpu{parent}/cpu.shares", HOSTS_SHARES),
                        (f"/sys/fs/cgroup{parent}/cpu.weight", HOSTS_SHARES * 100 // 1024)):
        if parent and Path(path).exists():
            try:
                Path(path).write_text(str(value))
                done.append(f"hosts' cgroup {Path(path).name} {value}")
                break
            except OSError:
                pass
    else:
        done.append("hosts' priority not raised")
    return "; ".join(done)


def remove_cgroup(parent: str | None) -> None:
    """Remove the (empty, once the hosts are gone) cgroup folders the engine made for them."""
    if not parent:
        return
    for folder in Path("/sys/fs/cgroup").glob(f"*{parent}"):
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty yet or not ours to remove: left as the engine made it
    if Path(f"/sys/fs/cgroup{parent}").is_dir():
        try:
            Path(f"/sys/fs/cgroup{parent}").rmdir()
        except OSError:
            pass


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Bed:
    """The hosts behind the proxy, as a user would name them (ssh config + known_hosts)."""

    hosts: list  # opskit.testing.sshd.SSHTestHost
    names: list[str]
    ssh_config: str
    inventory: str
    script: str  # the status script (what OpenSSH's ssh is given on stdin)
    proxy: subprocess.Popen

    def others_cpu(self) -> float | None:
        """CPU seconds of everything but the client: the containers and the proxy."""
        values = [cgroup_cpu_seconds(h.container.attrs["State"]["Pid"]) for h in self.hosts]
        if any(v is None for v in values):
            return None
        return sum(values) + process_cpu(self.proxy.pid)  # type: ignore[arg-type]


def write_user_files(hosts: list, ports: list[int], key: str, workdir: str) -> tuple[str, str]:
    """An ssh config naming each host by its proxy port, its known_hosts, an empty inventory."""
    known = Path(workdir) / "known_hosts_proxied"
    known.write_text("".join(f"[127.0.0.1]:{port} {k}\n" for h, port in zip(hosts, ports, strict=True)
                             for k in h.host_keys))
    blocks = [f"Host bench-{i}\n  HostName 127.0.0.1\n  Port {port}\n  User opskit\n"
              f"  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n"
              "  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n"
              for i, port in enumerate(ports)]
    config = Path(workdir) / "ssh_config_proxied"
    config.write_text("\n".join(blocks))
    inventory = Path(workdir) / "inventory_empty.yaml"
    inventory.write_text("hosts: {}\n")
    return str(config), str(inventory)


# -- one fan-out, two clients ----------------------------------------------------------------------
def opskit_status(bed: Bed, names: list[str]) -> list[dict]:
    """What ``opskit status --json NAMES`` does between parsing its flags and printing."""
    from opskit.checks.status import snapshot
    from opskit.hosts.group import run_on_hosts
    from opskit.hosts.inventory import load_inventory

    specs = load_inventory(bed.inventory, ssh_config=bed.ssh_config).expand(names)
    result = run_on_hosts(specs, snapshot)
    if not result.ok:
        raise SystemExit(f"fan-out failed: {result.failed}")
    return [o.value.to_dict() for o in result]


# The key exchange paramiko agrees with these hosts (ssh 9.2 would pick sntrup761x25519, several
# times the CPU), and no host-key rotation round trip (opskit does not ask for one either).
SSH_LIKE_OPSKIT = ("-o", "KexAlgorithms=curve25519-sha256,curve25519-sha256@libssh.org",
                   "-o", "UpdateHostKeys=no")


def openssh_status(bed: Bed, names: list[str]) -> None:
    """The same script through OpenSSH's ``ssh``, one process per host, all at once."""
    procs = []
    for name in names:
        with open(bed.script, "rb") as stdin:
            procs.append(subprocess.Popen(["ssh", "-F", bed.ssh_config, *SSH_LIKE_OPSKIT, name,
                                           "sh", "-s"],
                                          stdin=stdin, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE))
    for name, proc in zip(names, procs, strict=True):
        out, err = proc.communicate()
        if proc.returncode != 0 or b"@@opskit-section:end" not in out:
            raise SystemExit(f"ssh {name} failed ({proc.returncode}): {err.decode()[-300:]}")


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


@dataclass
class Sample:
    wall: float
    client: float  # CPU seconds of the client (this process, or the ssh processes)
    others: float | None  # CPU seconds of the containers and the proxy


def measure(bed: Bed, fn: Callable[[Bed, list[str]], Any], names: list[str],
            cpu: Callable[[], float]) -> Sample:
    others0, cpu0, t0 = bed.others_cpu(), cpu(), time.perf_counter()
    fn(bed, names)
    wall, used, others1 = time.perf_counter() - t0, cpu() - cpu0, bed.others_cpu()
    others = None if others0 is None or others1 is None else others1 - others0
    return Sample(wall, used, others)


@dataclass
class Series:
    """One client's rounds: 1 host then all hosts, back to back (paired ratios)."""

    ones: list[Sample] = field(default_factory=list)
    manys: list[Sample] = field(default_factory=list)

    def ratios(self) -> list[float]:
        return [m.wall / o.wall for o, m in zip(self.ones, self.manys, strict=True)]

    def median(self, rows: list[Sample], attr: str) -> float | None:
        values = [getattr(r, attr) for r in rows]
        return None if any(v is None for v in values) else statistics.median(values)


def rounds(bed: Bed, repeat: int) -> tuple[Series, Series]:
    """opskit and OpenSSH in turns, each as 1 host then all hosts, so that the load other
    users put on this shared machine falls on every figure alike."""
    ours, theirs = Series(), Series()
    one = bed.names[:1]
    for _ in range(repeat):
        ours.ones.append(measure(bed, opskit_status, one, time.process_time))
        ours.manys.append(measure(bed, opskit_status, bed.names, time.process_time))
        theirs.ones.append(measure(bed, openssh_status, one, children_cpu))
        theirs.manys.append(measure(bed, openssh_status, bed.names, children_cpu))
    return ours, theirs


# -- the delaying proxy (runs in its own process: its CPU is not the client's) --------------------
# A wire costs no CPU; this stand-in for one should cost as little as it can, since it shares
# the cores with the client and the hosts: one select loop, a heap of chunks due, no framework.
class _Proxy:
    def __init__(self, pairs: list[tuple[int, str]], delay: float):
        self.sel = selectors.DefaultSelector()
        self.delay = delay
        self.due: list[tuple[float, int, socket.socket, bytes]] = []  # (time, seq, to, data)
        self.seq = 0
        self.peer: dict[socket.socket, socket.socket] = {}
        for port, target in pairs:
            sock = socket.create_server(("127.0.0.1", port), backlog=128)
            self.sel.register(sock, selectors.EVENT_READ, target)

    def accept(self, listener: socket.socket, target: str) -> None:
        conn, _ = listener.accept()
        host, port = target.rsplit(":", 1)
        try:
            up = socket.create_connection((host, int(port)), timeout=10)
        except OSError:
            conn.close()
            return
        for a, b in ((conn, up), (up, conn)):
            a.settimeout(None)
            a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.peer[a] = b
            self.sel.register(a, selectors.EVENT_READ, None)

    def pump(self, src: socket.socket) -> None:
        try:
            data = src.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.sel.unregister(src)
        self.seq += 1
        heapq.heappush(self.due, (time.monotonic() + self.delay, self.seq, self.peer[src], data))

    def deliver(self, to: socket.socket, data: bytes) -> None:
        if to.fileno() < 0:  # the pair was closed: what was still due goes nowhere
            return
        try:
            if data:
                to.sendall(data)
                return
            to.shutdown(socket.SHUT_WR)  # the other side closed its sending half: in turn
        except OSError:
            pass
        try:
            self.sel.get_key(to)
        except KeyError:  # both directions have ended: the pair is done
            for sock in (to, self.peer.pop(to, None)):
                if sock is not None:
                    self.peer.pop(sock, None)
                    sock.close()

    def run(self) -> None:
        print("ready", flush=True)
        while True:
            wait = max(0.0, self.due[0][0] - time.monotonic()) if self.due else None
            for key, _ in self.sel.select(wait):
                if key.data is not None:
                    self.accept(key.fileobj, key.data)  # type: ignore[arg-type]
                else:
                    self.pump(key.fileobj)  # type: ignore[arg-type]
            now = time.monotonic()
            while self.due and self.due[0][0] <= now:
                _, _, to, data = heapq.heappop(self.due)
                self.deliver(to, data)


def proxy_targets(hosts: list) -> list[str]:
    """Each host's sshd as ``address:22`` on the bridge network (a container this bench
    started), else its port published on 127.0.0.1. Straight to the container, the traffic
    skips the engine's userland proxy: a process of the engine's, at the engine's priority,
    that a real network does not have."""
    targets = []
    for h in hosts:
        address = (h.container.attrs.get("NetworkSettings") or {}).get("IPAddress")
        targets.append(f"{address}:22" if address else f"127.0.0.1:{h.port}")
    return targets


def start_proxy(targets: list[str], rtt: float) -> tuple[subprocess.Popen, list[int]]:
    """A proxy process: one free loopback port per target (``address:port``), RTT/2 each way."""
    import socket

    ports = []
    for _ in targets:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    spec = ",".join(f"{p}={t}" for p, t in zip(ports, targets, strict=True))
    proc = subprocess.Popen([sys.executable, __file__, "--serve-proxy", spec, "--rtt-ms",
                             str(rtt * 1000)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc, ports


# -- figures --------------------------------------------------------------------------------------
def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value * 1000:.1f}"


def report(n: int, rtt: float, ours: Series, theirs: Series) -> None:
    cores = os.cpu_count() or 1
    extra = {}
    for label, series in (("opskit", ours), ("OpenSSH ssh", theirs)):
        w1, wn = series.median(series.ones, "wall"), series.median(series.manys, "wall")
        extra[label] = statistics.median(m.wall - o.wall for o, m in zip(series.ones, series.manys,
                                                                          strict=True))
        per_host = series.median(series.manys, "client") / n  # type: ignore[operator]
        r = sorted(series.ratios())
        print(f"  {label:11s}: 1 host {_ms(w1):>6} ms, {n} hosts {_ms(wn):>6} ms (+{_ms(extra[label])} "
              f"ms); ratio {statistics.median(r):.2f}x (rounds {r[0]:.2f}-{r[-1]:.2f}); client CPU "
              f"{per_host * 1000:.2f} ms/host")
    others = ours.median(ours.manys, "others")
    if others is not None:
        print(f"  the hosts (sshd, login shell, status script) and the proxy used {_ms(others / n)} "
              f"ms CPU per host: {_ms(others)} ms per {n}-host fan-out, all at once, on the "
              f"{cores} cores this machine shares with the client (real hosts: their own CPUs)")
    ratio = statistics.median(ours.ratios())
    wall1 = ours.median(ours.ones, "wall")
    floor = (wall1 + extra["OpenSSH ssh"]) / wall1  # type: ignore[operator]
    print(f"figure: status of {n} hosts / 1 host at {rtt * 1000:.0f} ms RTT = {ratio:.2f}x "
          f"(goal <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'}); reference: OpenSSH's ssh on "
          f"the same hosts, script and proxy took +{_ms(extra['OpenSSH ssh'])} ms for {n} hosts "
          f"over 1, which on opskit's one-host time is {floor:.2f}x: this machine's floor "
          f"for any client (opskit +{_ms(extra['opskit'])} ms)")
    per_host = ours.median(ours.manys, "client") / n  # type: ignore[operator]
    ssh_host = theirs.median(theirs.manys, "client") / n  # type: ignore[operator]
    print(f"figure: client CPU per host = {per_host * 1000:.2f} ms (goal <= 5 ms, 7.7 ms before: "
          f"{'met' if per_host <= 0.005 else 'NOT met'}; OpenSSH's ssh: {ssh_host * 1000:.2f} ms)")


def hung_df_figure(bed: Bed) -> None:
    """status of one host whose df hangs: wall vs the df limit + 1 s, sections filled."""
    from opskit.checks.sections import DF_TIMEOUT

    host = bed.hosts[0]
    code, out = host.exec(["sh", "-c", f"printf '{HUNG_DF}' > /usr/local/bin/df && "
                           "chmod 755 /usr/local/bin/df"])
    if code != 0:
        raise SystemExit(f"cannot place the stand-in df: {out}")
    try:
        t0 = time.perf_counter()
        (d,) = opskit_status(bed, bed.names[:1])
        wall = time.perf_counter() - t0
        _, left = host.exec(["sh", "-c", "pgrep -fx 'sleep 300' || true"])
    finally:
        host.exec(["rm", "-f", "/usr/local/bin/df"])
    filled = [k for k in ("hostname", "os", "kernel", "load", "memory", "top_processes", "docker")
              if d[k] is not None]
    limit = DF_TIMEOUT + 1
    print(f"figure: status with a hung df = {wall:.2f} s (goal <= df limit {DF_TIMEOUT} s + 1 s "
          f"= {limit} s: {'met' if wall <= limit else 'NOT met'}); disks: "
          f"{d['section_errors'].get('disks', {}).get('message')}; filled: {', '.join(filled)}; "
          f"df left running on the host: {'yes ' + left.split()[0] if left.strip() else 'none'}")


def run_bench(args: argparse.Namespace, rtt: float) -> None:
    from opskit.hosts.engine import local_docker_client
    from opskit.images.base import default_tag
    from opskit.testing.sshd import start_ssh_hosts

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    client = local_docker_client()
    kwargs, parent = priority_kwargs(client)
    try:
        with tempfile.TemporaryDirectory() as workdir, start_ssh_hosts(
            client, args.hosts, workdir=workdir, name_prefix="opskit-bench",
            base_image=default_tag(), run_kwargs=kwargs,
        ) as testbed:
            priority = raise_priority(parent)
            run_rounds(args, rtt, testbed, workdir, f"{time.perf_counter() - t0:.1f}", priority)
    finally:
        remove_cgroup(parent)
    print(f"  load average of this shared machine: {load0:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after ({os.cpu_count()} cores)")


def run_rounds(args: argparse.Namespace, rtt: float, testbed: Any, workdir: str, up: str,
               priority: str) -> None:
    from opskit.checks.sections import build_script
    from opskit.checks.status import STATUS_SECTIONS

    proxy, ports = start_proxy(proxy_targets(testbed.hosts), rtt)
    try:
        config, inventory = write_user_files(testbed.hosts, ports, str(testbed.key_path), workdir)
        script = Path(workdir) / "status.sh"
        script.write_text(build_script(STATUS_SECTIONS))
        bed = Bed(testbed.hosts, [f"bench-{i}" for i in range(len(ports))], config, inventory,
                  str(script), proxy)
        print(f"{args.hosts} sshd containers up in {up}s behind a {args.rtt_ms:.0f} ms RTT "
              f"proxy; workload: opskit status (names resolved from an ssh config); medians "
              f"of {args.repeat} rounds of 1 host then {args.hosts}, opskit and OpenSSH in "
              f"turns; priority: {priority}")
        opskit_status(bed, bed.names)  # warm: imports, page cache, sshd's first forks
        openssh_status(bed, bed.names)
        ours, theirs = rounds(bed, args.repeat)
        report(args.hosts, rtt, ours, theirs)
        hung_df_figure(bed)
    finally:
        proxy.kill()
        proxy.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rtt-ms", type=float, default=50.0)
    parser.add_argument("--serve-proxy", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rtt = args.rtt_ms / 1000
    if args.serve_proxy:
        pairs = [(int(p.split("=")[0]), p.split("=", 1)[1]) for p in args.serve_proxy.split(",")]
        _Proxy(pairs, rtt / 2).run()
        return 0
    run_bench(args, rtt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
