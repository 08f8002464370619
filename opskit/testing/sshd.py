"""Real OpenSSH servers in containers, for tests (and anyone's pytest suite).

``start_ssh_hosts(client, n)`` starts ``n`` containers from the SSH test-host image (built
from ``opskit/testing/images/sshd/`` on the offline base, reused by a stable tag). Each
container makes its own host keys when it starts; the session gets its own client key; ports
are published on 127.0.0.1 only; the workdir holds an inventory, an ssh config, a key and a
known_hosts file pinned from the keys read inside each container (never from the network).
Login user ``opskit``: no password, passwordless sudo, in group ``docker`` if it exists.
The containers are started and removed through testcontainers' ``DockerContainer`` (see
:mod:`opskit.testing.containers`); readiness is a real SSH handshake (``wait_for_sshd``).

Fixtures: ``ssh_testbed`` (session scope, 2 hosts) and ``ssh_testbed_factory`` (start more,
e.g. ``factory(16)`` or Docker-in-Docker hosts with ``image=`` and ``run_kwargs=``).

Deriving an image (``FROM`` the tag ``ssh_host_image`` returns; keep its ENTRYPOINT):
executables in ``/etc/opskit-host/start.d/`` run in name order before sshd starts (start
daemons there). Container environment: ``OPSKIT_AUTHORIZED_KEY`` (set by
``start_ssh_hosts``), ``OPSKIT_HOST_KEY_TYPES`` (default ``"ed25519 ecdsa"``),
``OPSKIT_SSHD_FLAGS`` (default ``-r``). ``opskit-host-entry --new-host-keys`` (docker exec)
gives a running host new keys, see ``restart_with_new_host_keys``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shlex
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from opskit import atomic
from opskit.errors import BuildError, OpskitError
from opskit.testing.containers import make_container, remove_container
from opskit.waiting import wait_until

IMAGE_DIR = Path(__file__).parent / "images" / "sshd"
IMAGE_REPO = "opskit-testhost"
LOGIN_USER = "opskit"
LABEL = "opskit.testing"
OWNER_LABEL = "opskit.testing.owner"  # "<machine>:<pid>" of the process that started it
START_TIMEOUT = 60.0
DEFAULT_HOST_KEY_TYPES = ("ed25519", "ecdsa")


# -- the image ----------------------------------------------------------------------------------
def files_hash(files: dict[str, Path], extra: str = "") -> str:
    """A short hash of a build context given as {relative path: file} (names, modes, contents)."""
    h = hashlib.sha256(extra.encode())
    for rel, path in sorted(files.items()):
        h.update(f"{rel}\0{path.stat().st_mode & 0o111:o}\0".encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def image_dir_hash(directory: Path = IMAGE_DIR, extra: str = "") -> str:
    """A short hash of every file in the image's folder (names, modes and contents)."""
    return files_hash({p.relative_to(directory).as_posix(): p for p in directory.rglob("*") if p.is_file()}, extra)


def build_test_image(client: Any, context: str, tag: str, base: str, what: str) -> str:
    """``tag`` if the local engine has it; else build ``context`` as ``tag`` (build arg ``BASE``,
    never pulling). A failed build raises BuildError with the log's tail."""
    from docker.errors import BuildError as DockerBuildError
    from docker.errors import ImageNotFound

    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:  # not built yet for this base and context: build it below
        pass
    try:
        client.images.build(
            path=context, tag=tag, buildargs={"BASE": base},
            rm=True, forcerm=True, pull=False, labels={LABEL: what},
        )
    except DockerBuildError as exc:
        tail = "".join(str(e.get("stream") or e.get("error") or "") for e in exc.build_log)[-2000:]
        raise BuildError(
            f"building the test-host image {tag} failed: {exc.msg}\n{tail}",
            "apt-get inside 'docker build' must reach the Debian mirror",
        ) from exc
    return tag


