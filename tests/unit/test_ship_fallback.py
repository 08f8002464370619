"""ship_one's proof after ``docker load`` and its fallback to the full archive (control flow,
on a fake host that reads the real archive bytes; the real engines are in
tests/integration/test_ship.py)."""

from __future__ import annotations

import io
import json
import tarfile
from types import SimpleNamespace

import pytest
import zstandard
from _savearchives import chunks, layer_tar, legacy_save, sha

from opskit.errors import TransferError
from opskit.images import ship as shipmod
from opskit.images.savereader import spool_save_stream
from opskit.images.shiptar import LayerInfo, blob_path, chain_ids
from opskit.testing.fake import FakeReply, FakeTransport

UNPACK_0 = "Loaded image: proj:v2\nError unpacking image name=proj:v2: content digest sha256:ab: not found\n"


class FakeHost(FakeTransport):
    """A host whose engine answers ``docker load`` from a script of replies, and remembers which
    blobs each archive held."""

    def __init__(self, loads: list[FakeReply], store: str, parts, inspect_id: str | None = None):
        super().__init__("gpu1")
        self.loads, self.store, self.parts = list(loads), store, parts
        self.inspect_id = inspect_id
        self.archives: list[list[str]] = []
        self.removed: list[str] = []

    def _answer(self, argv, stdin):
        if argv[:2] == ("sh", "-c") and "HOME" in argv[2]:
            return FakeReply("/home/u")
        if argv[:2] == ("sh", "-c") and "umask 077" in argv[2]:  # private_dirs: the staging folder
            for path in argv[4:]:
                self.makedirs(path)
            return FakeReply("")
        if argv[:2] == ("sh", "-c") and "docker load" in argv[2]:
            raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(self.files[argv[-1]]),
                                                              read_across_frames=True).read()
            with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
                self.archives.append(sorted(n for n in tf.getnames() if n.startswith("blobs/")))
            return self.loads.pop(0)
        if argv[:3] == ("docker", "image", "inspect"):
            ident = self.inspect_id or (self.parts.manifest_digest if self.store == "containerd"
                                        else self.parts.config_digest)
            return FakeReply(f"{ident} {json.dumps(self.parts.diff_ids)}\n")
        if argv[:2] == ("docker", "create"):
            return FakeReply("c0ffee\n")
        if argv[:3] == ("docker", "rm", "-f"):
            return FakeReply("c0ffee\n")
        if argv[:4] == ("docker", "image", "rm", "-f"):
            self.removed.append(argv[4])
            return FakeReply("")
        return super()._answer(argv, stdin)


def _image(tmp_path):
    layers = [layer_tar({"base": b"b" * 3000}), layer_tar({"deps": b"d" * 2000}), layer_tar({"code.py": b"V = 2\n"})]
    parts = spool_save_stream(chunks(legacy_save(layers, ["proj:v2"])), {0, 1, 2}, "zstd", str(tmp_path))
    diff_ids = [sha(x) for x in layers]
    image = SimpleNamespace(repo_tags=("proj:v2",), image_id=parts.config_digest, diff_ids=diff_ids)
    chains = chain_ids(diff_ids)
    plan = shipmod.HostPlan("gpu1", False, "containerd", "containerd image store: 2 of 3 layers already there",
                            [LayerInfo(2, diff_ids[2], chains[2], 100, "COPY code.py")])
    return parts, image, plan


@pytest.mark.parametrize("failed_load", [
    FakeReply(UNPACK_0),  # Docker 25-29: exit 0, the unpack error only printed
    FakeReply("", "failed to unpack loaded image: failed to extract layer sha256:ab: content digest "
              "sha256:ab: not found", 1),  # Docker 26.1 exits 1, and keeps the image record too
])
def test_a_host_lacking_a_lower_layer_gets_the_full_archive_and_says_why(tmp_path, failed_load):
    parts, image, plan = _image(tmp_path)
    host = FakeHost([failed_load, FakeReply("Loaded image: proj:v2\n")], "containerd", parts)
    events = []
    r = shipmod.ship_one(host, image, plan, parts, shipmod.ShipOptions(on_event=lambda h, m: events.append(m)))
    assert host.archives[0] == sorted([blob_path(parts.layers[2].digest), blob_path(parts.config_digest),
                                       blob_path(parts.manifest_digest)])  # first: only the missing layer
    assert len(host.archives[1]) == 5  # then every layer blob + config + manifest
    assert (r.mode, r.layers_sent, r.store) == ("full", 3, "containerd")
    assert "could not unpack" in r.fallback or "docker load failed" in r.fallback
    assert r.host_image_id == parts.manifest_digest  # the containerd store's ID: the manifest digest
    assert "proj:v2" in host.removed  # the incomplete image went before the full load
    assert any("sending the full archive" in e for e in events)
    assert not host.files  # nothing left in the staging folder


