"""Ship an image to hosts' engines: only the layers each host lacks, compressed, verified.

For every host (in parallel): ask whether it already holds the image (the engine's API over
the SSH connection, no docker process started there, else the docker CLI; see
:mod:`opskit.images.shipcheck`); if not, read which image store its engine has (legacy or
containerd) and which layer stacks it holds (by chain ID, docker-py over the host's own SSH connection),
plan the layers to send, and send ONE hybrid archive that both stores load (OCI layout +
``manifest.json``, only the missing layer blobs; see :mod:`opskit.images.shiptar`). The
archive is uploaded to a staging file under ``~/.opskit/ship/`` on the host (``NAME.part``
while it grows, so an interrupted upload is never at a final path and a rerun resumes it), its
sha256 is checked ON the host, then ``zstd -dc | docker load`` (``gzip -dc`` where zstd is
absent) loads it, and the image is proven (:mod:`opskit.images.shipremote`): right digests,
right diff IDs, a container can be made from it. A partial archive that fails any of that is
removed and the full archive sent instead, and the result says why.

The layers are read from this machine's engine store when it can be read (overlay2 layerdb,
or the containerd content store), else from one ``docker save``, read by following its paths.
A local host (``localhost``) shares this machine's engine: nothing travels.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opskit.errors import TransferError, UsageError
from opskit.hosts.dockererrors import or_none
from opskit.hosts.group import GroupResult, run_on_hosts
from opskit.hosts.privatedirs import private_dirs
from opskit.hosts.spec import HostSpec
from opskit.hosts.transport import Transport
from opskit.images.contentstore import store_kind
from opskit.images.shiparchive import Archive, ArchiveDigests, archive_for
from opskit.images.shipcheck import check_image, image_on_host  # noqa: F401 - image_on_host re-exported
from opskit.images.shipremote import (
    LoadProblem,
    load_archive,
    remote_home,
    remove_incomplete,
    remove_stale_parts,
    tag_remote,
    upload_resumable,
    verify_loaded,
)
from opskit.images.shiptar import ImageParts, LayerInfo, chain_ids, held_chain_ids

STAGING_DIR = ".opskit/ship"  # relative to the login user's home on the host
UPLOAD_CHUNK = 1 << 20
ProgressFn = Callable[[str, int], None]  # (host, bytes just sent)
EventFn = Callable[[str, str], None]  # (host, message)


_CACHE_LOCK = threading.Lock()
_ENGINE_INFO: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # engine client -> docker info
_DESCRIBED: dict[tuple[str, str], ImageParts | None] = {}  # (store, image ID) -> parts without frames


class LocalImage:
    """A local image: ID, tags and layer identities at once; sizes and instructions (a few
    more engine calls), the engine's store and the image's digests only when needed."""

    def __init__(self, client: Any, ref: str, attrs: dict):
        self._client = client
        self.ref = ref
        self.image_id: str = attrs["Id"]  # legacy store: the config digest; containerd: manifest/index
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

    @property
    def engine_info(self) -> dict:
        """``docker info`` of the local engine (asked once per engine and process)."""
        key = getattr(self._client, "api", self._client)  # every unix socket's base URL is "localhost"
        with _CACHE_LOCK:
            if key not in _ENGINE_INFO:
                _ENGINE_INFO[key] = dict(self._client.info())
            return _ENGINE_INFO[key]

    @property
    def store(self) -> str:
        """The local engine's image store: ``legacy`` or ``containerd``."""
        return store_kind(self.engine_info)

    @property
    def described(self) -> ImageParts | None:
        """Config and manifest read from the local store (no layer read), or None where the
        store cannot be read here (they are known after ``docker save`` then). Kept per image
        ID for the process: an ID names immutable content."""
        from opskit.images.layerstore import StoreUnavailable

        key = (self.store, self.image_id)
        with _CACHE_LOCK:
            if key in _DESCRIBED:
                return _DESCRIBED[key]
        try:
            parts: ImageParts | None = parts_from_local_store(self._client, self, set(), "zstd", "")
        except StoreUnavailable:
            parts = None
        with _CACHE_LOCK:
            _DESCRIBED[key] = parts
        return parts

    @property
    def config_digest(self) -> str | None:
        if self.store == "legacy":
            return self.image_id
        return self.described.config_digest if self.described else None

    def ids(self) -> dict[str, str]:
        """Every ID this image may have on an engine, and what each is."""
        out = {self.image_id: f"image ID here ({self.store} store)"}
        if self.store == "legacy":
            out[self.image_id] += " = config digest (its ID on a legacy store)"
        if self.described:
            out.setdefault(self.described.config_digest, "config digest (its ID on a legacy store)")
            out.setdefault(self.described.manifest_digest, "manifest digest (its ID on a containerd store)")
        return out

    def to_dict(self) -> dict:
        return {
            "ref": self.ref, "image_id": self.image_id, "store": self.store,
            "config_digest": self.config_digest, "repo_tags": list(self.repo_tags),
            "size": self.size, "layers": [lay.to_dict() for lay in self.layers],
        }


