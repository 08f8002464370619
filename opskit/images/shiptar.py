"""The pieces of a delta image archive: layer identities, the hybrid layout, frames, tar.

An image is a stack of layers. An engine stores layer ``i`` under its *chain ID* (a hash of
the diff IDs of layers 0..i), so a host holds layer ``i`` of our image only if it holds the
whole stack below it. Both image stores skip a layer whose chain ID they already hold without
opening its blob, so an archive may leave those blobs out, as long as it is in a layout each
store reads by *paths*, not by what is present:

    blobs/sha256/<digest>   the config, the manifest, and only the missing layer blobs
    index.json, oci-layout  OCI image layout: what the containerd image store reads
    manifest.json           Config and Layers point into blobs/sha256/: what the legacy store reads

(the *hybrid* layout; ``docker save`` of Docker 25+ writes the same shape.) The containerd
store names the image after ``index.json``'s annotations and gives it the manifest's digest as
its ID; the legacy store gives it the config's digest.

The archive travels as a concatenation of compressed frames (zstd, or gzip members): one
frame per layer blob (tar header + blob + padding, compressed once and reused for every host
that lacks it) and a last frame with the config, the manifest, ``index.json``, ``oci-layout``,
``manifest.json`` and the end of the archive. ``zstd -dc`` and ``gzip -dc`` both decompress
concatenated frames into one stream.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

BLOCK = 512
CHUNK = 1 << 20
ZSTD_LEVEL = 1  # ~325 MB/s on 2 cores, 0.27x on the training image (level 3: 110 MB/s, 0.23x)
GZIP_LEVEL = 1
CODECS = ("zstd", "gzip")


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Chain IDs of a layer stack (OCI image spec): the identity an engine stores a layer by."""
    out: list[str] = []
    for diff in diff_ids:
        if not out:
            out.append(diff)
        else:
            h = hashlib.sha256(f"{out[-1]} {diff}".encode()).hexdigest()
            out.append(f"sha256:{h}")
    return out


def held_chain_ids(images: Iterable[dict]) -> set[str]:
    """Every chain ID an engine holds, from its images' inspect data (``RootFS.Layers``)."""
    held: set[str] = set()
    for attrs in images:
        held.update(chain_ids(list((attrs.get("RootFS") or {}).get("Layers") or [])))
    return held


@dataclass(frozen=True)
class LayerInfo:
    index: int
    diff_id: str
    chain_id: str
    size: int  # bytes of content (docker history's size)
    created_by: str

    def to_dict(self) -> dict:
        return {
            "index": self.index, "diff_id": self.diff_id, "chain_id": self.chain_id,
            "size": self.size, "created_by": self.created_by,
        }


# -- compression ------------------------------------------------------------------------------
def compress_chunks(chunks: Iterable[bytes], codec: str, out: IO[bytes]) -> int:
    """Compress ``chunks`` into ONE frame (zstd) or member (gzip) written to ``out``; bytes out."""
    start = out.tell()
    if codec == "zstd":
        import zstandard

        cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1, write_checksum=True)
        with cctx.stream_writer(out, closefd=False) as writer:
            for chunk in chunks:
                writer.write(chunk)
    elif codec == "gzip":
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as writer:
            for chunk in chunks:
                writer.write(chunk)
    else:
        raise ValueError(f"unknown codec {codec!r}")
    return out.tell() - start


def compress_bytes(data: bytes, codec: str) -> bytes:
    buf = io.BytesIO()
    compress_chunks([data], codec, buf)
    return buf.getvalue()


# -- tar pieces -------------------------------------------------------------------------------
def tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    return info.tobuf(format=tarfile.PAX_FORMAT)


def padding(size: int) -> bytes:
    return b"\0" * ((BLOCK - size % BLOCK) % BLOCK)


def tar_member(name: str, data: bytes) -> bytes:
    return tar_header(name, len(data)) + data + padding(len(data))


END_OF_ARCHIVE = b"\0" * (2 * BLOCK)




# -- the image's parts ------------------------------------------------------------------------
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_path(digest: str) -> str:
    """Where a blob lives in the archive (both loaders follow this path)."""
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart}"


