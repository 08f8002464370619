"""Read a ``docker save`` stream in any layout an engine writes, by following its paths.

What ``docker save`` writes depends on the engine:

- Docker 20.10-24: ``<v1 id>/layer.tar``, ``<config digest>.json``, ``manifest.json``; a layer
  that repeats in the stack is written once and its second place is a *symlink*
  ``<id>/layer.tar -> ../<first id>/layer.tar``.
- Docker 25 and later: an OCI image layout (``blobs/sha256/<digest>``, ``index.json``,
  ``oci-layout``) plus a ``manifest.json`` whose ``Layers`` point into ``blobs/``; a blob
  shared by two layers is stored once. On the containerd image store the layer blobs are
  usually gzip-compressed, and ``index.json`` may point at an index of manifests.

So nothing is read by member name: ``manifest.json`` says where the config and each layer are,
symlinks (and hard links) are followed, and the OCI manifest (when the archive has one for
this config) gives each layer's blob descriptor. Every layer that goes into an archive is
checked against its digest and diff ID.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from opskit.errors import TransferError
from opskit.images.shiptar import (
    MT_OCI_LAYER,
    BlobError,
    ImageParts,
    LayerBlob,
    blob_path,
    sha256_digest,
    synth_manifest,
    write_verified_frame,
)

CHUNK = 1 << 20
MAX_LINKS = 16
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ZSTD_LAYER = "application/vnd.oci.image.layer.v1.tar+zstd"


class _ChunkReader(io.RawIOBase):
    """A file-like view of an iterator of byte chunks (for ``tarfile`` stream mode)."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._buf = b""
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
            self.total += len(self._buf)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


@dataclass
class Spooled:
    """The members of a save archive, spooled to files; links kept as links."""

    folder: str
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (spool file, size)
    links: dict[str, str] = field(default_factory=dict)  # name -> target name
    total: int = 0

    def resolve(self, name: str, named_by: str) -> str:
        """The regular member ``name`` is (following links), or a TransferError naming it."""
        cur = _clean(name)
        for _ in range(MAX_LINKS):
            if cur in self.files:
                return cur
            if cur not in self.links:
                break
            cur = self.links[cur]
        raise TransferError(
            f"the docker save archive lacks {name} (named by {named_by})",
            "the engine wrote an incomplete archive. On the containerd image store an image loaded "
            "from a partial archive keeps only the blobs that came with it, and docker save leaves "
            "the others out without a word (moby#49473): load or build the image in full here, "
            "then ship again",
        )

    def read(self, name: str, named_by: str, limit: int = 64 << 20) -> bytes:
        path, size = self.files[self.resolve(name, named_by)]
        if size > limit:
            raise TransferError(f"{name} in the docker save archive is {size} bytes; expected a small JSON file")
        with open(path, "rb") as fh:
            return fh.read()

    def chunks(self, name: str) -> Iterator[bytes]:
        path, _ = self.files[name]
        with open(path, "rb") as fh:
            yield from iter(lambda: fh.read(CHUNK), b"")

    def remove(self) -> None:
        for path, _ in self.files.values():
            if os.path.exists(path):
                os.unlink(path)


