"""A Docker-in-Docker engine used as the LOCAL engine (the sending side of build/ship/run-remote).

``start_local_engine(client, engine="containerd")`` starts a container from the GPU-host image
of that kind (:mod:`opskit.testing.dind`) running only ``dockerd``, and returns a
:class:`LocalEngine`: a docker-py client for it and the environment (``DOCKER_HOST``, ``HOME``)
that points opskit, run as a subprocess, at it. ``engine="legacy"`` gives an EMPTY Docker 20.10
engine on the overlay2 store (a fresh machine); ``engine="containerd"`` Docker 26 on the
containerd image store, as fresh installs of Docker 29 have it.

The choices, and why:

- **One shared folder at the same path.** A private folder ``D`` on this machine
  (``/tmp/opskit-engine-XXXX``) is bind-mounted into the container at ``D`` itself. The engine
  listens on ``unix://D/docker.sock`` (no TCP port, so nothing else on loopback can drive it)
  and keeps its data in ``--data-root D/root``. So ``docker info``'s ``DockerRootDir`` is
  readable from this machine at the very path the engine reports: opskit can read the local
  layer store from disk (overlay2's ``image/overlay2/layerdb`` and ``overlay2/``, or, on the
  containerd store, dockerd's own containerd under ``D/root/containerd/daemon``, content
  blobs in ``io.containerd.content.v1.content/blobs/sha256/``).
- **Bind mounts the engine can see.** A local run (``run-remote --host localhost``) mounts
  ``$HOME/.opskit/runs/RUN`` into its container; the engine resolves that path in ITS mount
  namespace. ``env()`` therefore sets ``HOME=D/home``: every path opskit makes under it exists
  for both sides. Everything else opskit writes under ``HOME`` (caches: the wheelhouse) starts
  empty too, as on a fresh machine; pip's own configuration is machine-wide and unaffected.
- **Never a second dockerd on this machine** (it would take ``docker0`` down): the engine runs
  inside a container, with the same privileges as the GPU hosts (``privileged`` where allowed,
  else the documented fallback set), its exec-root, containerd and bridge private to the
  container's namespaces.
- Removal: ``close()`` removes the container, then ``D`` (root-owned files; this suite runs as
  root). A session killed before that leaves both; ``remove_orphan_engines`` reaps them
  (by the owner label, as :func:`opskit.testing.sshd.remove_orphans` does for hosts).

Fixtures: ``local_engine_factory`` (session scope: ``factory("containerd")``, one engine per
kind and session, reused) and ``empty_local_engine`` (function scope: a brand-new, empty
legacy engine, removed after the test).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from opskit.errors import OpskitError
from opskit.testing.dind import (
    ENGINE_LABEL,
    LABEL,
    check_engine_store,
    dind_run_kwargs,
    engine_kind,
    gpu_host_image,
)
from opskit.testing.sshd import OWNER_LABEL, _remove_gone, orphans, owner_id
from opskit.waiting import wait_until

DIR_LABEL = "opskit.testing.engine-dir"
START_TIMEOUT = 60.0


@dataclass
class LocalEngine:
    """A Docker-in-Docker engine reachable on a unix socket in a folder shared at one path."""

    kind: str
    shared: Path  # bind-mounted into the container at the same path
    client: Any  # docker-py client of the engine
    container: Any = field(repr=False)  # docker-py Container on this machine's engine
    testcontainer: Any = field(default=None, repr=False)

    @property
    def socket(self) -> Path:
        return self.shared / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def data_root(self) -> Path:
        return self.shared / "root"

    @property
    def home(self) -> Path:
        return self.shared / "home"

    def env(self) -> dict[str, str]:
        """Variables that make opskit (and the docker CLI) use this engine as the local one."""
        return {"DOCKER_HOST": self.docker_host, "HOME": str(self.home)}

    def info(self) -> dict:
        return self.client.info()

    def docker(self, *argv: str, input_file: Any = None, timeout: float = 900) -> str:
        """Run the docker CLI of this machine against this engine; its output (raises on error)."""
        env = {**os.environ, "DOCKER_HOST": self.docker_host}
        proc = subprocess.run(["docker", *argv], env=env, stdin=input_file, capture_output=True,
                              timeout=timeout, check=False)
        if proc.returncode != 0:
            raise OpskitError(f"docker {' '.join(argv)} on the {self.kind} local engine failed: "
                              f"{proc.stderr.decode('utf-8', 'replace')[-1500:]}")
        return proc.stdout.decode("utf-8", "replace")

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            _remove(self.container, self.testcontainer)
            remove_shared_dir(self.shared)


def saved_archive(client: Any, ref: str) -> Iterator[bytes]:
    """``docker save REF``: the image archive, in chunks, that names the image ``ref`` exactly.

    Not docker-py's ``Image.save(named=True)``: that names the archive after the image's FIRST
    tag, which is another name whenever the image has several (a training image tagged by
    every test module), so ``docker load`` of it leaves ``ref`` missing on the other side."""
    return client.api.get_image(ref)


def copy_image(source: Any, engine: LocalEngine, ref: str) -> str:
    """Put image ``ref`` of the engine ``source`` (docker-py client) on ``engine``, as
    ``docker save | docker load`` would (the archive spooled to an unnamed temporary file, the
    docker CLI's stdin). Returns ``ref``."""
    from opskit.hosts.dockererrors import or_none

    with tempfile.TemporaryFile(prefix="opskit-copy-") as spool:
        for chunk in saved_archive(source, ref):
            spool.write(chunk)
        spool.seek(0)
        out = engine.docker("load", "--quiet", input_file=spool)
    if or_none(lambda: engine.client.api.inspect_image(ref)) is None:  # load can exit 0 and not tag it
        raise OpskitError(f"docker load on the {engine.kind} local engine did not make {ref}: {out.strip()[-1500:]}")
    return ref


def remove_shared_dir(path: Path) -> None:
    """Remove an engine's shared folder (its data root holds root-owned layer files)."""
    if path.is_dir() and path.name.startswith("opskit-engine-"):
        shutil.rmtree(path, ignore_errors=True)


def dockerd_argv(kind_name: str, shared: Path) -> list[str]:
    kind = engine_kind(kind_name)
    return ["dockerd", "-H", f"unix://{shared}/docker.sock", "--data-root", str(shared / "root"),
            "--pidfile", "/run/opskit-local-dockerd.pid", *kind.dockerd_args]


def _run_kwargs(client: Any, image: str, kind: str, shared: Path) -> dict:
    from docker.types import Mount

    kwargs = dict(dind_run_kwargs(client, image))
    mounts = [Mount(str(shared), str(shared), type="bind")]
    if not kwargs.get("privileged"):
        mounts.append(Mount("/sys/fs/cgroup", "/sys/fs/cgroup", type="bind", read_only=False))
    kwargs.update({
        "name": f"opskit-engine-{kind}-{secrets.token_hex(3)}",
        "entrypoint": dockerd_argv(kind, shared),
        "mounts": mounts,
        "labels": {LABEL: "local-engine", ENGINE_LABEL: kind, OWNER_LABEL: owner_id(),
                   DIR_LABEL: str(shared)},
    })
    return kwargs


def _remove(container: Any, testcontainer: Any) -> None:
    from opskit.testing.containers import remove_container

    if testcontainer is not None:
        remove_container(testcontainer)
    elif container is not None:
        container.remove(force=True, v=True)


def _connect(container: Any, kind: str, socket_path: Path) -> Any:
    """A docker-py client of the engine, once it answers on its socket (API version agreed)."""
    import json

    import docker
    from docker.errors import DockerException

    clients: list[Any] = []

    def answers() -> bool:
        container.reload()
        if container.status not in ("created", "running"):
            logs = container.logs(tail=30).decode("utf-8", "replace")
            raise OpskitError(f"the {kind} local engine stopped ({container.status}):\n{logs}")
        if not socket_path.exists():
            return False
        try:
            clients.append(docker.DockerClient(base_url=f"unix://{socket_path}", timeout=600))
        except DockerException:  # the socket is there, the API not yet: keep waiting
            return False
        return True

    wait_until(answers, START_TIMEOUT, f"the {kind} local engine on {socket_path}",
               interval=0.1, max_interval=0.5)
    client = clients[-1]
    try:
        check_engine_store(container.name, kind, 0, json.dumps(client.info()))
    except BaseException:
        client.close()
        raise
    return client


def start_local_engine(client: Any, engine: str = "containerd") -> LocalEngine:
    """Start an empty Docker-in-Docker engine of kind ``engine`` to use as the local engine."""
    from opskit.testing.containers import make_container

    image = gpu_host_image(client, engine=engine)
    shared = Path(tempfile.mkdtemp(prefix="opskit-engine-"))
    (shared / "home").mkdir()
    tc = None
    try:
        tc = make_container(client, image, _run_kwargs(client, image, engine, shared))
        container = tc.start().get_wrapped_container()
        engine_client = _connect(container, engine, shared / "docker.sock")
    except BaseException:
        if tc is not None:
            _remove(None, tc)
        remove_shared_dir(shared)
        raise
    return LocalEngine(engine, shared, engine_client, container, tc)


def remove_orphan_engines(client: Any) -> list[str]:
    """Remove local engines (container and shared folder) whose starting process is gone."""
    removed = []
    for c in orphans(client, DIR_LABEL):
        if _remove_gone(client, c["Id"]):
            remove_shared_dir(Path(c["Labels"][DIR_LABEL]))
            removed.append(c["Name"])
    return removed


# -- pytest fixtures ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def local_engine_factory(docker_client: Any) -> Iterator[Callable[[str], LocalEngine]]:
    """``factory(kind)``: the session's Docker-in-Docker local engine of that kind (started on
    first use, reused, removed at session end)."""
    remove_orphan_engines(docker_client)
    engines: dict[str, LocalEngine] = {}

    def factory(kind: str) -> LocalEngine:
        if kind not in engines:
            engines[kind] = start_local_engine(docker_client, kind)
        return engines[kind]

    yield factory
    for eng in engines.values():
        eng.close()


@pytest.fixture
def empty_local_engine(docker_client: Any) -> Iterator[LocalEngine]:
    """A brand-new legacy engine with no images at all (a fresh machine), removed afterwards."""
    remove_orphan_engines(docker_client)
    eng = start_local_engine(docker_client, "legacy")
    try:
        yield eng
    finally:
        eng.close()