@dataclass(frozen=True)
class LayerBlob:
    """One layer as it travels: the blob (its digest, size and media type) and its diff ID
    (the digest of the uncompressed tarball; equal to ``digest`` for an uncompressed blob)."""

    diff_id: str
    digest: str
    size: int
    media_type: str = MT_OCI_LAYER

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def synth_manifest(config: bytes, layers: list[LayerBlob]) -> bytes:
    """An OCI manifest for ``config`` and these layer blobs (deterministic bytes)."""
    doc = {
        "schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
        "config": {"mediaType": MT_OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
        "layers": [lay.descriptor() for lay in layers],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass
class ImageParts:
    """What a hybrid archive of one image is made of: config, manifest, every layer's blob
    descriptor, and compressed frames of the blobs some host lacks.

    ``refill(indexes)`` makes the frames of more layers (a full archive after a failed partial
    load); it is called under a lock, once per missing set.
    """

    config: bytes
    manifest: bytes
    layers: list[LayerBlob]  # stack order, one per diff ID
    source: str  # where the blobs are read: "overlay2 store", "containerd store", "docker save"
    codec: str = "zstd"
    frames: dict[str, str] = field(default_factory=dict)  # blob digest -> compressed frame file
    archive_bytes: int = 0  # bytes of the docker save archive read (0: not read)
    refill: Callable[[set[int]], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def diff_ids(self) -> list[str]:
        return [lay.diff_id for lay in self.layers]

    @property
    def config_digest(self) -> str:
        return sha256_digest(self.config)

    @property
    def manifest_digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def manifest_media_type(self) -> str:
        try:
            return str(json.loads(self.manifest).get("mediaType") or MT_OCI_MANIFEST)
        except (ValueError, AttributeError):
            return MT_OCI_MANIFEST

    def blob_names(self) -> list[str]:
        return [blob_path(lay.digest) for lay in self.layers]

    @property
    def layer_paths(self) -> list[str]:
        """Where ``manifest.json`` points for each layer, in stack order."""
        return self.blob_names()

    def ensure(self, indexes: set[int]) -> None:
        """Frames for these layers exist afterwards (or ``refill`` raised)."""
        with self._lock:
            lacking = {i for i in indexes if self.layers[i].digest not in self.frames}
            if lacking:
                if self.refill is None:
                    raise RuntimeError(f"no frames for layers {sorted(lacking)} and no way to make them")
                self.refill(lacking)

    def frame_raw_size(self, digest: str) -> int:
        """Uncompressed bytes of a layer's frame: header, blob, padding."""
        size = next(lay.size for lay in self.layers if lay.digest == digest)
        return len(tar_header(blob_path(digest), size)) + size + len(padding(size))


def normalized_name(tag: str) -> str:
    """``repo:tag`` as the containerd store names images (``docker.io/library/repo:tag``)."""
    first, sep, rest = tag.partition("/")
    if not sep:
        return f"docker.io/library/{tag}"
    if "." in first or ":" in first or first == "localhost":
        return tag
    return f"docker.io/{tag}"


def index_json(parts: ImageParts, repo_tags: list[str]) -> bytes:
    """``index.json``: the manifest once per tag, named as ``docker save`` names it."""
    desc: dict[str, Any] = {"mediaType": parts.manifest_media_type, "digest": parts.manifest_digest,
                            "size": len(parts.manifest)}
    entries = []
    for tag in repo_tags:
        name = normalized_name(tag)
        ref = name.rsplit(":", 1)[-1] if ":" in name.rsplit("/", 1)[-1] else "latest"
        entries.append({**desc, "annotations": {"io.containerd.image.name": name,
                                                "org.opencontainers.image.ref.name": ref}})
    doc = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": entries or [desc]}
    return json.dumps(doc, separators=(",", ":")).encode()


def manifest_json(parts: ImageParts, repo_tags: list[str]) -> bytes:
    """``manifest.json`` (the legacy loader's entry): paths into ``blobs/``."""
    entry = {"Config": blob_path(parts.config_digest), "RepoTags": repo_tags or None,
             "Layers": parts.blob_names()}
    return json.dumps([entry]).encode()


def tail_bytes(parts: ImageParts, repo_tags: list[str]) -> bytes:
    """The end of the archive, uncompressed: config and manifest blobs, ``index.json``,
    ``oci-layout``, ``manifest.json`` and the two end blocks."""
    return (
        tar_member(blob_path(parts.config_digest), parts.config)
        + tar_member(blob_path(parts.manifest_digest), parts.manifest)
        + tar_member("index.json", index_json(parts, repo_tags))
        + tar_member("oci-layout", OCI_LAYOUT)
        + tar_member("manifest.json", manifest_json(parts, repo_tags))
        + END_OF_ARCHIVE
    )


def tail_frame(parts: ImageParts, repo_tags: list[str], codec: str) -> bytes:
    """The last frame: :func:`tail_bytes` compressed."""
    return compress_bytes(tail_bytes(parts, repo_tags), codec)


def write_frame(blob: LayerBlob, chunks: Iterator[bytes], codec: str, path: str) -> None:
    """Compress one layer blob's tar member (header, bytes, padding) into a frame file."""
    with open(path, "wb") as out:
        compress_chunks(_framed(tar_header(blob_path(blob.digest), blob.size), chunks, padding(blob.size)), codec, out)


def _framed(head: bytes, chunks: Iterator[bytes], pad: bytes) -> Iterator[bytes]:
    yield head
    yield from chunks
    yield pad


def hashed(chunks: Iterable[bytes], digest: Any) -> Iterator[bytes]:
    """Pass ``chunks`` through, feeding ``digest`` on the way."""
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


def check_blob_digests(blob: LayerBlob, got_digest: str, got_diff: str | None) -> str | None:
    """Why a blob read does not verify (None when it does)."""
    if got_digest != blob.digest:
        return f"blob {blob.digest} hashes to {got_digest}"
    if got_diff is not None and got_diff != blob.diff_id:
        return f"layer blob {blob.digest} unpacks to {got_diff}, not its diff ID {blob.diff_id}"
    return None


class BlobHasher:
    """Digests of a layer blob fed in chunks: of its bytes, and of its uncompressed tarball
    (gzip and zstd blobs are unpacked on the way; an uncompressed blob is its own tarball)."""

    def __init__(self) -> None:
        self.raw = hashlib.sha256()
        self.plain = hashlib.sha256()
        self._unpack: Any = None
        self._kind = ""

    def update(self, chunk: bytes) -> None:
        if not self._kind and chunk:
            self._start(chunk)
        self.raw.update(chunk)
        if self._kind == "gzip":
            self._gunzip(chunk)
        elif self._kind == "zstd":
            self.plain.update(self._unpack.decompress(chunk))

    def _start(self, first: bytes) -> None:
        if first[:2] == b"\x1f\x8b":
            self._kind, self._unpack = "gzip", zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif first[:4] == b"\x28\xb5\x2f\xfd":
            import zstandard

            self._kind = "zstd"
            self._unpack = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True)
        else:
            self._kind = "tar"

    def _gunzip(self, chunk: bytes) -> None:
        while chunk:
            self.plain.update(self._unpack.decompress(chunk))
            chunk = self._unpack.unused_data  # a further gzip member
            if chunk:
                self._unpack = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def digests(self) -> tuple[str, str]:
        """(digest of the blob, digest of its tarball)."""
        raw = "sha256:" + self.raw.hexdigest()
        if self._kind in ("gzip", "zstd"):
            return raw, "sha256:" + self.plain.hexdigest()
        return raw, raw


def verified_chunks(blob: LayerBlob, chunks: Iterable[bytes], where: str) -> Iterator[bytes]:
    """Pass a layer blob's bytes through; at the end, raise ``BlobError`` unless the blob hashes
    to its digest and unpacks to its diff ID."""
    hasher = BlobHasher()
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > blob.size:
            raise BlobError(f"{where}: blob {blob.digest} is longer than its {blob.size} bytes")
        hasher.update(chunk)
        yield chunk
    digest, diff = hasher.digests()
    why = check_blob_digests(blob, digest, diff) if total == blob.size else \
        f"blob {blob.digest} is {total} bytes, not {blob.size}"
    if why:
        raise BlobError(f"{where}: {why}")


class BlobError(Exception):
    """A layer blob read for an archive is missing or does not verify (names it and why)."""


def write_verified_frame(blob: LayerBlob, chunks: Iterable[bytes], codec: str, path: str, where: str) -> None:
    """:func:`write_frame` of a blob checked on the way; no frame file is left if it fails."""
    try:
        write_frame(blob, verified_chunks(blob, chunks, where), codec, path)
    except BaseException:
        if os.path.exists(path):
            os.unlink(path)
        raise


# -- the two readers under their earlier names (scripts written against them keep working) ---
def spool_save_stream(chunks: Iterable[bytes], wanted: set[int], codec: str, spool_dir: str) -> ImageParts:
    """See :func:`opskit.images.savereader.spool_save_stream`."""
    from opskit.images.savereader import spool_save_stream as read

    return read(chunks, wanted, codec, spool_dir)


def spool_from_store(store: Any, image_id: str, diff_ids: list[str], wanted: set[int], codec: str,
                     spool_dir: str) -> ImageParts:
    """See :func:`opskit.images.layerstore.parts_from_store`."""
    from opskit.images.layerstore import parts_from_store

    return parts_from_store(store, image_id, diff_ids, wanted, codec, spool_dir)