def test_a_loaded_image_with_a_foreign_id_is_replaced_by_the_full_archive(tmp_path):
    parts, image, plan = _image(tmp_path)
    host = FakeHost([FakeReply("Loaded image: proj:v2\n")] * 2, "legacy", parts, inspect_id="sha256:" + "e" * 64)
    with pytest.raises(TransferError, match=r"neither the config digest .* \(sent as a full archive after: .*neither"):
        shipmod.ship_one(host, image, plan, parts, shipmod.ShipOptions())
    assert len(host.archives) == 2 and host.removed.count(parts.manifest_digest) == 2  # nothing of ours left
    assert "proj:v2" not in host.removed  # the tag names another image: not ours to remove


def test_a_partial_load_that_works_is_a_delta(tmp_path):
    parts, image, plan = _image(tmp_path)
    host = FakeHost([FakeReply("Loaded image: proj:v2\n")], "legacy", parts)
    r = shipmod.ship_one(host, image, plan, parts, shipmod.ShipOptions())
    assert (r.mode, r.layers_sent, r.fallback, r.host_image_id) == ("delta", 1, "", parts.config_digest)
    assert [a[0] for a in host.archives] == [sorted([blob_path(parts.layers[2].digest), blob_path(parts.config_digest),
                                                     blob_path(parts.manifest_digest)])[0]]
    create = next(c[0] for c in host.calls if c[0][:2] == ("docker", "create"))
    assert "--pull" in create and create[create.index("--pull") + 1] == "never"  # never a registry


def test_a_full_disk_is_an_error_not_a_fallback(tmp_path):
    parts, image, plan = _image(tmp_path)
    host = FakeHost([FakeReply("", "write /var/lib/docker/tmp/x: no space left on device", 1)], "legacy", parts)
    with pytest.raises(TransferError, match="no space left") as err:
        shipmod.ship_one(host, image, plan, parts, shipmod.ShipOptions())
    assert "free disk space" in (err.value.hint or "") and len(host.archives) == 1


def test_layers_from_docker_save_when_the_store_cannot_be_read_and_again_for_a_full_archive(tmp_path):
    """An engine reached over TCP (or a store this user cannot read): one docker save for the
    plan's layers, and a second one only when a fallback needs every layer."""
    layers = [layer_tar({"base": b"b" * 3000}), layer_tar({"code.py": b"V = 2\n"})]
    archive = legacy_save(layers, ["proj:v2"])
    saves = []

    class Api:
        base_url = "tcp://10.0.0.5:2376"

        def get_image(self, image_id, chunk_size):
            saves.append(image_id)
            return chunks(archive, chunk_size)

    client = SimpleNamespace(api=Api(), info=lambda: {"Driver": "overlay2", "DockerRootDir": "/var/lib/docker"})
    image = SimpleNamespace(image_id="sha256:" + "c" * 64, diff_ids=[sha(x) for x in layers], store="legacy",
                            engine_info=client.info())
    parts = shipmod.read_parts(client, image, {1}, "zstd", str(tmp_path))
    assert parts.source == "docker save" and list(parts.frames) == [sha(layers[1])] and saves == [image.image_id]
    parts.ensure({1})
    assert len(saves) == 1  # nothing more to read
    parts.ensure({0, 1})
    assert sorted(parts.frames) == sorted(sha(x) for x in layers) and len(saves) == 2


def test_the_run_card_names_the_image_id_on_each_side():
    from opskit.jobs.runner import image_card

    image = SimpleNamespace(ref="proj:v2", image_id="sha256:" + "a" * 64, store="legacy", config_digest="sha256:" + "a" * 64,
                            repo_tags=("proj:v2",), diff_ids=["sha256:" + "d" * 64])
    shipped = shipmod.ShipResult("gpu1", image.image_id, "delta", 1, 12000, 1500, 0, 0.1, "zstd", "",
                                 "overlay2 store", "containerd", "sha256:" + "m" * 64, "")
    card = image_card(image, shipped)
    assert (card["id"], card["host_id"], card["host_store"]) == (image.image_id, "sha256:" + "m" * 64, "containerd")
    assert "legacy store" in card["id_is"] and "containerd store" in card["host_id_is"]
    assert card["shipped"] == {"mode": "delta", "layers_sent": 1, "wire_bytes": 1500, "fallback": ""}
