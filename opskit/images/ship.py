"""Ship an image to hosts' engines: only the layers each host lacks, compressed, verified.

For every host (in parallel): read which layer stacks its engine holds (docker-py over the
host's own SSH connection), plan the layers to send, and send one archive made of compressed
frames (see :mod:`opskit.images.shiptar`). The archive is uploaded to a staging file under
``~/.opskit/ship/`` on the host (``NAME.part`` while it grows, so an interrupted upload is
never at a final path and a rerun resumes it), its sha256 is checked ON the host, then
``zstd -dc | docker load`` (``gzip -dc`` where zstd is absent) loads it and the staging file
is removed. Last, the host's image ID must equal the local one, or the ship fails.

Engines that will not take a partial archive (the containerd image store) get a full one.
A local host (``localhost``) shares this machine's engine: nothing travels.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opskit.errors import TransferError, UsageError
from opskit.hosts.group import GroupResult, run_on_hosts
from opskit.hosts.spec import HostSpec
from opskit.hosts.transport import Transport
from opskit.images.shiptar import (
    LayerInfo,
    SavedImage,
    chain_ids,
    held_chain_ids,
    spool_from_store,
    spool_save_stream,
    tail_bytes,
    tail_frame,
)

STAGING_DIR = ".opskit/ship"  # relative to the login user's home on the host
UPLOAD_CHUNK = 1 << 20
LOAD_TIMEOUT = 3600.0
ProgressFn = Callable[[str, int], None]  # (host, bytes just sent)
EventFn = Callable[[str, str], None]  # (host, message)


class LocalImage:
    """A local image: ID, tags and layer identities at once; sizes and instructions (a few
    more engine calls) only when a plan needs them."""

    def __init__(self, client: Any, ref: str, attrs: dict):
        self._client = client
        self.ref = ref
        self.image_id: str = attrs["Id"]
        self.repo_tags: tuple[str, ...] = tuple(attrs.get("RepoTags") or ())
        self.diff_ids: list[str] = list((attrs.get("RootFS") or {}).get("Layers") or [])
        self.size = int(attrs.get("Size") or 0)

    @functools.cached_property
    def layers(self) -> tuple[LayerInfo, ...]:
        from opskit.images.layers import image_layers

        info = image_layers(self._client, self.image_id)
        chains = chain_ids(self.diff_ids)
        by_diff = [lay for lay in info.layers if lay.diff_id]
        if [lay.diff_id for lay in by_diff] == self.diff_ids:
            return tuple(LayerInfo(i, lay.diff_id or "", chains[i], lay.size, lay.instruction)
                         for i, lay in enumerate(by_diff))
        return tuple(LayerInfo(i, d, chains[i], 0, "") for i, d in enumerate(self.diff_ids))

    def to_dict(self) -> dict:
        return {
            "ref": self.ref, "image_id": self.image_id, "repo_tags": list(self.repo_tags),
            "size": self.size, "layers": [lay.to_dict() for lay in self.layers],
        }


@dataclass
class HostPlan:
    host: str
    image_present: bool
    partial_ok: bool
    reason: str  # why this plan (e.g. "containerd image store: full archive")
    send: list[LayerInfo] = field(default_factory=list)
    codec: str = "zstd"
    local: bool = False
    missing_tags: list[str] = field(default_factory=list)

    @property
    def send_bytes(self) -> int:
        return sum(lay.size for lay in self.send)

    def to_dict(self) -> dict:
        return {
            "host": self.host, "image_present": self.image_present, "partial_ok": self.partial_ok,
            "reason": self.reason, "codec": self.codec, "local": self.local,
            "layers": [lay.to_dict() for lay in self.send], "bytes": self.send_bytes,
        }


@dataclass
class ShipResult:
    host: str
    image_id: str
    mode: str  # "none" (already there), "delta", "full", "local"
    layers_sent: int
    raw_bytes: int  # uncompressed archive bytes that travelled
    wire_bytes: int  # compressed bytes sent this time (after any resume)
    resumed_from: int
    seconds: float
    codec: str
    reason: str
    source: str = ""  # where the layers were read: "store" or "docker save"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


# -- local side ---------------------------------------------------------------------------------
def local_image(client: Any, ref: str) -> LocalImage:
    from docker.errors import ImageNotFound, NotFound

    try:
        attrs = client.api.inspect_image(ref)
    except (ImageNotFound, NotFound) as exc:
        raise UsageError(
            f"no local image {ref!r}", "build it with 'opskit build', or list images with 'docker images'"
        ) from exc
    return LocalImage(client, ref, attrs)


# -- planning -----------------------------------------------------------------------------------
def engine_takes_partial(info: dict) -> tuple[bool, str]:
    """Whether ``docker load`` on this engine accepts an archive without held layers.

    The legacy image store does (checked on 20.10); the containerd image store (Docker 29's
    default: ``DriverStatus`` has ``driver-type io.containerd.snapshotter.v1``) may not.
    """
    status = {str(k): str(v) for k, v in (info.get("DriverStatus") or []) if k}
    if "containerd" in status.get("driver-type", ""):
        return False, "the engine uses the containerd image store: sending the full archive"
    return True, ""


def remote_codec(transport: Transport) -> str:
    res = transport.run(["sh", "-c", "command -v zstd || true"])
    return "zstd" if res.stdout.strip() else "gzip"


def plan_host(transport: Transport, image: LocalImage) -> HostPlan:
    """What ``image`` costs to bring to this host's engine (touches the host, sends nothing)."""
    if transport.is_local:
        return HostPlan(transport.host, True, True, "this machine's own engine", local=True)
    present = image_on_host(transport, image)
    if present is not None:
        hp = HostPlan(transport.host, True, True, "the image is already there")
        hp.missing_tags = [t for t in image.repo_tags if t not in present]
        return hp
    client = transport.docker()
    partial_ok, reason = engine_takes_partial(client.info())
    held = held_chain_ids(i.attrs for i in client.images.list(all=True)) if partial_ok else set()
    send = [lay for lay in image.layers if lay.chain_id not in held]
    if partial_ok and not reason:
        reason = f"{len(image.layers) - len(send)} of {len(image.layers)} layers already there"
    return HostPlan(transport.host, False, partial_ok, reason, send, remote_codec(transport))