@dataclass
class HostPlan:
    host: str
    image_present: bool
    store: str  # "legacy" or "containerd" (the host engine's image store), "" when not asked
    reason: str  # why this plan (e.g. "containerd image store: 12 of 14 layers already there")
    send: list[LayerInfo] = field(default_factory=list)
    codec: str = "zstd"
    local: bool = False
    missing_tags: list[str] = field(default_factory=list)
    host_image_id: str = ""  # the image's ID on the host, when it is there
    checked_via: str = ""  # how presence was asked: shipcheck.VIA_API or VIA_CLI ("" when local)

    @property
    def send_bytes(self) -> int:
        return sum(lay.size for lay in self.send)

    def to_dict(self) -> dict:
        return {
            "host": self.host, "store": self.store, "image_present": self.image_present,
            "host_image_id": self.host_image_id, "reason": self.reason, "codec": self.codec,
            "local": self.local, "layers": [lay.to_dict() for lay in self.send], "bytes": self.send_bytes,
            "checked_via": self.checked_via,
        }


@dataclass
class ShipResult:
    host: str
    image_id: str  # the image's ID on this machine's engine
    mode: str  # "none" (already there), "delta", "full", "local"
    layers_sent: int
    raw_bytes: int  # uncompressed archive bytes that travelled
    wire_bytes: int  # compressed bytes sent this time (after any resume)
    resumed_from: int
    seconds: float
    codec: str
    reason: str
    source: str = ""  # where the layers were read: "overlay2 store", "containerd store", "docker save"
    store: str = ""  # the host engine's image store
    host_image_id: str = ""  # the image's ID on the host (config digest or manifest digest)
    fallback: str = ""  # why a partial archive failed and the full one was sent ("" when none)
    checked_via: str = ""  # how the host was asked whether it held the image (see HostPlan)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


# -- local side ---------------------------------------------------------------------------------
def local_image(client: Any, ref: str) -> LocalImage:
    attrs = or_none(lambda: client.api.inspect_image(ref))
    if attrs is None:
        raise UsageError(
            f"no local image {ref!r}", "build it with 'opskit build', or list images with 'docker images'"
        )
    return LocalImage(client, ref, attrs)


def parts_from_local_store(client: Any, image: LocalImage, wanted: set[int], codec: str, spool: str) -> ImageParts:
    """The image's parts from this machine's engine store (raises StoreUnavailable)."""
    from opskit.images.contentstore import open_content_store, parts_from_content
    from opskit.images.layerstore import open_local_store, parts_from_store

    info = image.engine_info
    if image.store == "containerd":
        cs = open_content_store(client, info, image.image_id)
        return parts_from_content(cs, image.image_id, image.diff_ids, wanted, codec, spool)
    return parts_from_store(open_local_store(client, info), image.image_id, image.diff_ids, wanted, codec, spool)