def _clean(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def spool_members(chunks: Iterable[bytes], folder: str) -> Spooled:
    """Every regular member of the tar stream to a file under ``folder``; links recorded."""
    reader = _ChunkReader(iter(chunks))
    sp = Spooled(folder)
    with tarfile.open(fileobj=io.BufferedReader(reader, CHUNK), mode="r|") as tf:
        for member in tf:
            name = _clean(member.name)
            if member.issym():
                sp.links[name] = _clean(posixpath.join(posixpath.dirname(name), member.linkname))
            elif member.islnk():
                sp.links[name] = _clean(member.linkname)
            elif member.isfile():
                path = os.path.join(folder, f"raw-{len(sp.files)}")
                fh = tf.extractfile(member)
                assert fh is not None
                with open(path, "wb") as out:
                    for chunk in iter(lambda: fh.read(CHUNK), b""):  # noqa: B023
                        out.write(chunk)
                sp.files[name] = (path, member.size)
    sp.total = reader.total
    return sp


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise TransferError(f"{what} in the docker save archive is not JSON: {exc}") from exc


def _oci_manifest(sp: Spooled, config_digest: str, n_layers: int) -> bytes | None:
    """The OCI/Docker manifest in the archive for this config (walking index.json), if any."""
    if "index.json" not in sp.files:
        return None
    todo = list((_json(sp.read("index.json", "the OCI layout"), "index.json") or {}).get("manifests") or [])
    for _ in range(64):
        if not todo:
            break
        desc = todo.pop(0)
        digest = str(desc.get("digest") or "")
        name = blob_path(digest)
        if _clean(name) not in sp.files and _clean(name) not in sp.links:
            continue
        data = sp.read(name, "index.json")
        if sha256_digest(data) != digest:
            raise TransferError(f"{name} in the docker save archive does not hash to its name")
        doc = _json(data, name)
        if doc.get("manifests"):  # an index (several platforms, attestations): look inside
            todo.extend(doc["manifests"])
        elif (doc.get("config") or {}).get("digest") == config_digest and len(doc.get("layers") or []) == n_layers:
            return data
    return None


def _blob_kind(sp: Spooled, name: str) -> str:
    path, _ = sp.files[name]
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"\x1f\x8b":
        return GZIP_LAYER
    if head == b"\x28\xb5\x2f\xfd":
        return ZSTD_LAYER
    return MT_OCI_LAYER


def _plain_blobs(sp: Spooled, names: list[str], diff_ids: list[str]) -> list[LayerBlob]:
    """Blob descriptors of an archive without an OCI manifest (Docker 20.10-24)."""
    from opskit.images.shiptar import BlobHasher

    blobs = []
    for name, diff_id in zip(names, diff_ids, strict=True):
        kind = _blob_kind(sp, name)
        digest = diff_id
        if kind != MT_OCI_LAYER:  # a compressed layer.tar: its blob digest is its own
            hasher = BlobHasher()
            for chunk in sp.chunks(name):
                hasher.update(chunk)
            digest = hasher.digests()[0]
        blobs.append(LayerBlob(diff_id, digest, sp.files[name][1], kind))
    return blobs


def image_parts(sp: Spooled) -> tuple[ImageParts, list[str]]:
    """The image's parts from a spooled save archive, and each layer's member name."""
    if "manifest.json" not in sp.files:
        raise TransferError("the docker save archive has no manifest.json (an engine too old?)")
    entries = _json(sp.read("manifest.json", "the archive"), "manifest.json")
    if not isinstance(entries, list) or len(entries) != 1:
        raise TransferError(f"expected one image in the save archive, found {len(entries or [])}")
    entry = entries[0]
    config = sp.read(str(entry.get("Config")), "manifest.json")
    diff_ids = list(((_json(config, "the image config").get("rootfs") or {}).get("diff_ids")) or [])
    layer_names = [sp.resolve(str(p), "manifest.json") for p in entry.get("Layers") or []]
    if len(layer_names) != len(diff_ids):
        raise TransferError(
            f"the docker save archive's manifest.json names {len(layer_names)} layers but the image "
            f"config has {len(diff_ids)} diff IDs"
        )
    manifest = _oci_manifest(sp, sha256_digest(config), len(diff_ids))
    if manifest is not None:
        descs = json.loads(manifest)["layers"]
        blobs = [LayerBlob(d, str(x["digest"]), int(x["size"]), str(x.get("mediaType") or MT_OCI_LAYER))
                 for d, x in zip(diff_ids, descs, strict=True)]
        for blob, name in zip(blobs, layer_names, strict=True):
            if sp.files[name][1] != blob.size:
                raise TransferError(f"{name} in the docker save archive is {sp.files[name][1]} bytes, "
                                    f"its manifest says {blob.size}")
    else:
        blobs = _plain_blobs(sp, layer_names, diff_ids)
        manifest = synth_manifest(config, blobs)
    parts = ImageParts(config, manifest, blobs, "docker save", archive_bytes=sp.total)
    return parts, layer_names


def spool_save_stream(chunks: Iterable[bytes], wanted: set[int], codec: str, spool_dir: str) -> ImageParts:
    """Read a ``docker save`` stream once; compress the wanted layers' blobs into frame files.

    ``wanted`` are layer indexes (stack order). The members are spooled raw (their order in
    the stream says nothing about the stack, and ``manifest.json`` may come last); each wanted
    blob is verified and compressed, and the spool is deleted.
    """
    sp = spool_members(chunks, spool_dir)
    try:
        parts, names = image_parts(sp)
        parts.codec = codec
        for i in sorted(wanted):
            blob = parts.layers[i]
            if blob.digest in parts.frames:
                continue  # the same blob lower in the stack
            frame = os.path.join(spool_dir, f"save-{blob.digest.split(':')[-1][:16]}.{codec}")
            try:
                write_verified_frame(blob, sp.chunks(names[i]), codec, frame, f"layer {i} ({names[i]})")
            except BlobError as exc:
                raise TransferError(f"the docker save archive is corrupt: {exc}",
                                    "save the image again; if it repeats, the engine's copy is damaged") from exc
            parts.frames[blob.digest] = frame
        return parts
    finally:
        sp.remove()
