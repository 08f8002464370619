"""Docker-in-Docker "GPU hosts" for tests: real sshd, a real Docker engine, a fake NVIDIA stack.

Each host is a container from the ``opskit-gpuhost`` image (``opskit/testing/images/gpuhost/``,
derived from the SSH test-host image of :mod:`opskit.testing.sshd`). Its start script runs
``dockerd`` (overlay2 on a volume at ``/var/lib/docker``) before sshd starts, so a host that
answers SSH also has a usable engine for the login user ``opskit`` (group ``docker``).
The fake ``nvidia-smi`` (``opskit/testing/bin/nvidia-smi``) is on PATH and a fake NVIDIA
runtime hook lets the inner engine accept ``--gpus`` device requests without a GPU.

Starting such a container needs privileges: ``privileged=True`` is tried first (ordinary
machines); where the engine refuses it (a capability bounding set without CAP_SYS_RESOURCE),
the documented fallback set is used (see ``shared/ENVIRONMENT.md``).

Two kinds of engine (``engine=``): ``"legacy"``, Debian 12's Docker 20.10 with the overlay2
image store on the bookworm base, and ``"containerd"``, Debian 13's Docker 26.1.5 with the
containerd image store (``{"features": {"containerd-snapshotter": true}}`` in daemon.json) on
a trixie base made by the same debootstrap as bookworm's (:mod:`opskit.images.base`). One
recipe builds both: the kind picks the base suite and may add a layer of its own
(``images/engine-containerd/``). See :mod:`opskit.testing.localengine` for a Docker-in-Docker
engine used as the LOCAL engine (the sending side).

Fixtures: ``gpu_hosts`` (session scope, 2 legacy hosts ``opskit-gpu-1``/``opskit-gpu-2``, group
``@testbed``), ``containerd_host`` (session scope, one containerd-store host ``opskit-cd-1``)
and ``gpu_host_image_tag``.
"""

from __future__ import annotations

import functools
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opskit.errors import OpskitError
from opskit.testing.sshd import (
    SSHTestBed,
    build_test_image,
    files_hash,
    image_dir_hash,
    remove_orphans,
    ssh_host_image,
)