def read_parts(client: Any, image: LocalImage, wanted: set[int], codec: str, spool: str) -> ImageParts:
    """The image's parts with frames of the ``wanted`` layers: from the local store where it
    can be read, else from one ``docker save`` (read again if more layers are needed later)."""
    from opskit.images.layerstore import StoreUnavailable
    from opskit.images.savereader import spool_save_stream

    try:
        return parts_from_local_store(client, image, wanted, codec, spool)
    except StoreUnavailable:
        pass  # the general path below

    def save(more: set[int]) -> ImageParts:
        parts = spool_save_stream(client.api.get_image(image.image_id, chunk_size=UPLOAD_CHUNK), more, codec, spool)
        if parts.diff_ids != image.diff_ids:
            raise TransferError(f"docker save of {image.ref} gave an image with other layers than the engine reports")
        return parts

    parts = save(wanted)

    def refill(more: set[int]) -> None:
        parts.frames.update(save(more).frames)

    parts.refill = refill
    return parts


# -- planning -----------------------------------------------------------------------------------
def remote_codec(transport: Transport) -> str:
    res = transport.run(["sh", "-c", "command -v zstd || true"])
    return "zstd" if res.stdout.strip() else "gzip"


def plan_host(transport: Transport, image: LocalImage, on_event: EventFn | None = None) -> HostPlan:
    """What ``image`` costs to bring to this host's engine (touches the host, sends nothing).
    ``on_event`` hears why the host's docker CLI was asked instead of its engine's API."""
    if transport.is_local:
        return HostPlan(transport.host, True, image.store, "this machine's own engine", local=True)
    present, via = check_image(transport, image, on_event)
    if present is not None:
        host_id, tags, store = present
        hp = HostPlan(transport.host, True, store, f"the image is already there (asked the {via})",
                      host_image_id=host_id, checked_via=via)
        hp.missing_tags = [t for t in image.repo_tags if t not in tags]
        return hp
    client = transport.docker()
    store = store_kind(client.info())
    held = held_chain_ids(i.attrs for i in client.images.list(all=True))
    send = [lay for lay in image.layers if lay.chain_id not in held]
    reason = f"{store} image store: {len(image.layers) - len(send)} of {len(image.layers)} layers already there"
    return HostPlan(transport.host, False, store, reason, send, remote_codec(transport), checked_via=via)


def plan(specs: Sequence[HostSpec], image: LocalImage) -> GroupResult[HostPlan]:
    return run_on_hosts(specs, lambda t: plan_host(t, image))


# -- shipping -----------------------------------------------------------------------------------
@dataclass
class ShipOptions:
    progress: ProgressFn | None = None
    on_event: EventFn | None = None
    workers: int = 8


@dataclass
class Sent:
    host_image_id: str
    archive: Archive
    resumed: int
    wire: int


def send_archive(transport: Transport, image: LocalImage, parts: ImageParts, indexes: Sequence[int],
                 opts: ShipOptions, digests: ArchiveDigests) -> Sent:
    """Upload, load and prove one archive (raises LoadProblem when the load did not give the
    image, usable)."""
    archive = archive_for(parts, indexes, list(image.repo_tags))
    home = remote_home(transport)
    private_dirs(transport, home, [STAGING_DIR])  # 0700: staged archives are the user's alone
    digest = digests.of(archive)
    ext = "zst" if parts.codec == "zstd" else "gz"
    final = f"{home}/{STAGING_DIR}/{image.image_id.split(':')[-1][:12]}-{digest[:16]}.tar.{ext}"
    _emit(opts, transport.host, f"sending {archive.layers} layer blobs ({archive.raw_bytes} bytes raw, "
                                f"{archive.wire_bytes} compressed; read from the {parts.source})")
    remove_stale_parts(transport, final)
    resumed, sent = upload_resumable(transport, archive, final, opts.progress)
    _emit(opts, transport.host, "loading")
    load_archive(transport, final + ".part", final, digest, parts.codec)
    ref = image.repo_tags[0] if image.repo_tags else parts.manifest_digest
    try:
        host_id = verify_loaded(transport, parts, ref)
    except LoadProblem:
        if not image.repo_tags:  # untagged: the legacy store names it by its config digest
            host_id = verify_loaded(transport, parts, parts.config_digest)
        else:
            raise
    return Sent(host_id, archive, resumed, sent)