def image_on_host(transport: Transport, image: LocalImage) -> list[str] | None:
    """The host's tags for our image ID, or None when it lacks the image (one command: the
    fast path of a re-ship with nothing changed)."""
    fmt = "{{.Id}} {{json .RepoTags}}"
    res = transport.run(["docker", "image", "inspect", "--format", fmt, image.image_id])
    image_id, _, tags = res.stdout.strip().partition(" ")
    if not res.ok or image_id != image.image_id:
        return None  # absent (or the engine is not usable: the docker-py path says why)
    try:
        return list(json.loads(tags) or [])
    except json.JSONDecodeError:
        return []


def plan(specs: Sequence[HostSpec], image: LocalImage) -> GroupResult[HostPlan]:
    return run_on_hosts(specs, lambda t: plan_host(t, image))


# -- the archive --------------------------------------------------------------------------------
@dataclass
class Archive:
    """One host's archive: frame files (shared) + the tail frame (per tag set)."""

    frames: list[str]
    tail: bytes
    raw_bytes: int

    @property
    def wire_bytes(self) -> int:
        return sum(os.path.getsize(f) for f in self.frames) + len(self.tail)

    def sha256(self) -> str:
        h = hashlib.sha256()
        for chunk in self.chunks(0):
            h.update(chunk)
        return h.hexdigest()

    @property
    def key(self) -> tuple:
        return tuple(self.frames), self.tail

    def chunks(self, skip: int) -> Any:
        """The compressed stream from byte ``skip`` on (for a resumed upload)."""
        for path in self.frames:
            size = os.path.getsize(path)
            if skip >= size:
                skip -= size
                continue
            with open(path, "rb") as fh:
                fh.seek(skip)
                skip = 0
                yield from iter(lambda fh=fh: fh.read(UPLOAD_CHUNK), b"")
        if skip < len(self.tail):
            yield self.tail[skip:]


def archive_for(saved: SavedImage, hp: HostPlan, repo_tags: list[str]) -> Archive:
    indexes = [lay.index for lay in hp.send]
    frames = [saved.frames[i] for i in indexes]
    raw = sum(saved.raw_sizes[i] + 512 + (-saved.raw_sizes[i]) % 512 for i in indexes)
    return Archive(frames, tail_frame(saved, repo_tags, hp.codec), raw + len(tail_bytes(saved, repo_tags)))