IMAGES = Path(__file__).parent / "images"
IMAGE_DIR = IMAGES / "gpuhost"
FAKE_BIN_DIR = Path(__file__).parent / "bin"
IMAGE_REPO = "opskit-gpuhost"
LABEL = "opskit.testing"
ENGINE_LABEL = "opskit.testing.engine"
FALLBACK_RUN_KWARGS: dict[str, Any] = {
    "cap_add": ["ALL"],
    "cap_drop": ["SYS_RESOURCE"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "cgroupns": "host",
}
DEFAULT_DISK = "6g"  # tmpfs for each host's /var/lib/docker (memory is used only as filled)


@dataclass(frozen=True)
class EngineKind:
    """One kind of Docker engine in a test host: the Debian suite of its base (whose
    ``docker.io`` it gets), the image store it uses, and an optional extra image layer."""

    name: str
    suite: str
    store: str  # "overlay2" (legacy image store) or "containerd" (containerd image store)
    layer_dir: Path | None = None  # a Dockerfile + files added on the common GPU-host image
    dockerd_args: tuple[str, ...] = ()  # dockerd flags of a local engine (see localengine)


ENGINE_KINDS: dict[str, EngineKind] = {
    "legacy": EngineKind("legacy", "bookworm", "overlay2",
                         dockerd_args=("--storage-driver", "overlay2")),
    "containerd": EngineKind("containerd", "trixie", "containerd", IMAGES / "engine-containerd"),
}


def engine_kind(name: str) -> EngineKind:
    try:
        return ENGINE_KINDS[name]
    except KeyError:
        raise OpskitError(f"unknown engine kind {name!r}",
                          f"use one of: {', '.join(ENGINE_KINDS)}") from None


def kind_base_image(client: Any, engine: str = "legacy") -> str:
    """The offline base image of an engine kind (made with debootstrap if missing)."""
    from opskit.images.base import BaseRequest, bootstrap

    return bootstrap(client, BaseRequest(suite=engine_kind(engine).suite)).tag


def _context_files() -> dict[str, Path]:
    """Relative path in the build context -> source file."""
    files = {p.relative_to(IMAGE_DIR).as_posix(): p for p in IMAGE_DIR.rglob("*") if p.is_file()}
    if FAKE_BIN_DIR.is_dir():
        for p in sorted(FAKE_BIN_DIR.iterdir()):
            if p.is_file():
                files[f"bin/{p.name}"] = p
    return files


def gpu_host_image(client: Any, base_image: str | None = None, engine: str = "legacy") -> str:
    """Tag of the GPU-host image of an engine kind (built once, reused by tag).

    ``base_image`` defaults to the kind's base (``opskit-base:bookworm`` / ``:trixie``). The
    common recipe (``images/gpuhost``) goes on the SSH test-host image of that base; a kind with
    a layer of its own gets it on top, tagged by the hash of that layer and the common image."""
    kind = engine_kind(engine)
    common = _common_gpu_host_image(client, base_image or kind_base_image(client, engine))
    if kind.layer_dir is None:
        return common
    files = {p.relative_to(kind.layer_dir).as_posix(): p
             for p in kind.layer_dir.rglob("*") if p.is_file()}
    tag = f"{IMAGE_REPO}:{kind.name}-{files_hash(files, client.images.get(common).id)}"
    return build_test_image(client, str(kind.layer_dir), tag, common, f"gpu-host-{kind.name}")


def _common_gpu_host_image(client: Any, base_image: str) -> str:
    """The GPU-host recipe on ``base_image``'s SSH test-host image (the legacy kind itself)."""
    from docker.errors import ImageNotFound

    sshd_tag = ssh_host_image(client, base_image)
    sshd_id = client.images.get(sshd_tag).id
    files = _context_files()
    tag = f"{IMAGE_REPO}:{files_hash(files, sshd_id + image_dir_hash())}"
    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:  # not built yet: copy the context (image folder + fake bin/) and build
        pass
    with tempfile.TemporaryDirectory(prefix="opskit-gpuhost-") as ctx:
        (Path(ctx) / "bin").mkdir()
        for rel, src in files.items():
            dst = Path(ctx) / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        return build_test_image(client, ctx, tag, sshd_tag, "gpu-host")


@functools.lru_cache(maxsize=8)
def dind_run_kwargs(client: Any, image: str) -> tuple[tuple[str, Any], ...]:
    """The privileges that let a Docker-in-Docker container start on this engine.

    ``privileged=True`` first; the documented fallback set where the engine refuses it.
    Cached per client and image: the probe costs one short container (always removed),
    started through testcontainers like the hosts themselves.
    """
    from docker.errors import APIError, NotFound

    from opskit.testing.containers import make_container, remove_container

    probe = make_container(client, image, {
        "name": f"opskit-dind-probe-{secrets.token_hex(4)}", "entrypoint": ["true"],
        "privileged": True, "labels": {LABEL: "probe"},
    })
    try:
        probe.start()  # a refused privileged start raises here, the container only created
        code = probe.wait()
        if code != 0:
            raise OpskitError(f"the privileged probe container of {image} exited with {code}")
        return (("privileged", True),)
    except APIError as exc:
        if "caps" not in str(exc) and "operation not permitted" not in str(exc):
            raise OpskitError(f"cannot start a privileged container: {exc}") from exc
        return tuple(FALLBACK_RUN_KWARGS.items())
    finally:
        try:
            remove_container(probe)
        except NotFound:  # already gone: nothing left to remove
            pass


def gpu_host_run_kwargs(
    client: Any, image: str, environment: dict[str, str] | None = None, disk: str | None = DEFAULT_DISK
) -> dict:
    """``containers.run`` keyword arguments for one GPU host (privileges, cgroups, storage);
    ``start_ssh_hosts`` gives them to testcontainers (``tmpfs`` to ``DockerContainer.tmpfs``,
    the environment to ``with_envs``, the rest through ``with_kwargs``).

    ``disk`` sizes a tmpfs for the inner engine's ``/var/lib/docker`` (overlay2 works on it,
    loads are fast, and removing the host is instant; it also makes a small, really full disk
    possible); ``disk=None`` uses an anonymous volume instead (removed with the host).
    """
    from docker.types import Mount

    kwargs = dict(dind_run_kwargs(client, image))
    if disk:
        mounts = []
        kwargs["tmpfs"] = {"/var/lib/docker": f"rw,size={disk},mode=0710"}
    else:
        mounts = [Mount("/var/lib/docker", None, type="volume")]
    if not kwargs.get("privileged"):
        mounts.append(Mount("/sys/fs/cgroup", "/sys/fs/cgroup", type="bind", read_only=False))
    kwargs["mounts"] = mounts
    kwargs["environment"] = dict(environment or {})
    kwargs["labels"] = {LABEL: "gpu-host"}
    return kwargs


def start_gpu_hosts(
    client: Any,
    n: int,
    *,
    workdir: str,
    base_image: str | None = None,
    name_prefix: str = "opskit-gpu",
    environment: dict[str, str] | None = None,
    disk: str | None = DEFAULT_DISK,
    labels: dict[str, str] | None = None,
    engine: str = "legacy",
) -> SSHTestBed:
    """Start ``n`` Docker-in-Docker GPU hosts reachable over SSH; close the bed to remove them.

    ``engine`` is the kind of engine inside (``"legacy"`` or ``"containerd"``, see
    ``ENGINE_KINDS``); ``base_image`` defaults to that kind's base. ``labels`` are added to the
    containers (e.g. a fixed ``opskit.testing.owner`` so that hosts meant to outlive this
    process, like scripts/lab.py's, are not reaped as orphans)."""
    from opskit.testing.sshd import start_ssh_hosts

    image = gpu_host_image(client, base_image, engine)
    kwargs = gpu_host_run_kwargs(client, image, environment, disk)
    kwargs["labels"] = {**kwargs["labels"], ENGINE_LABEL: engine, **(labels or {})}
    bed = start_ssh_hosts(
        client, n, image=image, run_kwargs=kwargs, name_prefix=name_prefix, workdir=workdir,
        base_image=base_image,
    )
    try:
        for host in bed.hosts:
            check_engine_store(host.name, engine, *host.exec(
                ["docker", "info", "--format", "{{json .}}"], user="opskit"))
    except BaseException:
        bed.close()
        raise
    return bed


def engine_store(info: dict) -> str:
    """"containerd" when ``docker info`` reports the containerd image store, else the storage
    driver (``overlay2`` for the legacy store)."""
    status = {str(k): str(v) for k, v in (info.get("DriverStatus") or []) if k}
    if "io.containerd.snapshotter" in status.get("driver-type", ""):
        return "containerd"
    return str(info.get("Driver") or "")


def check_engine_store(name: str, engine: str, code: int, info_json: str) -> dict:
    """Refuse an inner engine that does not answer ``docker info`` or reports another store
    than its kind's; return the info."""
    import json

    if code != 0:
        raise OpskitError(f"{name}: the inner Docker engine is not usable: {info_json.strip()}")
    info = json.loads(info_json)
    want, got = engine_kind(engine).store, engine_store(info)
    if got != want:
        raise OpskitError(
            f"{name}: the {engine} engine reports the {got or 'unknown'} image store, not {want} "
            f"(Docker {info.get('ServerVersion')}, DriverStatus {info.get('DriverStatus')})",
            "check /etc/docker/daemon.json and the dockerd flags in the host image",
        )
    return info


@pytest.fixture(scope="session")
def gpu_host_image_tag(docker_client: Any, base_image: str) -> str:
    return gpu_host_image(docker_client, base_image)


@pytest.fixture(scope="session")
def gpu_hosts(docker_client: Any, base_image: str, tmp_path_factory: pytest.TempPathFactory):
    """Two Docker-in-Docker GPU hosts over SSH (``opskit-gpu-1``, ``opskit-gpu-2``)."""
    remove_orphans(docker_client)  # a killed session's hosts hold gigabytes of tmpfs
    bed = start_gpu_hosts(
        docker_client, 2, workdir=str(tmp_path_factory.mktemp("gpuhosts")), base_image=base_image
    )
    try:
        yield bed
    finally:
        bed.close()


@pytest.fixture(scope="session")
def containerd_host(docker_client: Any, tmp_path_factory: pytest.TempPathFactory):
    """One Docker-in-Docker GPU host (``opskit-cd-1``) whose engine is Docker 26 on the
    containerd image store (trixie base)."""
    remove_orphans(docker_client)
    bed = start_gpu_hosts(
        docker_client, 1, workdir=str(tmp_path_factory.mktemp("cdhost")), engine="containerd",
        name_prefix="opskit-cd",
    )
    try:
        yield bed
    finally:
        bed.close()


@pytest.fixture(scope="session")
def training_image(docker_client: Any, base_image: str) -> str:
    """The default training image (offline recipe), built or reused by its stable tag."""
    from opskit.images.build import BuildRequest, build_image

    request = BuildRequest(profile="offline", tag="opskit-train:remote-tests")
    return build_image(request, client=docker_client).tag


@pytest.fixture(scope="session")
def small_disk_host(docker_client: Any, base_image: str, tmp_path_factory: pytest.TempPathFactory):
    """One GPU host whose engine has only 400 MB of disk (a real, small tmpfs): too full for
    the training image."""
    remove_orphans(docker_client)
    bed = start_gpu_hosts(
        docker_client, 1, workdir=str(tmp_path_factory.mktemp("smalldisk")), base_image=base_image,
        name_prefix="opskit-tiny", disk="400m",
    )
    try:
        yield bed
    finally:
        bed.close()