def ssh_host_image(client: Any, base_image: str) -> str:
    """Tag of the SSH test-host image on ``base_image``; built once, then reused by tag.

    The tag hashes the image folder and the base image's id, so a changed recipe or a
    rebuilt base gives a new tag instead of a stale image.
    """
    base_id = client.images.get(base_image).id
    tag = f"{IMAGE_REPO}:{image_dir_hash(extra=base_id)}"
    return build_test_image(client, str(IMAGE_DIR), tag, base_image, "sshd-host")


# -- keys ---------------------------------------------------------------------------------------
def make_client_key(path: Path) -> str:
    """Write a new ed25519 private key (OpenSSH format, mode 0600); return the public line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    atomic.write_bytes(path, private)
    os.chmod(path, 0o600)
    atomic.write_text(path.with_name(path.name + ".pub"), public + " opskit-testbed\n")
    return public + " opskit-testbed"


def handshake_host_key(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> Any:
    """Do a real SSH handshake (no authentication) and return the server's host key."""
    import paramiko

    from opskit.hosts.sshconnect import quiet_paramiko_logs

    quiet_paramiko_logs()
    sock = socket.create_connection((host, port), timeout=timeout)
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    finally:
        transport.close()
        sock.close()


# -- the hosts ----------------------------------------------------------------------------------
@dataclass
class SSHTestHost:
    name: str
    container: Any  # docker-py Container (testcontainers' wrapped container)
    port: int
    host_keys: list[str] = field(default_factory=list)  # "type base64" lines from the container
    testcontainer: Any = field(default=None, repr=False)  # the DockerContainer that started it

    def remove(self) -> None:
        """Remove the container (force, with its anonymous volumes)."""
        if self.testcontainer is not None:
            remove_container(self.testcontainer)
        elif self.container is not None:
            self.container.remove(force=True, v=True)

    def exec(self, argv: list[str], user: str = "root") -> tuple[int, str]:
        """Run ``argv`` inside the container (docker exec, not SSH): (exit code, output).

        The output and exit code are also kept in a file in the container and read again when
        the exec stream came back without them: under load docker's exec stream now and then
        returns nothing at all (docker/docker-py#2042), and a test would read that as an empty
        listing. The command itself runs once."""
        keep = f"/tmp/.opskit-exec-{secrets.token_hex(6)}"
        # argv travels in the environment, not on the wrapper's command line, so that e.g.
        # 'pkill -f PATTERN' does not match (and kill) the wrapping shell itself
        env = {"OPSKIT_EXEC_ARGV": shlex.join(argv)}
        run = ["sh", "-c", 'f=$1; eval "$OPSKIT_EXEC_ARGV" >"$f" 2>&1; echo $? >"$f.rc"; ' + _EXEC_TRAILER,
               "sh", keep]
        again = ["sh", "-c", 'f=$1; ' + _EXEC_TRAILER, "sh", keep]
        for attempt in (run, again, again, again, again):
            res = self.container.exec_run(attempt, user=user, demux=False, environment=env)
            text = (res.output or b"").decode("utf-8", "replace")
            body, sep, code = text.rpartition("\n" + _EXEC_MARK + " ")
            if sep and code.strip().isdigit():
                self.container.exec_run(["rm", "-f", keep, keep + ".rc"], user=user)
                return int(code), body
        raise OpskitError(f"{self.name}: docker exec of {argv!r} gave no output five times")

    def read_host_keys(self) -> list[str]:
        code, out = self.exec(["sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"])
        if code != 0:
            raise OpskitError(f"{self.name}: cannot read host keys: {out.strip()}")
        keys = [" ".join(line.split()[:2]) for line in out.splitlines() if line.strip()]
        # ed25519 first: clients that order host key types by known_hosts ask for it first
        return sorted(keys, key=lambda k: (not k.startswith("ssh-ed25519"), k))

    def known_hosts_lines(self, hostname: str = "127.0.0.1") -> list[str]:
        entry = hostname if self.port == 22 else f"[{hostname}]:{self.port}"
        return [f"{entry} {key}" for key in self.host_keys]