# -- the remote side ----------------------------------------------------------------------------
def remote_home(transport: Transport) -> str:
    if transport.is_local:
        return os.path.expanduser("~")
    res = transport.run(["sh", "-c", 'printf "%s" "$HOME"']).check()
    return res.stdout.strip() or "."


def upload_resumable(transport: Transport, archive: Archive, final: str, progress: ProgressFn | None) -> tuple[int, int]:
    """Upload to ``final + '.part'``, resuming what an earlier try left; (resumed_from, sent)."""
    part = final + ".part"
    st = transport.stat(part)
    total = archive.wire_bytes
    start = st.size if st is not None and st.size <= total else 0
    if st is not None and start == 0:
        transport.remove(part)
    sent = 0
    try:
        with transport.open(part, "ab" if start else "wb") as fh:
            for chunk in archive.chunks(start):
                fh.write(chunk)
                sent += len(chunk)
                if progress:
                    progress(transport.host, len(chunk))
    except Exception as exc:  # noqa: BLE001 - OSError, EOFError, paramiko's SSHException, ...
        raise TransferError(
            f"{transport.host}: upload interrupted after {start + sent} of {total} bytes of the "
            f"image archive ({type(exc).__name__}: {exc}); the partial upload is kept at {part}",
            "run the same command again: the upload resumes and is verified before loading",
        ) from exc
    return start, sent


def remove_stale_parts(transport: Transport, final: str) -> None:
    """Partial uploads of the same image for another archive (another layer set) are dead."""
    folder, name = final.rsplit("/", 1)
    prefix = name.split("-", 1)[0] + "-"
    for entry in transport.listdir(folder):
        if entry.startswith(prefix) and entry.endswith(".part") and entry != name + ".part":
            transport.remove(f"{folder}/{entry}")


def verify_and_load(transport: Transport, part: str, final: str, expected_sha: str, codec: str) -> None:
    got = transport.sha256(part)
    if got != expected_sha:
        transport.remove(part)
        raise TransferError(
            f"{transport.host}: the uploaded archive does not match (sha256 {got[:16]}..., "
            f"expected {expected_sha[:16]}...); removed it",
            "run the same command again to send it afresh",
        )
    transport.rename(part, final)
    decompress = "zstd -dc -- \"$1\"" if codec == "zstd" else "gzip -dc -- \"$1\""
    try:
        res = transport.run(["sh", "-c", decompress + " | docker load", "sh", final], timeout=LOAD_TIMEOUT)
    finally:
        transport.remove(final)
    if not res.ok:
        tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
        hint = "free disk space where the host's Docker engine keeps images (docker info: Docker Root Dir)"
        raise TransferError(
            f"{transport.host}: docker load failed (exit {res.exit_code}): " + " / ".join(tail),
            hint if "space" in " ".join(tail) else "check the host's engine with 'docker info'",
        )


def check_loaded(transport: Transport, image: LocalImage) -> None:
    from docker.errors import ImageNotFound

    ref = image.repo_tags[0] if image.repo_tags else image.image_id
    try:
        got = transport.docker().images.get(ref).id
    except ImageNotFound as exc:
        raise TransferError(f"{transport.host}: after loading, the engine has no image {ref}") from exc
    if got != image.image_id:
        raise TransferError(
            f"{transport.host}: after loading, {ref} is {got[:19]} on the host but {image.image_id[:19]} "
            "here: the host does not have the image that was shipped",
            "ship again; if it repeats, compare 'docker image inspect' on both sides",
        )


def tag_remote(transport: Transport, image: LocalImage, tags: list[str]) -> None:
    api = transport.docker().api
    for tag in tags:
        repo, _, name = tag.rpartition(":")
        api.tag(image.image_id, repo, name)


@dataclass
class ShipOptions:
    progress: ProgressFn | None = None
    on_event: EventFn | None = None
    workers: int = 8


