"""Read single layers straight from this machine's engine store: the legacy (overlay2) store.

(The containerd image store is read by :mod:`opskit.images.contentstore`.)

``docker save`` is all or nothing: to send one changed kilobyte layer of a 1 GB image it copies
the whole image to a temp folder and streams it all (8 s here). Where opskit runs beside the
engine and may read its store (root on a build host, as here; overlay2 driver), a layer's
exact tarball is rebuilt from the engine's own ``tar-split`` metadata and the layer's ``diff``
folder, the same way the engine rebuilds it for ``docker save``; the image config comes from
the engine's image database. Everything is verified: a layer must hash to its diff ID and the
config to the image ID, or the caller falls back to ``docker save``.

Store layout (Docker 20.10 - 28, legacy image store, overlay2)::

    ROOT/image/overlay2/imagedb/content/sha256/<image id>         the config JSON
    ROOT/image/overlay2/layerdb/sha256/<chain id>/cache-id        -> ROOT/overlay2/<cache-id>/diff
    ROOT/image/overlay2/layerdb/sha256/<chain id>/tar-split.json.gz
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from opskit.images.shiptar import (
    BlobError,
    ImageParts,
    LayerBlob,
    chain_ids,
    synth_manifest,
    write_verified_frame,
)

CHUNK = 1 << 20
_SIZES: dict[str, int] = {}  # chain ID -> tarball size (immutable facts, kept for the process)
_SIZES_LOCK = threading.Lock()


class StoreUnavailable(Exception):
    """The store cannot be read here (or did not verify): use ``docker save`` instead."""


@dataclass(frozen=True)
class LocalStore:
    root: str

    def config(self, image_id: str) -> bytes:
        path = os.path.join(self.root, "image/overlay2/imagedb/content/sha256", image_id.split(":")[-1])
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {path}: {exc}") from exc
        if "sha256:" + hashlib.sha256(data).hexdigest() != image_id:
            raise StoreUnavailable(f"{path} does not hash to {image_id}")
        return data

    def _layer_dir(self, chain_id: str) -> str:
        return os.path.join(self.root, "image/overlay2/layerdb/sha256", chain_id.split(":")[-1])

    def diff_dir(self, chain_id: str) -> str:
        try:
            with open(os.path.join(self._layer_dir(chain_id), "cache-id")) as fh:
                cache_id = fh.read().strip()
        except OSError as exc:
            raise StoreUnavailable(f"no layer {chain_id} in {self.root}: {exc}") from exc
        if not cache_id or "/" in cache_id or cache_id.startswith("."):
            raise StoreUnavailable(f"odd cache-id {cache_id!r} for layer {chain_id}")
        return os.path.join(self.root, "overlay2", cache_id, "diff")

    def _entries(self, chain_id: str) -> Iterator[dict]:
        split = os.path.join(self._layer_dir(chain_id), "tar-split.json.gz")
        try:
            with gzip.open(split, "rt") as fh:
                for line in fh:
                    yield json.loads(line)
        except (OSError, EOFError, json.JSONDecodeError) as exc:
            raise StoreUnavailable(f"cannot read {split}: {exc}") from exc

    def layer_tar_size(self, chain_id: str) -> int:
        """The tarball's length, from the metadata alone (for the tar header before it).
        Remembered per chain ID: a chain ID names one exact tarball."""
        with _SIZES_LOCK:
            if chain_id in _SIZES:
                return _SIZES[chain_id]
        cached = _cached_size(chain_id)
        if cached is not None:
            return cached
        total = 0
        for entry in self._entries(chain_id):
            if entry.get("type") == 2 and entry.get("payload"):
                total += len(base64.b64decode(entry["payload"]))
            elif entry.get("type") == 1:
                total += int(entry.get("size") or 0)
        with _SIZES_LOCK:
            _SIZES[chain_id] = total
        _remember_size(chain_id, total)
        return total

    def layer_tar(self, chain_id: str) -> Iterator[bytes]:
        """The layer's exact tarball, reassembled from tar-split + the diff folder."""
        diff = self.diff_dir(chain_id)
        for entry in self._entries(chain_id):
            if entry.get("type") == 2:
                payload = entry.get("payload")
                if payload:
                    yield base64.b64decode(payload)
            elif entry.get("type") == 1 and int(entry.get("size") or 0) > 0:
                yield from _file_bytes(diff, entry)


def _size_file(chain_id: str) -> str:
    from opskit.images.wheelhouse import cache_root

    return os.path.join(cache_root(), "layer-sizes", chain_id.split(":")[-1])


