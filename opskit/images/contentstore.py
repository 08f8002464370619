"""Read an image straight from this machine's containerd image store (no full ``docker save``).

On the containerd image store (Docker 29's default; Docker 26 with the ``containerd-snapshotter``
feature) there is no overlay2 ``layerdb``: an image is a tree of content-addressed blobs in
containerd's content store, ``<root>/io.containerd.content.v1.content/blobs/sha256/<digest>``:
the image ID is the digest of the top blob (a manifest, or an index of manifests), the manifest
names the config and the layer blobs (usually gzip-compressed). The root is the engine's own
containerd (``<DockerRootDir>/containerd/daemon``) or the system's (``/var/lib/containerd``).

The archive then carries the image's own manifest and its layer blobs as they are stored; each
blob read is checked against its digest and, unpacked on the way, against its diff ID. A blob
that is absent (an image loaded from a partial archive keeps only the blobs that came with it,
moby#49473) makes the store unusable for this image: the caller falls back to ``docker save``.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from opskit.images.layerstore import StoreUnavailable, engine_is_here, spool_frames
from opskit.images.shiptar import (
    MT_OCI_LAYER,
    ImageParts,
    LayerBlob,
    blob_path,
    sha256_digest,
)

CHUNK = 1 << 20
CONTENT = "io.containerd.content.v1.content"
SMALL = 16 << 20
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def is_containerd_store(info: dict) -> bool:
    """Whether ``docker info`` describes an engine on the containerd image store."""
    status = {str(k): str(v) for k, v in (info.get("DriverStatus") or []) if k}
    return "containerd" in status.get("driver-type", "")


def store_kind(info: dict) -> str:
    """``containerd`` or ``legacy`` (overlay2 and the other graph drivers)."""
    return "containerd" if is_containerd_store(info) else "legacy"


@dataclass(frozen=True)
class ContentStore:
    root: str  # the folder holding blobs/sha256/

    def path(self, digest: str) -> str:
        return os.path.join(self.root, blob_path(digest))

    def read_small(self, digest: str) -> bytes:
        path = self.path(digest)
        try:
            with open(path, "rb") as fh:
                data = fh.read(SMALL + 1)
        except OSError as exc:
            raise StoreUnavailable(f"no blob {digest} in {self.root}: {exc.strerror}") from exc
        if sha256_digest(data) != digest:
            raise StoreUnavailable(f"{path} does not hash to {digest}")
        return data

    def chunks(self, digest: str) -> Iterator[bytes]:
        try:
            fh = open(self.path(digest), "rb")  # noqa: SIM115 - closed below, after the last chunk
        except OSError as exc:
            raise StoreUnavailable(f"no blob {digest} in {self.root}: {exc.strerror}") from exc
        with fh:
            yield from iter(lambda: fh.read(CHUNK), b"")


def host_platform() -> tuple[str, str]:
    machine = platform.machine()
    return "linux", _ARCH.get(machine, machine)


def pick_manifest(store: ContentStore, top: bytes, diff_ids: list[str]) -> bytes:
    """The manifest of the image whose top blob is ``top``: itself, or (an index) the entry
    for this machine's platform whose config has these diff IDs."""
    doc = json.loads(top)
    if not doc.get("manifests"):
        return top
    want = host_platform()
    for desc in doc["manifests"]:
        plat = desc.get("platform") or {}
        if (plat.get("os"), plat.get("architecture")) != want:
            continue  # another platform, or an attestation ("unknown/unknown")
        try:
            data = store.read_small(str(desc["digest"]))
        except StoreUnavailable:
            continue  # that platform's manifest was never pulled
        inner = pick_manifest(store, data, diff_ids)
        config = json.loads(store.read_small(json.loads(inner)["config"]["digest"]))
        if list((config.get("rootfs") or {}).get("diff_ids") or []) == diff_ids:
            return inner
    raise StoreUnavailable(f"no manifest for {'/'.join(want)} with this image's layers in the index")


def parts_from_content(store: ContentStore, image_id: str, diff_ids: list[str], wanted: set[int], codec: str,
                       spool_dir: str) -> ImageParts:
    """The image's parts read from the containerd content store: its own manifest and config,
    and frames of the ``wanted`` layers' blobs (each checked against digest and diff ID)."""
    manifest = pick_manifest(store, store.read_small(image_id), diff_ids)
    doc = json.loads(manifest)
    config = store.read_small(str(doc["config"]["digest"]))
    got = list((json.loads(config).get("rootfs") or {}).get("diff_ids") or [])
    if got != diff_ids:
        raise StoreUnavailable(f"the config of {image_id} in {store.root} has other diff IDs than the engine reports")
    descs = doc.get("layers") or []
    blobs = [LayerBlob(d, str(x["digest"]), int(x["size"]), str(x.get("mediaType") or MT_OCI_LAYER))
             for d, x in zip(diff_ids, descs, strict=True)]
    parts = ImageParts(config, manifest, blobs, "containerd store", codec)
    parts.refill = lambda more: _content_frames(store, parts, more, spool_dir)
    _content_frames(store, parts, wanted, spool_dir)
    return parts


def _content_frames(store: ContentStore, parts: ImageParts, wanted: set[int], spool_dir: str) -> None:
    spool_frames(parts, wanted, spool_dir, "content", lambda i: store.chunks(parts.layers[i].digest),
                 "in the containerd content store")


def content_roots(info: dict) -> list[str]:
    root = str(info.get("DockerRootDir") or "")
    found = [os.path.join(root, "containerd", "daemon", CONTENT)] if root else []
    return [*found, os.path.join("/var/lib/containerd", CONTENT)]


def open_content_store(client: Any, info: dict, image_id: str) -> ContentStore:
    """The content store holding ``image_id``'s top blob, if the engine is on this machine,
    on the containerd image store, and the store is readable here."""
    engine_is_here(client)
    if not is_containerd_store(info):
        raise StoreUnavailable("the engine is not on the containerd image store")
    for root in content_roots(info):
        if os.access(os.path.join(root, blob_path(image_id)), os.R_OK):
            return ContentStore(root)
    raise StoreUnavailable(f"no readable content store holds {image_id} ({', '.join(content_roots(info))})")
