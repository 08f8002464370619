"""Real archive bytes for the ship tests: small layer tarballs and ``docker save`` archives in the
layouts engines write (20.10-24 with a symlinked repeated layer; 25+ OCI layout; the containerd
store's OCI layout with gzip blobs under an index with an attestation manifest)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def config_of(layers: list[bytes]) -> bytes:
    diff_ids = [sha(x) for x in layers]
    return json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids},
                       "history": [{"created_by": f"step {i}"} for i in range(len(layers))]}).encode()


def tar_of(members: list[tuple[str, object]]) -> bytes:
    """Members: (name, bytes) a file, (name, ("sym", target)) a symlink, (name, None) a folder."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, tuple):
                info.type = tarfile.SYMTYPE if data[0] == "sym" else tarfile.LNKTYPE
                info.linkname = str(data[1])
                tf.addfile(info)
            elif data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                assert isinstance(data, bytes)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def legacy_save(layers: list[bytes], tags: list[str], link_repeats: str = "") -> bytes:
    """Docker 20.10-24: <v1 id>/layer.tar; a repeated layer as a symlink ("sym") or a hard
    link ("hard") to its first copy when ``link_repeats`` says so."""
    config = config_of(layers)
    cid = sha(config).split(":")[1]
    v1 = [f"{i + 1:064x}" for i in range(len(layers))]
    members: list[tuple[str, object]] = [(f"{v}/", None) for v in v1]
    first: dict[bytes, str] = {}
    for v, data in zip(v1, layers, strict=True):
        name = f"{v}/layer.tar"
        if link_repeats and data in first:
            target = f"../{first[data]}" if link_repeats == "sym" else first[data]
            members.append((name, (link_repeats, target)))
        else:
            first.setdefault(data, name)
            members.append((name, data))
    manifest = [{"Config": f"{cid}.json", "RepoTags": tags, "Layers": [f"{v}/layer.tar" for v in v1]}]
    members += [(f"{cid}.json", config), ("manifest.json", json.dumps(manifest).encode())]
    members.sort(key=lambda m: m[0])  # docker writes by name, not by stack order
    return tar_of(members)


def oci_manifest(config: bytes, blobs: list[bytes], media: str) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": media, "digest": sha(b), "size": len(b)} for b in blobs],
    }).encode()


def oci_save(layers: list[bytes], tags: list[str], gzip_blobs: bool = False, nested: bool = False) -> tuple[bytes, bytes]:
    """Docker 25+: OCI layout + manifest.json into blobs/ (each blob once). ``gzip_blobs`` and
    ``nested`` (index -> index with an attestation manifest) as the containerd store writes.
    Returns (archive, the OCI manifest)."""
    config = config_of(layers)
    blobs = [gzip.compress(x, mtime=0) for x in layers] if gzip_blobs else list(layers)
    media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gzip_blobs else "")
    manifest = oci_manifest(config, blobs, media)
    store = {sha(b): b for b in blobs}
    store[sha(config)] = config
    store[sha(manifest)] = manifest
    top = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest), "size": len(manifest),
           "platform": {"os": "linux", "architecture": "amd64"}}
    if nested:
        attest = json.dumps({"schemaVersion": 2, "config": {"digest": sha(b"{}"), "size": 2}, "layers": []}).encode()
        store[sha(attest)] = attest
        store[sha(b"{}")] = b"{}"
        inner = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
            {"digest": sha(attest), "size": len(attest), "platform": {"os": "unknown", "architecture": "unknown"}},
            top]}).encode()
        store[sha(inner)] = inner
        top = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(inner), "size": len(inner)}
    index = json.dumps({"schemaVersion": 2, "manifests": [top]}).encode()
    members: list[tuple[str, object]] = [("blobs/", None), ("blobs/sha256/", None)]
    members += [(f"blobs/sha256/{d.split(':')[1]}", b) for d, b in store.items()]
    entry = {"Config": f"blobs/sha256/{sha(config).split(':')[1]}", "RepoTags": tags,
             "Layers": [f"blobs/sha256/{sha(b).split(':')[1]}" for b in blobs]}
    members += [("index.json", index), ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                ("manifest.json", json.dumps([entry]).encode())]
    return tar_of(members), manifest


def chunks(data: bytes, size: int = 7000):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def three_layers() -> list[bytes]:
    """A file layer, then the same empty layer twice (two RUN steps that changed nothing)."""
    empty = layer_tar({})
    return [layer_tar({"etc/a": b"hello\n" * 500}), empty, empty]