def _emit(opts: ShipOptions, host: str, message: str) -> None:
    if opts.on_event:
        opts.on_event(host, message)


def ship_one(
    transport: Transport, image: LocalImage, hp: HostPlan, parts: ImageParts | None, opts: ShipOptions,
    digests: ArchiveDigests | None = None,
) -> ShipResult:
    """Bring the image to one host as planned; a partial archive that fails to load (or to
    prove) is removed and the full archive sent, and the result says why."""
    start = time.monotonic()
    if hp.local or hp.image_present:
        if hp.missing_tags:
            tag_remote(transport, hp.host_image_id or image.image_id, hp.missing_tags)
        mode = "local" if hp.local else "none"
        return ShipResult(transport.host, image.image_id, mode, 0, 0, 0, 0, time.monotonic() - start, hp.codec,
                          hp.reason, store=hp.store, host_image_id=hp.host_image_id or image.image_id,
                          checked_via=hp.checked_via)
    assert parts is not None
    digests = digests or ArchiveDigests()
    indexes = [lay.index for lay in hp.send]
    every = list(range(len(image.diff_ids)))
    fallback = ""
    tries: list[Sent] = []
    try:
        tries.append(send_archive(transport, image, parts, indexes, opts, digests))
    except LoadProblem as exc:
        remove_incomplete(transport, parts, list(image.repo_tags))
        if set(indexes) == set(every):
            raise
        fallback = exc.message
        _emit(opts, transport.host, f"the partial archive failed ({fallback}): sending the full archive")
        parts.ensure(set(every))
        try:
            tries.append(send_archive(transport, image, parts, every, opts, digests))
        except LoadProblem as again:
            remove_incomplete(transport, parts, list(image.repo_tags))
            raise TransferError(f"{again.message} (sent as a full archive after: {fallback})", again.hint) from again
    last = tries[-1]
    mode = "delta" if not fallback and len(set(indexes)) < len(every) else "full"
    return ShipResult(
        transport.host, image.image_id, mode, last.archive.layers, sum(t.archive.raw_bytes for t in tries),
        sum(t.wire for t in tries), tries[0].resumed, time.monotonic() - start, parts.codec, hp.reason,
        parts.source, hp.store, last.host_image_id, fallback, hp.checked_via,
    )


def save_wanted(client: Any, image: LocalImage, plans: list[HostPlan], spool_dir: str) -> dict[str, ImageParts]:
    """The image's parts with compressed frames of every layer some host lacks, one set per
    codec in use (read from this machine's engine store where possible, else docker save)."""
    out: dict[str, ImageParts] = {}
    for codec in sorted({p.codec for p in plans if not (p.local or p.image_present)}):
        wanted = {lay.index for p in plans if p.codec == codec for lay in p.send}
        out[codec] = read_parts(client, image, wanted, codec, spool_dir)
    return out


def ship(client: Any, ref: str, specs: Sequence[HostSpec], opts: ShipOptions | None = None) -> GroupResult[ShipResult]:
    """Ship local image ``ref`` to every host; per-host results and errors.

    Each host's connection is opened once: plan, then (after every host has planned and the
    layers have been read once) send, load and verify.
    """
    opts = opts or ShipOptions()
    image = local_image(client, ref)
    specs = list(specs)
    plans: dict[str, HostPlan] = {}
    saved: dict[str, ImageParts] = {}
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
            hp = plan_host(t, image, opts.on_event)
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
