"""The ``docker save`` reader on real archive bytes of every layout engines write, and the hybrid
archive it feeds (field cases images-train/07 and 08)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest
import zstandard
from _savearchives import (
    chunks,
    config_of,
    layer_tar,
    legacy_save,
    oci_save,
    sha,
    tar_of,
    three_layers,
)

from opskit.errors import TransferError
from opskit.images import ship as shipmod
from opskit.images import shiptar
from opskit.images.savereader import spool_save_stream


def _unframe(path: str, codec: str) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read()
    if codec == "gzip":
        return gzip.decompress(data)
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()


def _layouts():
    layers = three_layers()
    return {
        "legacy": legacy_save(layers, ["t:1"]),
        "legacy, repeated layer as symlink (20.10)": legacy_save(layers, ["t:1"], link_repeats="sym"),
        "legacy, repeated layer as hard link": legacy_save(layers, ["t:1"], link_repeats="hard"),
        "OCI layout (Docker 25+)": oci_save(layers, ["t:1"])[0],
        "OCI layout, gzip blobs under an index (containerd store)": oci_save(layers, ["t:1"], True, True)[0],
    }


@pytest.mark.parametrize("layout", list(_layouts()))
@pytest.mark.parametrize("codec", ["zstd", "gzip"])
def test_every_layout_gives_every_layer_verified(tmp_path, layout, codec):
    layers = three_layers()
    parts = spool_save_stream(chunks(_layouts()[layout]), {0, 1, 2}, codec, str(tmp_path))
    assert parts.diff_ids == [sha(x) for x in layers] and parts.config == config_of(layers)
    assert parts.source == "docker save" and parts.archive_bytes == len(_layouts()[layout])
    assert len(parts.frames) == 2  # the repeated empty layer is one blob
    for blob in parts.layers:
        member = _unframe(parts.frames[blob.digest], codec)
        with tarfile.open(fileobj=io.BytesIO(member)) as tf:
            (info,) = tf.getmembers()
            data = tf.extractfile(info).read()
        assert info.name == shiptar.blob_path(blob.digest) and sha(data) == blob.digest
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(  # the raw spool is gone
        f"save-{d.split(':')[1][:16]}.{codec}" for d in parts.frames)


def test_field_case_07_symlinked_repeated_layer_alone(tmp_path):
    """COPY f; RUN rm f; COPY f: layers A, B, A; the third is a symlink in a 20.10 save."""
    a, b = layer_tar({"f": b"same bytes\n"}), layer_tar({".wh.f": b""})
    parts = spool_save_stream(chunks(legacy_save([a, b, a], ["dup:2"], "sym")), {2}, "zstd", str(tmp_path))
    assert list(parts.frames) == [sha(a)]
    assert _unframe(parts.frames[sha(a)], "zstd") == shiptar.tar_member(shiptar.blob_path(sha(a)), a)


def test_the_archive_manifest_is_kept_for_oci_layouts(tmp_path):
    archive, manifest = oci_save(three_layers(), ["t:1"], gzip_blobs=True, nested=True)
    parts = spool_save_stream(chunks(archive), set(), "zstd", str(tmp_path))
    assert parts.manifest == manifest and parts.frames == {}
    assert all(b.media_type.endswith("+gzip") and b.digest != b.diff_id for b in parts.layers)


def test_a_layer_missing_from_the_archive_is_named(tmp_path):
    layers = three_layers()
    data = legacy_save(layers, ["t:1"])
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:  # drop the first layer.tar
        members = [(m.name, None if m.isdir() else tf.extractfile(m).read()) for m in tf.getmembers()
                   if m.name != f"{1:064x}/layer.tar"]
    with pytest.raises(TransferError, match=r"lacks 0+1/layer.tar \(named by manifest.json\)"):
        spool_save_stream(chunks(tar_of(members)), {0}, "zstd", str(tmp_path))


def test_a_symlink_loop_is_a_missing_layer(tmp_path):
    layers = [layer_tar({"a": b"1"})]
    config = config_of(layers)
    manifest = [{"Config": "c.json", "RepoTags": None, "Layers": ["x/layer.tar"]}]
    data = tar_of([("x/layer.tar", ("sym", "../y/layer.tar")), ("y/layer.tar", ("sym", "../x/layer.tar")),
                   ("c.json", config), ("manifest.json", json.dumps(manifest).encode())])
    with pytest.raises(TransferError, match="lacks x/layer.tar"):
        spool_save_stream(chunks(data), {0}, "zstd", str(tmp_path))


def test_a_corrupt_blob_is_refused_and_no_frame_is_left(tmp_path):
    layers = three_layers()
    archive, _ = oci_save(layers, ["t:1"])
    good = layers[0]
    bad = good.replace(b"hello", b"HELLO", 1)
    spool = tmp_path / "spool"
    spool.mkdir()
    with pytest.raises(TransferError, match="corrupt: layer 0 .* hashes to"):
        spool_save_stream(chunks(archive.replace(good, bad)), {0}, "zstd", str(spool))
    assert list(spool.iterdir()) == []


def test_a_config_that_disagrees_with_manifest_json_is_refused(tmp_path):
    layers = three_layers()
    config = config_of(layers[:2])
    manifest = [{"Config": "c.json", "Layers": ["a", "b", "c"]}]
    data = tar_of([("a", layers[0]), ("b", layers[1]), ("c", layers[2]), ("c.json", config),
                   ("manifest.json", json.dumps(manifest).encode())])
    with pytest.raises(TransferError, match="names 3 layers but the image config has 2"):
        spool_save_stream(chunks(data), set(), "zstd", str(tmp_path))


def _read_archive(arch: shipmod.Archive) -> dict[str, bytes]:
    wire = b"".join(arch.chunks(0))
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(wire), read_across_frames=True).read()
    assert len(raw) == arch.raw_bytes
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers()}


@pytest.mark.parametrize("gzip_blobs", [False, True])
def test_hybrid_archive_has_both_entries_and_only_missing_blobs(tmp_path, gzip_blobs):
    layers = [layer_tar({"base": b"b" * 4000}), layer_tar({"code.py": b"VALUE = 2\n"})]
    archive, _ = oci_save(layers, ["proj:v2"], gzip_blobs=gzip_blobs) if gzip_blobs else (legacy_save(layers, ["proj:v2"]), b"")
    parts = spool_save_stream(chunks(archive), {1}, "zstd", str(tmp_path))
    members = _read_archive(shipmod.archive_for(parts, [1], ["proj:v2", "registry.lan:5000/team/proj:v2"]))
    top = parts.layers[1]
    assert sorted(members) == sorted([shiptar.blob_path(top.digest), shiptar.blob_path(parts.config_digest),
                                      shiptar.blob_path(parts.manifest_digest), "index.json", "oci-layout",
                                      "manifest.json"])
    legacy = json.loads(members["manifest.json"])[0]  # what the legacy store follows
    assert legacy["Layers"] == [shiptar.blob_path(b.digest) for b in parts.layers]
    assert members[legacy["Config"]] == parts.config and legacy["RepoTags"] == ["proj:v2", "registry.lan:5000/team/proj:v2"]
    index = json.loads(members["index.json"])  # what the containerd store follows
    names = [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]]
    assert names == ["docker.io/library/proj:v2", "registry.lan:5000/team/proj:v2"]
    assert {m["digest"] for m in index["manifests"]} == {parts.manifest_digest}
    manifest = json.loads(members[shiptar.blob_path(parts.manifest_digest)])
    assert manifest["config"]["digest"] == parts.config_digest
    assert [x["digest"] for x in manifest["layers"]] == [b.digest for b in parts.layers]
    assert json.loads(members["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    # Our archive is itself a docker save archive of the OCI kind: our reader reads it back.
    (tmp_path / "again").mkdir()
    (tmp_path / "reread").mkdir()
    full = shipmod.archive_for(spool_save_stream(chunks(archive), {0, 1}, "zstd", str(tmp_path / "again")), [0, 1], [])
    reread = spool_save_stream(chunks(_raw(full)), {0, 1}, "gzip", str(tmp_path / "reread"))
    assert reread.manifest == parts.manifest and reread.config == parts.config and len(reread.frames) == 2


def _raw(arch: shipmod.Archive) -> bytes:
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(b"".join(arch.chunks(0))), read_across_frames=True).read()


def test_index_names_follow_docker_reference_rules():
    assert shiptar.normalized_name("proj:v2") == "docker.io/library/proj:v2"
    assert shiptar.normalized_name("team/proj:v2") == "docker.io/team/proj:v2"
    assert shiptar.normalized_name("localhost/proj:1") == "localhost/proj:1"
    assert shiptar.normalized_name("reg.lan:5000/proj:1") == "reg.lan:5000/proj:1"
