"""What an image IS on either image store, for tests that compare two engines.

Image IDs differ by store: the legacy (overlay2) store's ID is the config digest, the containerd
store's is the manifest (or index) digest of the image. Two engines hold the same image when
its layer diff IDs and its config digest agree (:class:`ImageFacts`). On the containerd store
the config digest is read from the manifest blob in the content store of dockerd's own
containerd (``<DockerRootDir>/containerd/daemon/io.containerd.content.v1.content``), read
through ``read_blob`` (a file read here, or ``cat`` inside a test host).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opskit.errors import OpskitError

CONTENT = "containerd/daemon/io.containerd.content.v1.content/blobs/sha256"
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")


@dataclass(frozen=True)
class ImageFacts:
    image_id: str  # the engine's own ID (config digest or manifest digest, by store)
    config_digest: str
    diff_ids: tuple[str, ...]

    def same_image(self) -> tuple[str, tuple[str, ...]]:
        """What must agree between two engines holding the same image."""
        return self.config_digest, self.diff_ids


def config_digest(image_id: str, store: str, read_blob: Callable[[str], bytes]) -> str:
    """The config digest of the image with engine ID ``image_id`` on ``store``."""
    if store != "containerd":
        return image_id
    doc = json.loads(read_blob(image_id))
    if doc.get("mediaType") in INDEX_TYPES or "manifests" in doc:
        linux = [m for m in doc.get("manifests", [])
                 if (m.get("platform") or {}).get("os", "linux") == "linux"
                 and (m.get("annotations") or {}).get("vnd.docker.reference.type") != "attestation-manifest"]
        if not linux:
            raise OpskitError(f"index {image_id[:19]} lists no linux manifest")
        doc = json.loads(read_blob(linux[0]["digest"]))
    return str(doc["config"]["digest"])


def blob_path(docker_root: str, digest: str) -> str:
    return f"{docker_root}/{CONTENT}/{digest.split(':', 1)[1]}"


def facts_from_attrs(attrs: dict, store: str, read_blob: Callable[[str], bytes]) -> ImageFacts:
    image_id = attrs["Id"]
    layers = tuple((attrs.get("RootFS") or {}).get("Layers") or ())
    return ImageFacts(image_id, config_digest(image_id, store, read_blob), layers)


def local_facts(client: Any, ref: str) -> ImageFacts:
    """Facts of ``ref`` on a local engine whose DockerRootDir is readable from here."""
    from opskit.testing.dind import engine_store

    info = client.info()
    root = info["DockerRootDir"]

    def read_blob(digest: str) -> bytes:
        with open(blob_path(root, digest), "rb") as fh:
            return fh.read()

    return facts_from_attrs(client.api.inspect_image(ref), engine_store(info), read_blob)


def host_facts(host: Any, ref: str) -> ImageFacts | None:
    """Facts of ``ref`` on a test host's engine (read inside it), None when it lacks the image."""
    from opskit.testing.dind import engine_store

    code, out = host.exec(["docker", "image", "inspect", ref])
    if code != 0:
        return None
    attrs = json.loads(out)[0]
    code, info_json = host.exec(["docker", "info", "--format", "{{json .}}"])
    info = json.loads(info_json)

    def read_blob(digest: str) -> bytes:
        path = blob_path(info["DockerRootDir"], digest)
        for _ in range(3):  # a docker exec's output can come back empty on a loaded machine
            code, text = host.exec(["sh", "-c", 'cat "$1" && printf "\\n%s" "$(stat -c %s "$1")"',
                                    "sh", path])
            if code != 0:
                raise OpskitError(f"{host.name}: no blob {digest[:19]} in the content store: {text}")
            blob, _, size = text.rpartition("\n")
            if size.isdigit() and len(blob.encode()) == int(size):
                return blob.encode()
        raise OpskitError(f"{host.name}: blob {digest[:19]} read back as {text[-200:]!r}")

    return facts_from_attrs(attrs, engine_store(info), read_blob)
