"""Unit tests of the delta archive pieces (no engine): chain IDs, planning rules, frames, tar."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest
import zstandard
from _savearchives import chunks, layer_tar

from opskit.images import ship as shipmod
from opskit.images import shiptar
from opskit.images.contentstore import store_kind
from opskit.images.savereader import spool_save_stream

# Real values from Docker 20.10 on this project's machines: the diff IDs of a 4-layer image
# and the chain IDs the engine stored them under (/var/lib/docker/image/overlay2/layerdb).
DIFF_IDS = [
    "sha256:1b6e042c67cf42a45d257d66bf330d2a91c458822fef2b475c6bb0f90c2ef542",
    "sha256:bb3dbd87956d7ccbeedc94d22ce1acc0c50144ba4aa6520507f467abcd598500",
    "sha256:ee438919618cd42daf2b4bfe9f8ea69c2439f2fd2b372e72a256c91c76f0fa00",
    "sha256:c7bfdc56605c7975e3e5ea1226c16707d81e4cecebc8f0b814dfbc7751d1dd6b",
]
CHAIN_IDS = [
    DIFF_IDS[0],
    "sha256:0aac7b511cc92d02aa793e7acfc6478dfcc7ad40370b1c3d1c26facaa84bc547",
    "sha256:528abf6c63610979e1d852e4b03d93d2a80ab63a444efe9fc93a892b42ce35c2",
    "sha256:8dcd9ca8491ece44cee4016139bb95354602161db7985775edc56219af3558dc",
]


def test_chain_ids_match_the_engine():
    assert shiptar.chain_ids(DIFF_IDS) == CHAIN_IDS


def test_a_layer_is_held_only_with_the_whole_stack_below_it():
    # The host has an image whose second layer differs: only layer 0 is shared.
    other = [DIFF_IDS[0], "sha256:" + "0" * 64, DIFF_IDS[2]]
    held = shiptar.held_chain_ids([{"RootFS": {"Layers": other}}, {"RootFS": {}}])
    ours = shiptar.chain_ids(DIFF_IDS)
    assert [c in held for c in ours] == [True, False, False, False]


def test_the_image_store_is_read_from_docker_info():
    # DriverStatus as Docker 20.10 (overlay2) and Docker 26 with containerd-snapshotter report it.
    legacy = {"Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]]}
    containerd = {"Driver": "overlayfs", "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]}
    assert store_kind(legacy) == "legacy" and store_kind(containerd) == "containerd"
    assert store_kind({"Driver": "vfs", "DriverStatus": None}) == "legacy"


def _save_archive(layers: list[bytes]) -> tuple[bytes, list[str]]:
    """A docker-save-shaped archive (legacy format) with these layer tarballs."""
    diff_ids = ["sha256:" + hashlib.sha256(lay).hexdigest() for lay in layers]
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    v1 = [hashlib.sha256(f"v1-{i}".encode()).hexdigest() for i in range(len(layers))]
    manifest = [{"Config": config_name, "RepoTags": ["x:1"], "Layers": [f"{v}/layer.tar" for v in v1]}]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        members = {f"{v}/layer.tar": lay for v, lay in zip(v1, layers, strict=True)}
        members[config_name] = config
        members["manifest.json"] = json.dumps(manifest).encode()
        for name in sorted(members):  # docker sorts by name, not by stack order
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            tf.addfile(info, io.BytesIO(members[name]))
    return buf.getvalue(), diff_ids


@pytest.mark.parametrize("codec", ["zstd", "gzip"])
def test_delta_archive_holds_only_the_missing_layers(tmp_path, codec):
    layers = [layer_tar({f"f{i}.txt": (b"layer %d " % i) * (2000 * (i + 1))}) for i in range(3)]
    archive, diff_ids = _save_archive(layers)
    parts = spool_save_stream(chunks(archive), {2}, codec, str(tmp_path))
    assert list(parts.frames) == [diff_ids[2]]
    assert parts.archive_bytes == len(archive)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"save-{diff_ids[2][7:23]}.{codec}"]  # raw spool gone
    arch = shipmod.archive_for(parts, [2], ["x:2"])
    wire = b"".join(arch.chunks(0))
    assert len(wire) == arch.wire_bytes and arch.layers == 1
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(wire), read_across_frames=True).read() \
        if codec == "zstd" else gzip.decompress(wire)
    assert len(raw) == arch.raw_bytes
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        names = tf.getnames()
        manifest = json.loads(tf.extractfile("manifest.json").read())
        layer = tf.extractfile(shiptar.blob_path(diff_ids[2])).read()
    assert names[0] == shiptar.blob_path(diff_ids[2]) and names[-3:] == ["index.json", "oci-layout", "manifest.json"]
    assert manifest[0]["RepoTags"] == ["x:2"] and manifest[0]["Layers"] == [shiptar.blob_path(d) for d in diff_ids]
    assert "sha256:" + hashlib.sha256(layer).hexdigest() == diff_ids[2]


def test_resumed_stream_is_the_tail_of_the_whole_stream(tmp_path):
    layers = [layer_tar({"a": bytes(range(256)) * 900}), layer_tar({"b": b"x" * 50000})]
    archive, diff_ids = _save_archive(layers)
    parts = spool_save_stream(chunks(archive), {0, 1}, "zstd", str(tmp_path))
    arch = shipmod.archive_for(parts, [0, 1], [])
    whole = b"".join(arch.chunks(0))
    for skip in (0, 1, len(whole) // 3, len(whole) - 1, len(whole)):
        assert b"".join(arch.chunks(skip)) == whole[skip:]
    assert arch.sha256() == hashlib.sha256(whole).hexdigest()


def test_a_save_stream_without_manifest_is_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("abc/layer.tar")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(shipmod.TransferError, match="manifest.json"):
        spool_save_stream(chunks(buf.getvalue()), set(), "zstd", str(tmp_path))


def test_each_distinct_archive_is_hashed_once_across_hosts(tmp_path, monkeypatch):
    import hashlib
    import threading

    from opskit.images.ship import Archive, ArchiveDigests

    frame = tmp_path / "f0"
    frame.write_bytes(b"layer bytes" * 1000)
    same = [Archive([str(frame)], b"tail-a", 0) for _ in range(4)]
    other = Archive([str(frame)], b"tail-b", 0)
    calls = []
    real = Archive.sha256
    monkeypatch.setattr(Archive, "sha256", lambda self: calls.append(self.tail) or real(self))
    digests = ArchiveDigests()
    got: list[str] = []
    threads = [threading.Thread(target=lambda a=a: got.append(digests.of(a))) for a in same]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [b"tail-a"]  # four hosts, one hash
    assert set(got) == {hashlib.sha256(frame.read_bytes() + b"tail-a").hexdigest()}
    assert digests.of(other) == hashlib.sha256(frame.read_bytes() + b"tail-b").hexdigest()
    assert calls == [b"tail-a", b"tail-b"]