_EXEC_MARK = "__opskit_exec_rc__"
_EXEC_TRAILER = f'cat "$f"; printf "\\n{_EXEC_MARK} %s" "$(cat "$f.rc")"'


@dataclass
class SSHTestBed:
    hosts: list[SSHTestHost]
    workdir: Path
    key_path: Path
    inventory_path: Path
    ssh_config_path: Path
    known_hosts_path: Path
    group: str = "testbed"

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.hosts]

    def host(self, name: str) -> SSHTestHost:
        return next(h for h in self.hosts if h.name == name)

    def env(self) -> dict[str, str]:
        """Environment variables that point opskit at these hosts."""
        return {
            "OPSKIT_INVENTORY": str(self.inventory_path),
            "OPSKIT_KNOWN_HOSTS": str(self.known_hosts_path),
            "OPSKIT_SSH_CONFIG": str(self.ssh_config_path),
        }

    def inventory(self) -> Any:
        from opskit.hosts.inventory import load_inventory

        return load_inventory(str(self.inventory_path), ssh_config=str(self.ssh_config_path))

    def specs(self, names: list[str] | None = None) -> list[Any]:
        return self.inventory().expand(names or self.names)

    def write_files(self) -> None:
        """(Re)write inventory, ssh config and known_hosts from the hosts' current state."""
        _write_known_hosts(self)
        _write_ssh_config(self)
        _write_inventory(self)

    def close(self) -> None:
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(self.hosts)))) as pool:
            errors = [e for e in pool.map(remove_host, self.hosts) if e]
        self.hosts = []
        if errors:
            raise OpskitError("could not remove test containers: " + "; ".join(errors))

    def __enter__(self) -> SSHTestBed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove_host(host: SSHTestHost) -> str | None:
    """Remove a test host's container: None when removed (or already gone), else why not."""
    try:
        host.remove()
    except Exception as exc:  # noqa: BLE001 - collected by the caller, raised there
        if "No such container" not in str(exc):
            return f"{host.name}: {exc}"
    return None


def _write_known_hosts(bed: SSHTestBed) -> None:
    lines = [line for h in bed.hosts for line in h.known_hosts_lines()]
    atomic.write_text(bed.known_hosts_path, "\n".join(lines) + "\n")


def _write_ssh_config(bed: SSHTestBed) -> None:
    blocks = []
    for h in bed.hosts:
        blocks.append(
            f"Host {h.name}\n"
            f"    HostName 127.0.0.1\n"
            f"    Port {h.port}\n"
            f"    User {LOGIN_USER}\n"
            f"    IdentityFile {bed.key_path}\n"
            f"    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {bed.known_hosts_path}\n"
            f"    StrictHostKeyChecking yes\n"
        )
    atomic.write_text(bed.ssh_config_path, "\n".join(blocks))


def _write_inventory(bed: SSHTestBed) -> None:
    import yaml

    data = {
        "defaults": {"connect_timeout": 10, "command_timeout": 60},
        "hosts": {
            h.name: {
                "hostname": "127.0.0.1",
                "port": h.port,
                "user": LOGIN_USER,
                "identityfile": [str(bed.key_path)],
                "identities_only": True,
                "known_hosts": [str(bed.known_hosts_path)],
            }
            for h in bed.hosts
        },
        "groups": {bed.group: [h.name for h in bed.hosts]},
    }
    atomic.write_text(bed.inventory_path, yaml.safe_dump(data, sort_keys=False))


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def remove_orphans(client: Any) -> list[str]:
    """Remove test hosts whose starting process (on this machine) is gone, e.g. killed
    before its finalizers ran. Hosts of live processes (parallel sessions) are left alone.

    This stays docker-py: these containers have no ``DockerContainer`` in this process (a
    ``DockerContainer`` cannot adopt an existing container), and testcontainers' own reaper,
    Ryuk, is disabled here (its image would be pulled)."""
    return [c["Name"] for c in orphans(client, OWNER_LABEL) if _remove_gone(client, c["Id"])]


