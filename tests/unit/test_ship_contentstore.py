"""Layers read from a containerd content store laid out in tmp_path (gzip blobs, an index with
an attestation manifest, as Docker 26+ with the containerd image store keeps them)."""

from __future__ import annotations

import gzip
import json
from types import SimpleNamespace

import pytest
import zstandard
from _savearchives import config_of, layer_tar, oci_manifest, sha

from opskit.images import ship as shipmod
from opskit.images.contentstore import ContentStore, parts_from_content
from opskit.images.layerstore import StoreUnavailable
from opskit.images.shiptar import blob_path, tar_member
from opskit.testing.fake import FakeTransport


def _store(root, layers):
    blobs = [gzip.compress(x, mtime=0) for x in layers]
    config = config_of(layers)
    manifest = oci_manifest(config, blobs, "application/vnd.oci.image.layer.v1.tar+gzip")
    attest = json.dumps({"schemaVersion": 2, "config": {"digest": sha(b"{}"), "size": 2}, "layers": []}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"digest": sha(attest), "size": len(attest), "platform": {"os": "unknown", "architecture": "unknown"}},
        {"digest": sha(manifest), "size": len(manifest), "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    for data in [*blobs, config, manifest, attest, index]:
        path = root / blob_path(sha(data))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return ContentStore(str(root)), sha(index), blobs, manifest


def test_the_image_is_read_as_stored_and_each_blob_verified(tmp_path, monkeypatch):
    monkeypatch.setattr("opskit.images.contentstore.host_platform", lambda: ("linux", "amd64"))
    layers = [layer_tar({"base": b"b" * 5000}), layer_tar({"code.py": b"V = 1\n"})]
    store, image_id, blobs, manifest = _store(tmp_path / "content", layers)
    spool = tmp_path / "spool"
    spool.mkdir()
    parts = parts_from_content(store, image_id, [sha(x) for x in layers], {1}, "zstd", str(spool))
    assert parts.source == "containerd store" and parts.manifest == manifest  # the image's own manifest
    assert parts.diff_ids == [sha(x) for x in layers] and list(parts.frames) == [sha(blobs[1])]
    with open(parts.frames[sha(blobs[1])], "rb") as fh:
        assert zstandard.ZstdDecompressor().stream_reader(fh).read() == tar_member(blob_path(sha(blobs[1])), blobs[1])
    # A blob that unpacks to something else than its diff ID (same name, other bytes inside).
    (tmp_path / "content" / blob_path(sha(blobs[0]))).write_bytes(gzip.compress(layers[1], mtime=0))
    with pytest.raises(StoreUnavailable, match="hashes to|longer than its|bytes, not"):
        parts.ensure({0})
    # An image loaded from a partial archive lacks its lower blobs (moby#49473): not readable.
    (tmp_path / "content" / blob_path(sha(blobs[0]))).unlink()
    with pytest.raises(StoreUnavailable, match=f"no blob {sha(blobs[0])}"):
        parts.ensure({0})
    assert sorted(p.name for p in spool.iterdir()) == [f"content-{sha(blobs[1])[7:23]}.zstd"]


def test_an_index_without_this_platform_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("opskit.images.contentstore.host_platform", lambda: ("linux", "arm64"))
    layers = [layer_tar({"a": b"1"})]
    store, image_id, _, _ = _store(tmp_path, layers)
    with pytest.raises(StoreUnavailable, match="no manifest for linux/arm64"):
        parts_from_content(store, image_id, [sha(x) for x in layers], set(), "zstd", str(tmp_path))


def test_presence_is_judged_by_our_ids_under_our_tags_then_by_our_image_id():
    diff_ids = [sha(b"a"), sha(b"b")]
    looked_up = []

    def ids():
        looked_up.append(1)  # the local store is read only when the host's ID is not ours
        return {sha(b"config"): "config digest", sha(b"manifest"): "manifest digest"}

    image = SimpleNamespace(image_id=sha(b"config"), repo_tags=("proj:v1", "proj:latest"), diff_ids=diff_ids,
                            store="legacy", config_digest=sha(b"config"), ids=ids)
    by_tags = ("docker", "image", "ls", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}",
               "--filter", "reference=proj:v1", "--filter", "reference=proj:latest")
    by_id = ("docker", "image", "inspect", "--format", "{{.Id}} {{json .RootFS.Layers}} {{json .RepoTags}}",
             sha(b"config"))
    none = ("", "Error: No such image", 1)
    # A containerd-store host knows it by its manifest digest; proj:latest names an older image there.
    host = FakeTransport("h", {by_tags: f"{sha(b'older')} proj:latest\n{sha(b'manifest')} proj:v1\n"})
    assert shipmod.image_on_host(host, image) == (sha(b"manifest"), ["proj:v1"], "containerd")
    assert looked_up  # a foreign-looking ID: our digests were read to judge it
    # Our tag on an image that is not ours, and our ID absent: not there.
    host = FakeTransport("h", {by_tags: f"{sha(b'other')} proj:v1\n", by_id: none})
    assert shipmod.image_on_host(host, image) is None
    # Our ID with other layers is not ours either (the inspect path checks diff IDs too).
    host = FakeTransport("h", {by_tags: "", by_id: (f"{sha(b'config')} {json.dumps(diff_ids[:1])} []\n", "", 0)})
    assert shipmod.image_on_host(host, image) is None
    # The same store under our tag: our own ID, one command, no local store read.
    looked_up.clear()
    host = FakeTransport("h", {by_tags: f"{sha(b'config')} proj:v1\n{sha(b'config')} proj:latest\n"})
    assert shipmod.image_on_host(host, image) == (sha(b"config"), ["proj:v1", "proj:latest"], "legacy")
    assert looked_up == [] and len(host.calls) == 1
    # Untagged there: found by our image ID.
    host = FakeTransport("h", {by_tags: "", by_id: (f"{sha(b'config')} {json.dumps(diff_ids)} null\n", "", 0)})
    assert shipmod.image_on_host(host, image) == (sha(b"config"), [], "legacy")