def _cached_size(chain_id: str) -> int | None:
    """A tarball size remembered by an earlier run (reading tar-split costs ~1 s for a 1 GB
    image). Only a hint: every layer that travels is counted and hashed as it is read."""
    try:
        with open(_size_file(chain_id)) as fh:
            size = int(fh.read().strip())
    except (OSError, ValueError):
        return None
    with _SIZES_LOCK:
        _SIZES[chain_id] = size
    return size


def _remember_size(chain_id: str, size: int) -> None:
    path = _size_file(chain_id)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            fh.write(str(size))
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written costs only time


def _file_bytes(diff: str, entry: dict) -> Iterator[bytes]:
    name = entry.get("name")
    if name is None and entry.get("name_raw"):
        name = base64.b64decode(entry["name_raw"]).decode("utf-8", "surrogateescape")
    rel = os.path.normpath(str(name)).lstrip("/")
    if rel.startswith(".."):
        raise StoreUnavailable(f"tar-split names a file outside the layer: {name!r}")
    size = int(entry["size"])
    try:
        with open(os.path.join(diff, rel), "rb") as fh:
            left = size
            while left:
                chunk = fh.read(min(CHUNK, left))
                if not chunk:
                    raise StoreUnavailable(f"{rel} in {diff} is shorter than its {size} bytes")
                left -= len(chunk)
                yield chunk
    except OSError as exc:
        raise StoreUnavailable(f"cannot read {rel} in {diff}: {exc}") from exc


def engine_is_here(client: Any) -> None:
    """Raise StoreUnavailable unless ``client`` talks to an engine on this machine."""
    base = str(getattr(client.api, "base_url", ""))
    if "localhost" not in base and "unix" not in base:
        raise StoreUnavailable(f"the engine at {base} is not on this machine")


def open_local_store(client: Any, info: dict | None = None) -> LocalStore:
    """The store of ``client``'s engine if it is on this machine, overlay2, and readable."""
    engine_is_here(client)
    info = info if info is not None else client.info()
    if info.get("Driver") != "overlay2":
        raise StoreUnavailable(f"storage driver {info.get('Driver')!r} (only overlay2 is read directly)")
    root = str(info.get("DockerRootDir") or "")
    db = os.path.join(root, "image/overlay2/layerdb/sha256")
    if not (root and os.path.isdir(db) and os.access(db, os.R_OK | os.X_OK)):
        raise StoreUnavailable(f"{db} is not readable here")
    return LocalStore(root)


def parts_from_store(store: LocalStore, image_id: str, diff_ids: list[str], wanted: set[int], codec: str,
                     spool_dir: str) -> ImageParts:
    """The image's parts read from the legacy store: the config (checked against the image
    ID), an OCI manifest of uncompressed layers (sizes from tar-split), and frames of the
    ``wanted`` layers, each rebuilt tarball checked against its diff ID."""
    chains = chain_ids(diff_ids)
    config = store.config(image_id)
    blobs = [LayerBlob(d, d, store.layer_tar_size(c)) for d, c in zip(diff_ids, chains, strict=True)]
    parts = ImageParts(config, synth_manifest(config, blobs), blobs, "overlay2 store", codec)
    parts.refill = lambda more: _store_frames(store, parts, chains, more, spool_dir)
    _store_frames(store, parts, chains, wanted, spool_dir)
    return parts


def _store_frames(store: LocalStore, parts: ImageParts, chains: list[str], wanted: set[int], spool_dir: str) -> None:
    spool_frames(parts, wanted, spool_dir, "store", lambda i: store.layer_tar(chains[i]), "rebuilt from the store")


def spool_frames(parts: ImageParts, wanted: set[int], spool_dir: str, prefix: str,
                 chunks_of: Callable[[int], Iterable[bytes]], where: str) -> None:
    """Write a verified frame of each ``wanted`` layer not framed yet into ``spool_dir``
    (``chunks_of(i)`` gives layer i's blob bytes); a blob that does not verify is
    StoreUnavailable, saying ``where`` it was read (the caller then falls back to docker save)."""
    for i in sorted(wanted):
        blob = parts.layers[i]
        if blob.digest in parts.frames:
            continue
        frame = os.path.join(spool_dir, f"{prefix}-{blob.digest.split(':')[-1][:16]}.{parts.codec}")
        try:
            write_verified_frame(blob, chunks_of(i), parts.codec, frame, f"layer {i}")
        except BlobError as exc:
            raise StoreUnavailable(f"{where}, {exc}") from exc
        parts.frames[blob.digest] = frame