def orphans(client: Any, label: str) -> list[dict]:
    """Containers carrying ``label`` (and the owner label) whose starting process on this
    machine is gone: ``{"Id", "Name", "Labels"}`` from ONE list call (a per-container inspect
    would fail on a container that a parallel session removes meanwhile)."""
    found = []
    for c in client.api.containers(all=True, filters={"label": label}):
        labels = c.get("Labels") or {}
        if not owner_gone(labels):
            continue
        found.append({"Id": c["Id"], "Name": (c.get("Names") or [c["Id"][:12]])[0].lstrip("/"),
                      "Labels": labels})
    return found


def owner_gone(labels: dict) -> bool:
    """The owner label names a process of this machine that is gone (its session was killed)."""
    machine, _, pid = labels.get(OWNER_LABEL, "").rpartition(":")
    return machine == socket.gethostname() and pid.isdigit() and not _alive(int(pid))


def _remove_gone(client: Any, container_id: str) -> bool:
    """Remove a container (force, with its volumes); False when it was already gone."""
    from docker.errors import NotFound

    try:
        client.api.remove_container(container_id, force=True, v=True)
    except NotFound:  # a parallel session reaped it first
        return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _published_port(host: SSHTestHost) -> int:
    """The host port testcontainers reports for 22/tcp, checked to be on 127.0.0.1."""
    container = host.container
    try:
        port = int(host.testcontainer.get_exposed_port(22))  # waits until running
    except (TimeoutError, RuntimeError, ConnectionError) as exc:
        container.reload()
        logs = container.logs(tail=30).decode("utf-8", "replace")
        raise OpskitError(
            f"{host.name}: container {container.name} did not start with port 22 published "
            f"({container.status}: {exc}):\n{logs}") from exc
    bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get("22/tcp") or []
    if not any(b.get("HostIp") in ("127.0.0.1", "") and b.get("HostPort") == str(port)
               for b in bindings):
        raise OpskitError(f"container {container.name}: 22/tcp is not published on 127.0.0.1 "
                          f"only: {bindings}")
    return port


def _run_kwargs(name: str, pubkey: str, run_kwargs: dict) -> dict:
    """docker-py ``containers.run`` keyword arguments of one host (``run_kwargs`` merged)."""
    kwargs: dict[str, Any] = {
        "name": name,
        "hostname": name,
        "ports": {"22/tcp": ("127.0.0.1", None)},
        "environment": {"OPSKIT_AUTHORIZED_KEY": pubkey},
        "labels": {LABEL: "sshd-host", OWNER_LABEL: owner_id()},
    }
    extra = dict(run_kwargs)
    env = extra.pop("environment", None) or {}
    labels = extra.pop("labels", None) or {}
    kwargs["environment"].update(env)
    kwargs["labels"].update(labels)
    kwargs.update(extra)
    return kwargs


def wait_for_sshd(host: SSHTestHost, timeout: float = START_TIMEOUT) -> None:
    """Wait until the host answers a real SSH handshake with one of its own keys."""

    def ready() -> bool:
        host.container.reload()
        if host.container.status not in ("created", "running"):
            logs = host.container.logs(tail=30).decode("utf-8", "replace")
            raise OpskitError(f"{host.name}: container stopped ({host.container.status}):\n{logs}")
        key = handshake_host_key(host.port, timeout=2.0)
        line = f"{key.get_name()} {key.get_base64()}"
        if line not in host.host_keys:
            host.host_keys = host.read_host_keys()
        if line not in host.host_keys:
            raise OpskitError(f"{host.name}: handshake key {key.get_name()} is not the container's")
        return True

    try:
        wait_until(ready, timeout, f"sshd in {host.container.name} on 127.0.0.1:{host.port}",
                   interval=0.1, max_interval=0.5)
    except OpskitError as exc:
        logs = host.container.logs(tail=30).decode("utf-8", "replace")
        raise OpskitError(f"{exc.message}\ncontainer log:\n{logs}", exc.hint) from exc


