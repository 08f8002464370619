"""ship's two ways of reading an image on the sending side, on real engines of both stores:
the engine's own store (overlay2 layerdb + tar-split, or the containerd content store) and
``docker save`` (Docker 20.10's layout with a repeated layer as a symlink, Docker 26's OCI
layout). Both must give the same config, manifest and layer blobs (field case images-train/07).
"""

from __future__ import annotations

import io
import tarfile

import zstandard

from opskit.images import ship as shipmod
from opskit.images.savereader import spool_save_stream

# Two byte-identical COPY steps around a RUN rm: the same layer (diff ID) twice in the stack.
DOCKERFILE = "FROM {base}\nCOPY f /f\nRUN rm /f\nCOPY f /f\n"


def build_duplayer(client, base: str, tmp_path, tag: str) -> str:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f").write_bytes(b"same bytes\n")
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    client.images.build(path=str(ctx), tag=tag, rm=True, pull=False, network_mode="none")
    return tag


def save_members(client, ref: str) -> dict[str, tarfile.TarInfo]:
    data = b"".join(client.api.get_image(ref, chunk_size=1 << 20))
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: m for m in tf.getmembers()}


def frame_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        return zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True).read()


def both_readers_agree(client, ref: str, tmp_path, store_source: str) -> shipmod.LocalImage:
    image = shipmod.local_image(client, ref)
    every = set(range(len(image.diff_ids)))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    from_store = shipmod.parts_from_local_store(client, image, every, "zstd", str(tmp_path / "a"))
    saved = spool_save_stream(client.api.get_image(image.image_id, chunk_size=1 << 20), every, "zstd",
                              str(tmp_path / "b"))
    assert from_store.source == store_source and saved.source == "docker save"
    assert (saved.config, saved.manifest, saved.diff_ids) == (from_store.config, from_store.manifest, image.diff_ids)
    assert sorted(saved.frames) == sorted(from_store.frames)
    for digest in saved.frames:
        assert frame_bytes(saved.frames[digest]) == frame_bytes(from_store.frames[digest])
    return image


def test_legacy_engine_repeated_layer_symlink_read_both_ways(docker_client, base_image, tmp_path):
    tag = build_duplayer(docker_client, base_image, tmp_path, "opskit-shiptest-duplayer:2")
    try:
        image = both_readers_agree(docker_client, tag, tmp_path, "overlay2 store")
        assert image.diff_ids[1] == image.diff_ids[3]  # the repeated layer
        links = [m for name, m in save_members(docker_client, tag).items() if name.endswith("/layer.tar") and m.issym()]
        assert len(links) == 1  # Docker 20.10 wrote the repeat as a symlink: the case of images-train/07
    finally:
        docker_client.images.remove(tag, force=True)


def test_containerd_engine_content_store_and_oci_save_read_both_ways(docker_client, local_engine_factory, base_image,
                                                                     tmp_path):
    from opskit.testing.localengine import copy_image

    engine = local_engine_factory("containerd")
    copy_image(docker_client, engine, base_image)
    tag = build_duplayer(engine.client, base_image, tmp_path, "opskit-shiptest-duplayer:cd")
    try:
        image = both_readers_agree(engine.client, tag, tmp_path, "containerd store")
        assert image.store == "containerd" and image.described.manifest_digest != image.config_digest
        names = save_members(engine.client, tag)
        assert "index.json" in names and "oci-layout" in names  # Docker 26 saves an OCI layout
    finally:
        engine.client.images.remove(tag, force=True)
