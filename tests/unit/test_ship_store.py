"""Layers rebuilt from an engine store's tar-split metadata (a store laid out in tmp_path)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile

import pytest
import zstandard

from opskit.images import shiptar
from opskit.images.layerstore import LocalStore, StoreUnavailable, parts_from_store

FILES = {"app/src/settings.py": b"VALUE = 2\n", "app/big.bin": bytes(range(256)) * 300, "app/empty": b""}


def make_layer(root, chain_id: str, files: dict[str, bytes]) -> bytes:
    """Write a layer into a fake store the way the engine does; return its exact tarball."""
    buf = io.BytesIO()
    entries = []
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1
            start = buf.tell()
            tf.addfile(info, io.BytesIO(data))
            raw = buf.getvalue()[start:]
            header, body = raw[: len(raw) - len(data) - (-len(data)) % 512], data
            entries.append({"type": 2, "payload": base64.b64encode(header).decode()})
            entries.append({"type": 1, "name": name, "size": len(body)})
            pad = raw[len(header) + len(body):]
            if pad:
                entries.append({"type": 2, "payload": base64.b64encode(pad).decode()})
    tar = buf.getvalue()
    written = sum(len(base64.b64decode(e["payload"])) if e["type"] == 2 else e["size"] for e in entries)
    entries.append({"type": 2, "payload": base64.b64encode(tar[written:]).decode()})  # end blocks
    layerdb = root / "image/overlay2/layerdb/sha256" / chain_id.split(":")[-1]
    layerdb.mkdir(parents=True)
    (layerdb / "cache-id").write_text("cache1")
    with gzip.open(layerdb / "tar-split.json.gz", "wt") as fh:
        fh.write("".join(json.dumps(e) + "\n" for e in entries))
    diff = root / "overlay2/cache1/diff"
    for name, data in files.items():
        (diff / name).parent.mkdir(parents=True, exist_ok=True)
        (diff / name).write_bytes(data)
    return tar


def test_layer_is_rebuilt_byte_for_byte(tmp_path):
    tar = make_layer(tmp_path, "sha256:" + "a" * 64, FILES)
    store = LocalStore(str(tmp_path))
    assert b"".join(store.layer_tar("sha256:" + "a" * 64)) == tar
    assert store.layer_tar_size("sha256:" + "a" * 64) == len(tar)


def test_spool_from_store_verifies_diff_id_and_config(tmp_path):
    tar = make_layer(tmp_path / "root", "sha256:" + hashlib.sha256(b"x").hexdigest(), FILES)
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    # A one-layer image: its chain ID is its diff ID; re-home the layer under that name.
    db = tmp_path / "root/image/overlay2/layerdb/sha256"
    (db / hashlib.sha256(b"x").hexdigest()).rename(db / diff_id.split(":")[-1])
    config = json.dumps({"rootfs": {"diff_ids": [diff_id]}}).encode()
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    content = tmp_path / "root/image/overlay2/imagedb/content/sha256"
    content.mkdir(parents=True)
    (content / image_id.split(":")[-1]).write_bytes(config)
    spool = tmp_path / "spool"
    spool.mkdir()
    store = LocalStore(str(tmp_path / "root"))
    parts = parts_from_store(store, image_id, [diff_id], {0}, "zstd", str(spool))
    assert parts.source == "overlay2 store" and parts.config == config and parts.layers[0].size == len(tar)
    assert parts.config_digest == image_id  # the legacy store's image ID
    manifest = json.loads(parts.manifest)  # an OCI manifest of the uncompressed layer
    assert manifest["layers"] == [{"mediaType": shiptar.MT_OCI_LAYER, "digest": diff_id, "size": len(tar)}]
    # The frame is the layer's tar member: header, the exact layer tarball, padding.
    with open(parts.frames[diff_id], "rb") as fh:
        member = zstandard.ZstdDecompressor().stream_reader(fh).read()
    assert member == shiptar.tar_member(shiptar.blob_path(diff_id), tar)
    # The file changed under the store: the rebuilt layer no longer hashes to its diff ID.
    (tmp_path / "root/overlay2/cache1/diff/app/src/settings.py").write_bytes(b"VALUE = 3\n")
    spool2 = tmp_path / "spool2"
    spool2.mkdir()
    with pytest.raises(StoreUnavailable, match="hashes to"):
        parts_from_store(store, image_id, [diff_id], {0}, "zstd", str(spool2))
    assert list(spool2.iterdir()) == []  # the unverified frame is not left behind
    (content / image_id.split(":")[-1]).write_bytes(config + b" ")
    with pytest.raises(StoreUnavailable, match="does not hash"):
        store.config(image_id)


def test_names_outside_the_layer_are_refused(tmp_path):
    make_layer(tmp_path, "sha256:" + "b" * 64, {"ok.txt": b"1"})
    split = tmp_path / "image/overlay2/layerdb/sha256" / ("b" * 64) / "tar-split.json.gz"
    with gzip.open(split, "wt") as fh:
        fh.write(json.dumps({"type": 1, "name": "../../etc/shadow", "size": 5}) + "\n")
    with pytest.raises(StoreUnavailable, match="outside the layer"):
        b"".join(LocalStore(str(tmp_path)).layer_tar("sha256:" + "b" * 64))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OPSKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("opskit.images.layerstore._SIZES", {})


def test_tarball_sizes_are_remembered_and_a_wrong_one_is_caught(tmp_path):
    chain = "sha256:" + hashlib.sha256(b"y").hexdigest()
    tar = make_layer(tmp_path / "root", chain, FILES)
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    db = tmp_path / "root/image/overlay2/layerdb/sha256"
    (db / chain.split(":")[-1]).rename(db / diff_id.split(":")[-1])  # one layer: chain ID = diff ID
    store = LocalStore(str(tmp_path / "root"))
    assert store.layer_tar_size(diff_id) == len(tar)
    remembered = tmp_path / "cache/layer-sizes" / diff_id.split(":")[-1]
    assert remembered.read_text() == str(len(tar))  # the next process skips reading tar-split
    remembered.write_text(str(len(tar) - 512))  # a stale or tampered hint
    import opskit.images.layerstore as layerstore

    layerstore._SIZES.clear()
    config = json.dumps({"rootfs": {"diff_ids": [diff_id]}}).encode()
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    content = tmp_path / "root/image/overlay2/imagedb/content/sha256"
    content.mkdir(parents=True)
    (content / image_id.split(":")[-1]).write_bytes(config)
    spool = tmp_path / "spool"
    spool.mkdir()
    with pytest.raises(StoreUnavailable, match="longer than its"):
        parts_from_store(store, image_id, [diff_id], {0}, "zstd", str(spool))
    assert list(spool.iterdir()) == []  # never a frame with a wrong header