def restart_with_new_host_keys(bed: SSHTestBed, host: SSHTestHost) -> None:
    """Give ``host`` fresh host keys on the same port, as a reinstalled machine shows them.

    The new keys are NOT pinned: known_hosts keeps the old ones (that is the point).
    """
    old = set(host.host_keys)
    code, out = host.exec(["/usr/local/sbin/opskit-host-entry", "--new-host-keys"])
    if code != 0:
        raise OpskitError(f"{host.name}: cannot make new host keys: {out.strip()}")
    host.host_keys = []

    def new_key_served() -> bool:
        key = handshake_host_key(host.port, timeout=2.0)
        return f"{key.get_name()} {key.get_base64()}" not in old

    wait_until(new_key_served, START_TIMEOUT, f"new host keys on {host.name}", interval=0.1)
    wait_for_sshd(host)


def start_ssh_hosts(
    client: Any,
    n: int,
    *,
    image: str | None = None,
    run_kwargs: dict | None = None,
    name_prefix: str = "opskit-test",
    workdir: str | os.PathLike,
    base_image: str | None = None,
) -> SSHTestBed:
    """Start ``n`` SSH test hosts; return the bed (close it, or use it as a context manager).

    ``image`` defaults to the SSH test-host image on ``base_image`` (default
    ``opskit-base:bookworm``); a derived image must keep its ENTRYPOINT. ``run_kwargs`` are
    docker-py ``containers.run`` arguments, merged into the defaults (``environment`` and
    ``labels`` key by key) and given to testcontainers' ``DockerContainer``.
    """
    if image is None:
        from opskit.images.base import default_tag

        image = ssh_host_image(client, base_image or default_tag())
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    key_path = workdir / "id_ed25519"
    pubkey = make_client_key(key_path)
    token = secrets.token_hex(3)
    bed = SSHTestBed(
        hosts=[], workdir=workdir, key_path=key_path,
        inventory_path=workdir / "hosts.yaml", ssh_config_path=workdir / "ssh_config",
        known_hosts_path=workdir / "known_hosts",
    )
    lock = threading.Lock()

    def start_one(i: int) -> None:
        name = f"{name_prefix}-{i}"
        kwargs = _run_kwargs(f"{name}-{token}", pubkey, run_kwargs or {})
        host = SSHTestHost(name, None, 0, testcontainer=make_container(client, image, kwargs))
        with lock:  # recorded at once, so that close() removes it whatever happens next
            bed.hosts.append(host)
        host.container = host.testcontainer.start().get_wrapped_container()
        host.port = _published_port(host)
        wait_for_sshd(host)

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(8, n))) as pool:
            futures = [pool.submit(start_one, i) for i in range(1, n + 1)]
            errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]
        bed.hosts.sort(key=lambda h: int(h.name.rsplit("-", 1)[1]))
        bed.write_files()
    except BaseException:
        bed.close()
        raise
    return bed


# -- pytest fixtures ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def ssh_testbed_factory(
    docker_client: Any, base_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., SSHTestBed]]:
    """``factory(n, **kwargs)`` starts ``n`` more hosts; all are removed at session end."""
    beds: list[SSHTestBed] = []
    remove_orphans(docker_client)

    def factory(n: int, **kwargs: Any) -> SSHTestBed:
        kwargs.setdefault("base_image", base_image)
        workdir = kwargs.pop("workdir", None) or tmp_path_factory.mktemp("sshbed")
        bed = start_ssh_hosts(docker_client, n, workdir=workdir, **kwargs)
        beds.append(bed)
        return bed

    yield factory
    for bed in beds:
        bed.close()


@pytest.fixture(scope="session")
def ssh_testbed(ssh_testbed_factory: Callable[..., SSHTestBed]) -> SSHTestBed:
    """Two real sshd hosts (``opskit-test-1``, ``opskit-test-2``, group ``@testbed``)."""
    return ssh_testbed_factory(2)
