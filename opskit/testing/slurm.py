"""A real Slurm 22.05 cluster in containers, for tests and the lab: one login/controller host and
two Docker-in-Docker GPU compute nodes.

- ``slurm-login``: the SSH test host (:mod:`opskit.testing.sshd`) + munge, slurmctld and
  slurm-client; its sshd is published on 127.0.0.1 (the only way in from this machine).
- ``slurm-node1``, ``slurm-node2``: the GPU host (:mod:`opskit.testing.dind`: Docker 20.10 engine
  inside, fake ``nvidia-smi``, sshd) + munge, slurmd and slurm-client; two stand-in GPUs
  (``/dev/nvidia0``, ``/dev/nvidia1``) declared as GRES ``gpu:2``. Reached over SSH only through
  the login host (``ProxyJump slurm-login``, HostName = the node's name on the cluster network,
  port 22), as real sites expose compute nodes.

All three sit on a Docker network of their own (names resolve: the containers carry the names
above as network aliases and host names) and mount one Docker volume at ``/shared`` (owned by
the login user ``opskit``, uid 1000 on all three). One munge key per cluster, made here.
The Slurm configuration is in the image (``images/slurm/slurm.conf``): cluster ``opskit``,
partition ``gpu`` (default, both nodes), ``select/cons_tres``, ``proctrack/linuxproc``,
``task/none``, no cgroup plugins, no accounting; ``SlurmdTimeout=10`` (a node whose slurmd
stops, or that ``lose_node`` freezes, is NOT_RESPONDING after about 13 s and DOWN after about
26 s, measured here; ``ReturnToService=2`` takes it back when its slurmd registers again; batch
jobs on a lost node are requeued, Slurm's default, unless submitted ``--no-requeue``: then they
end NODE_FAIL) and ``MinJobAge=30`` (a finished job stays in squeue/scontrol at least
30 s; slurmctld purges it at its next purge after that: 53-58 s after the end, measured here;
then ``scontrol show job``/``squeue -j`` exit 1 with "Invalid job id specified"). Daemons run in the foreground (``-D``,
munged ``-F``) under ``setsid``, started by ``/usr/local/sbin/opskit-slurm`` from the hosts'
start scripts; logs: ``/var/log/slurm/{slurmctld,slurmd}.{log,out}``, ``/var/log/munge/``
(see ``SlurmCluster.logs``).

Fixture: ``slurm_cluster`` (session scope). Images are reused by content-hash tags.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from opskit import atomic
from opskit.errors import OpskitError
from opskit.testing.slurmaux import (
    remove_network_and_volume,
    remove_orphan_clusters,
    write_cluster_files,
)
from opskit.testing.sshd import (
    LABEL,
    OWNER_LABEL,
    SSHTestHost,
    build_test_image,
    files_hash,
    make_client_key,
    owner_id,
    remove_host,
    ssh_host_image,
    wait_for_sshd,
)
from opskit.waiting import wait_until

IMAGE_DIR = Path(__file__).parent / "images" / "slurm"
IMAGE_REPO = "opskit-slurm"
LOGIN = "slurm-login"
NODES = ("slurm-node1", "slurm-node2")
PARTITION = "gpu"
SHARED_DIR = "/shared"
MUNGE_KEY_MOUNT = "/run/opskit-munge.key"  # read by opskit-slurm (the images' start script)
GPUS_PER_NODE = 2
SLURMD_TIMEOUT = 10  # s, as slurm.conf says
MIN_JOB_AGE = 30  # s, as slurm.conf says
START_TIMEOUT = 120.0
LOG_FILES = {
    "login": ("/var/log/slurm/slurmctld.log", "/var/log/slurm/slurmctld.out",
              "/var/log/munge/munged.log"),
    "node": ("/var/log/slurm/slurmd.log", "/var/log/slurm/slurmd.out",
             "/var/log/munge/munged.log"),
}


# -- images -------------------------------------------------------------------------------------
def slurm_images(client: Any, base_image: str | None = None) -> tuple[str, str]:
    """(login image, node image): the Slurm recipe on the SSH test-host image and on the
    GPU-host image of ``base_image`` (default ``opskit-base:bookworm``); built once, reused by
    a tag that hashes the recipe and the parent image's id."""
    from opskit.images.base import default_tag
    from opskit.testing.dind import gpu_host_image

    base = base_image or default_tag()
    return (_role_image(client, ssh_host_image(client, base), "login"),
            _role_image(client, gpu_host_image(client, base), "node"))