class ArchiveDigests:
    """sha256 of each distinct archive of one ship, computed once however many hosts get it
    (hosts that lack the same layers get byte-identical archives of up to gigabytes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[tuple, threading.Lock] = {}
        self._values: dict[tuple, str] = {}

    def of(self, archive: Archive) -> str:
        with self._lock:
            lock = self._locks.setdefault(archive.key, threading.Lock())
        with lock:  # a second host with the same archive waits for the first's hash
            if archive.key not in self._values:
                self._values[archive.key] = archive.sha256()
            return self._values[archive.key]


def ship_one(
    transport: Transport, image: LocalImage, hp: HostPlan, saved: SavedImage | None, opts: ShipOptions,
    digests: ArchiveDigests | None = None,
) -> ShipResult:
    start = time.monotonic()
    if hp.local or hp.image_present:
        if hp.missing_tags:
            tag_remote(transport, image, hp.missing_tags)
        mode = "local" if hp.local else "none"
        return ShipResult(transport.host, image.image_id, mode, 0, 0, 0, 0, time.monotonic() - start, hp.codec, hp.reason)
    assert saved is not None
    archive = archive_for(saved, hp, list(image.repo_tags))
    home = remote_home(transport)
    transport.makedirs(f"{home}/{STAGING_DIR}")
    digest = (digests or ArchiveDigests()).of(archive)
    final = f"{home}/{STAGING_DIR}/{image.image_id.split(':')[-1][:12]}-{digest[:16]}.tar.{'zst' if hp.codec == 'zstd' else 'gz'}"
    if opts.on_event:
        opts.on_event(transport.host, f"sending {len(hp.send)} layers ({archive.raw_bytes} bytes raw, {archive.wire_bytes} compressed)")
    remove_stale_parts(transport, final)
    resumed, sent = upload_resumable(transport, archive, final, opts.progress)
    if opts.on_event:
        opts.on_event(transport.host, "loading")
    verify_and_load(transport, final + ".part", final, digest, hp.codec)
    check_loaded(transport, image)
    mode = "delta" if hp.partial_ok and len(hp.send) < len(image.diff_ids) else "full"
    return ShipResult(transport.host, image.image_id, mode, len(hp.send), archive.raw_bytes, sent, resumed,
                      time.monotonic() - start, hp.codec, hp.reason, saved.source)


def save_wanted(client: Any, image: LocalImage, plans: list[HostPlan], spool_dir: str) -> dict[str, SavedImage]:
    """The compressed frames of every layer some host lacks, one set per codec in use.

    Read straight from this machine's engine store where possible (only the wanted layers,
    each verified against its diff ID), else from one ``docker save`` stream.
    """
    from opskit.images.layerstore import StoreUnavailable, open_local_store

    saved: dict[str, SavedImage] = {}
    diff_ids = image.diff_ids
    for codec in sorted({p.codec for p in plans if not (p.local or p.image_present)}):
        wanted = {lay.index for p in plans if p.codec == codec for lay in p.send}
        try:
            store = open_local_store(client)
            saved[codec] = spool_from_store(store, image.image_id, diff_ids, wanted, codec, spool_dir)
            continue
        except StoreUnavailable:
            pass  # the general path below
        chunks = client.api.get_image(image.image_id, chunk_size=UPLOAD_CHUNK)
        saved[codec] = spool_save_stream(chunks, wanted, codec, spool_dir)
    return saved


def ship(client: Any, ref: str, specs: Sequence[HostSpec], opts: ShipOptions | None = None) -> GroupResult[ShipResult]:
    """Ship local image ``ref`` to every host; per-host results and errors.

    Each host's connection is opened once: plan, then (after every host has planned and the
    one ``docker save`` has been read) send, load and verify.
    """
    opts = opts or ShipOptions()
    image = local_image(client, ref)
    specs = list(specs)
    plans: dict[str, HostPlan] = {}
    saved: dict[str, SavedImage] = {}
    failure: list[BaseException] = []
    spool = tempfile.mkdtemp(prefix="opskit-ship-")

    def save_once() -> None:
        try:
            saved.update(save_wanted(client, image, list(plans.values()), spool))
        except BaseException as exc:  # noqa: BLE001 - re-raised in every host's thread
            failure.append(exc)

    barrier = threading.Barrier(len(specs), action=save_once)
    digests = ArchiveDigests()

    def one(t: Transport) -> ShipResult:
        try:
            hp = plan_host(t, image)
            plans[t.host] = hp
        finally:
            barrier.wait()
        if failure:
            raise failure[0]
        return ship_one(t, image, hp, saved.get(hp.codec), opts, digests)

    try:
        return run_on_hosts(specs, one, workers=max(opts.workers, len(specs)))
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def plan_only(ref: str, client: Any, specs: Sequence[HostSpec]) -> tuple[LocalImage, GroupResult[HostPlan]]:
    image = local_image(client, ref)
    return image, plan(specs, image)