def _role_image(client: Any, parent: str, role: str) -> str:
    files = {p.relative_to(IMAGE_DIR).as_posix(): p for p in IMAGE_DIR.rglob("*") if p.is_file()}
    tag = f"{IMAGE_REPO}:{role}-{files_hash(files, client.images.get(parent).id)}"
    return build_test_image(client, str(IMAGE_DIR), tag, parent, f"slurm-{role}")


# -- the cluster --------------------------------------------------------------------------------
@dataclass
class SlurmCluster:
    """A running cluster: SSH names ``login`` and ``nodes`` (= Slurm NodeNames), the files that
    point opskit and OpenSSH at it (``env()``), and root access to the containers for tests."""

    hosts: dict[str, SSHTestHost]  # by SSH/Slurm name: slurm-login, slurm-node1, slurm-node2
    network: str
    volume: str
    workdir: Path
    key_path: Path
    login: str = LOGIN
    nodes: list[str] = field(default_factory=lambda: list(NODES))
    partition: str = PARTITION
    shared_dir: str = SHARED_DIR
    group: str = "slurm"
    client: Any = field(default=None, repr=False)

    @property
    def inventory_path(self) -> Path:
        return self.workdir / "hosts.yaml"

    @property
    def munge_key_path(self) -> Path:
        """The cluster's munge key, bind-mounted read-only at ``MUNGE_KEY_MOUNT`` on each host."""
        return self.workdir / "munge.key"

    @property
    def ssh_config_path(self) -> Path:
        return self.workdir / "ssh_config"

    @property
    def known_hosts_path(self) -> Path:
        return self.workdir / "known_hosts"

    @property
    def login_port(self) -> int:
        return self.hosts[self.login].port

    def env(self) -> dict[str, str]:
        """Environment variables that point opskit at this cluster."""
        return {
            "OPSKIT_INVENTORY": str(self.inventory_path),
            "OPSKIT_KNOWN_HOSTS": str(self.known_hosts_path),
            "OPSKIT_SSH_CONFIG": str(self.ssh_config_path),
        }

    def container(self, host: str) -> Any:
        """The docker-py Container of ``host`` (``slurm-login``, ``slurm-node1``...)."""
        return self._host(host).container

    def exec(self, host: str, cmd: str | list[str], user: str = "root") -> tuple[int, str]:
        """Run ``cmd`` (argv, or a shell line) in ``host``'s container: (exit code, output)."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        return self._host(host).exec(argv, user=user)

    def check(self, host: str, cmd: str | list[str], user: str = "root") -> str:
        """``exec`` that raises (with the output) unless the command exits 0."""
        code, out = self.exec(host, cmd, user=user)
        if code != 0:
            raise OpskitError(f"{host}: {cmd!r} exited with {code}:\n{out}")
        return out

    def _host(self, host: str) -> SSHTestHost:
        try:
            return self.hosts[host]
        except KeyError:
            raise OpskitError(f"no host {host!r} in this Slurm cluster",
                              f"use one of: {', '.join(self.hosts)}") from None

    # -- Slurm --------------------------------------------------------------------------------
    def node_states(self) -> dict[str, tuple[str, str]]:
        """{NodeName: (sinfo's long state, e.g. 'idle' / 'down*' / 'allocated', its GRES)}."""
        out = self.check(self.login, ["sinfo", "-h", "-N", "-p", self.partition,
                                      "-O", "NodeList:40,StateLong:40,Gres:40"])
        states = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 3:
                states[parts[0]] = (parts[1], parts[2])
        return states

    def wait_idle(self, nodes: list[str] | None = None, timeout: float = START_TIMEOUT) -> None:
        """Wait until ``sinfo`` says the nodes (default: all) are idle."""
        want = nodes or self.nodes

        def idle() -> bool:
            states = self.node_states()
            return all(states.get(n, ("",))[0] == "idle" for n in want)

        try:
            wait_until(idle, timeout, f"Slurm nodes {', '.join(want)} idle", interval=0.5)
        except OpskitError as exc:
            raise OpskitError(f"{exc.message}\n{self.logs()}", exc.hint) from exc

    def job_state(self, job_id: str) -> str | None:
        """The job's JobState by ``scontrol`` (e.g. PENDING, RUNNING, COMPLETED, FAILED,
        NODE_FAIL); None once Slurm has forgotten it (``MIN_JOB_AGE`` s after it ended)."""
        code, out = self.exec(self.login, ["scontrol", "show", "job", "-o", str(job_id)])
        m = re.search(r"\bJobState=(\S+)", out)
        if code != 0 or not m:
            if "Invalid job id" in out:
                return None
            raise OpskitError(f"scontrol show job {job_id}: exit {code}: {out.strip()}")
        return m.group(1)

    def wait_job(self, job_id: str, timeout: float = 120.0) -> str:
        """Wait until the job has ended; its final JobState (None: already forgotten)."""
        ended = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                 "BOOT_FAIL", "DEADLINE", "PREEMPTED")

        def done() -> tuple[str | None]:
            state = self.job_state(job_id)
            return (state,) if state is None or state in ended else ()

        try:
            return wait_until(done, timeout, f"Slurm job {job_id} to end", interval=0.5)[0]
        except OpskitError as exc:
            raise OpskitError(f"{exc.message}\n{self.logs()}", exc.hint) from exc

    def load_image(self, node: str, image: str) -> None:
        """Put ``image`` of this machine's engine into ``node``'s inner engine (docker save |
        docker load; every layer, no ship)."""
        import subprocess

        from opskit.testing.localengine import saved_archive

        proc = subprocess.Popen(["docker", "exec", "-i", self.container(node).id, "docker", "load"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        assert proc.stdin is not None
        try:
            for chunk in saved_archive(self.client, image):
                proc.stdin.write(chunk)
        finally:
            proc.stdin.close()
            out = proc.stdout.read().decode("utf-8", "replace") if proc.stdout else ""
            code = proc.wait()
        if code != 0:
            raise OpskitError(f"{node}: docker load of {image} exited with {code}: {out.strip()}")
        if self.exec(node, ["docker", "image", "inspect", image])[0] != 0:
            raise OpskitError(f"{node}: docker load did not make {image}: {out.strip()}")

    def stop_slurmd(self, node: str, kill: bool = False) -> None:
        """Stop ``node``'s slurmd: Slurm loses the node (NOT_RESPONDING, then DOWN, within
        ``SLURMD_TIMEOUT`` + a ping interval). SIGTERM: the node's running job steps go on;
        ``kill``: SIGKILL to slurmd and every slurmstepd, as in a crash."""
        self.check(node, ["/usr/local/sbin/opskit-slurm", "kill" if kill else "stop"])

        def gone() -> bool:
            return self.exec(node, ["/usr/local/sbin/opskit-slurm", "status"])[0] != 0

        wait_until(gone, 30.0, f"slurmd on {node} to stop", interval=0.2)

    def start_slurmd(self, node: str, wait: bool = True) -> None:
        """Start ``node``'s slurmd again; with ``wait``, until sinfo says the node is idle."""
        self.check(node, ["/usr/local/sbin/opskit-slurm", "start"])
        if wait:
            self.wait_idle([node])

    def wait_node_state(self, node: str, state: str, timeout: float = 90.0) -> str:
        """Wait until sinfo's long state of ``node`` starts with ``state`` (e.g. ``"down"``:
        ``down*`` is DOWN and not responding); return the state."""

        def reached() -> str:
            now = self.node_states().get(node, ("",))[0]
            return now if now.startswith(state) else ""

        return wait_until(reached, timeout, f"{node} {state}", interval=1.0)

    def lose_node(self, node: str) -> None:
        """Freeze ``node`` (docker pause): slurmd, its job steps, its engine and sshd stop
        answering, as a hung or cut-off machine. Slurm marks it not responding (about 13 s
        here), then DOWN (about 26 s) and ends its jobs NODE_FAIL, or requeues them (Slurm's
        default for batch jobs; not with ``sbatch --no-requeue``). ``restore_node`` undoes it."""
        self.container(node).pause()

    def restore_node(self, node: str, wait: bool = True) -> None:
        """Unfreeze ``node``; with ``wait``, until sinfo says it is idle (ReturnToService=2)."""
        self.container(node).unpause()
        if wait:
            self.wait_idle([node])

    def logs(self, tail: int = 40) -> str:
        """The last lines of every daemon's log on every host (for a failing test's output)."""
        parts = []
        for name, host in self.hosts.items():
            role = "login" if name == self.login else "node"
            for path in LOG_FILES[role]:
                try:
                    code, out = host.exec(["tail", "-n", str(tail), path])
                except Exception as exc:  # noqa: BLE001 - a log that cannot be read is said so
                    code, out = 1, str(exc)
                parts.append(f"--- {name}:{path} ---\n{out.rstrip() if code == 0 else out}")
        return "\n".join(parts)

    # -- files ----------------------------------------------------------------------------------
    def write_files(self) -> None:
        """(Re)write known_hosts, ssh config and inventory from the hosts' current state."""
        write_cluster_files(self)

    def close(self) -> None:
        """Remove the containers, then the network and the shared volume."""
        errors = []
        with ThreadPoolExecutor(max_workers=3) as pool:
            for err in pool.map(remove_host, list(self.hosts.values())):
                if err:
                    errors.append(err)
        self.hosts = {}
        self.munge_key_path.unlink(missing_ok=True)
        errors += remove_network_and_volume(self.client, self.network, self.volume)
        if errors:
            raise OpskitError("could not remove the Slurm cluster: " + "; ".join(errors))

    def __enter__(self) -> SlurmCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- starting one -------------------------------------------------------------------------------
def start_slurm_cluster(
    client: Any,
    *,
    workdir: str | Path,
    base_image: str | None = None,
    name_prefix: str = "opskit-slurm",
    labels: dict[str, str] | None = None,
    disk: str | None = None,
    timeout: float = START_TIMEOUT,
) -> SlurmCluster:
    """Start a cluster and wait until ``sinfo`` says both nodes are idle; close it to remove it.

    ``labels`` are added to its containers, network and volume (e.g. a fixed owner label for
    scripts/lab.py's cluster, which must outlive this process). ``disk`` sizes the nodes'
    engine tmpfs (default: opskit.testing.dind's)."""
    from opskit.testing.dind import DEFAULT_DISK, gpu_host_run_kwargs

    login_image, node_image = slurm_images(client, base_image)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(3)
    all_labels = {LABEL: "slurm", OWNER_LABEL: owner_id(), **(labels or {})}
    network = client.networks.create(f"{name_prefix}-net-{token}", driver="bridge",
                                     labels=all_labels).name
    volume = client.volumes.create(f"{name_prefix}-shared-{token}", labels=all_labels).name
    cluster = SlurmCluster(hosts={}, network=network, volume=volume, workdir=workdir,
                           key_path=workdir / "id_ed25519", client=client)
    pubkey = make_client_key(cluster.key_path)
    # munge's key reaches the hosts as a read-only file (0600 here), never in their environment,
    # which anyone who may 'docker inspect' reads
    atomic.write_bytes(cluster.munge_key_path, secrets.token_bytes(128))
    env = {"OPSKIT_AUTHORIZED_KEY": pubkey}
    lock = threading.Lock()

    def start(name: str) -> None:
        role = "login" if name == LOGIN else "node"
        kwargs = {} if role == "login" else gpu_host_run_kwargs(
            client, node_image, disk=disk or DEFAULT_DISK)
        role_env = {**env, "OPSKIT_SLURM_ROLE": role, "OPSKIT_SLURM_NODES": " ".join(NODES)}
        kwargs = _host_kwargs(client, cluster, name, f"{name_prefix}-{name.split('-')[1]}-{token}",
                              role_env, all_labels, kwargs)
        _run_host(client, cluster, name, login_image if role == "login" else node_image,
                  kwargs, lock)

    try:
        # the nodes' containers first: slurmctld resolves the NodeNames once, when it starts
        # (its start script also waits until they resolve)
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(start, NODES))
            start(LOGIN)
            list(pool.map(lambda h: _wait_host(h, timeout), list(cluster.hosts.values())))
        cluster.write_files()
        cluster.wait_idle(timeout=timeout)
    except BaseException:
        cluster.close()
        raise
    return cluster


def _host_kwargs(client: Any, cluster: SlurmCluster, name: str, container_name: str,
                 env: dict[str, str], labels: dict[str, str], extra: dict) -> dict:
    """docker-py run arguments of one cluster host: on the cluster network under its Slurm
    name, the shared volume at /shared, sshd published on 127.0.0.1 for the login host only."""
    from docker.types import EndpointConfig, Mount

    kwargs = dict(extra)
    kwargs.update({
        "name": container_name,
        "hostname": name,
        "environment": {**kwargs.get("environment", {}), **env},
        "labels": {**kwargs.get("labels", {}), **labels, LABEL: f"slurm-{name}"},
        "network": cluster.network,
        "networking_config": {cluster.network: EndpointConfig(client.api._version, aliases=[name])},
        "mounts": [*kwargs.get("mounts", []),
                   Mount(SHARED_DIR, cluster.volume, type="volume"),
                   Mount(MUNGE_KEY_MOUNT, str(cluster.munge_key_path), type="bind", read_only=True)],
    })
    if name == LOGIN:
        kwargs["ports"] = {"22/tcp": ("127.0.0.1", None)}
    return kwargs


def _run_host(client: Any, cluster: SlurmCluster, name: str, image: str, kwargs: dict,
              lock: threading.Lock) -> None:
    from opskit.testing.containers import make_container
    from opskit.testing.sshd import _published_port

    host = SSHTestHost(name, None, 22, testcontainer=make_container(client, image, kwargs))
    with lock:  # recorded at once, so that close() removes it whatever happens next
        cluster.hosts[name] = host
    host.container = host.testcontainer.start().get_wrapped_container()
    if name == LOGIN:
        host.port = _published_port(host)


def _wait_host(host: SSHTestHost, timeout: float) -> None:
    """Wait until the host's sshd answers (its start scripts, daemons included, are done)."""
    name = host.name
    if name == LOGIN:
        wait_for_sshd(host, timeout)
        return

    def sshd_up() -> bool:  # a node has no published port: its sshd runs once start.d is done
        host.container.reload()
        if host.container.status not in ("created", "running"):
            raise OpskitError(f"{name}: container stopped ({host.container.status}):\n"
                              + host.container.logs(tail=30).decode("utf-8", "replace"))
        return host.exec(["sh", "-c", "kill -0 $(cat /run/sshd.pid)"])[0] == 0

    wait_until(sshd_up, timeout, f"sshd in {host.container.name}", interval=0.25)
    host.host_keys = host.read_host_keys()


# -- pytest fixture -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def slurm_cluster(docker_client: Any, base_image: str,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A Slurm cluster (``slurm-login`` + ``slurm-node1``/``slurm-node2``, partition ``gpu``),
    started once per session, both nodes idle; removed at session end."""
    remove_orphan_clusters(docker_client)
    cluster = start_slurm_cluster(docker_client, workdir=tmp_path_factory.mktemp("slurm"),
                                  base_image=base_image)
    try:
        yield cluster
    finally:
        cluster.close()
