"""The engine kinds of opskit.testing: telling the image stores apart from `docker info`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opskit.errors import OpskitError
from opskit.testing.dind import ENGINE_KINDS, check_engine_store, engine_kind, engine_store
from opskit.testing.localengine import dockerd_argv

# DriverStatus as Docker 20.10 (overlay2) and Docker 26.1.5 (containerd snapshotter) report it
LEGACY = {"ServerVersion": "20.10.24+dfsg1", "Driver": "overlay2", "DriverStatus": [
    ["Backing Filesystem", "extfs"], ["Supports d_type", "true"], ["Native Overlay Diff", "true"],
    ["userxattr", "false"]]}
CONTAINERD = {"ServerVersion": "26.1.5+dfsg1", "Driver": "overlayfs",
              "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]}


def test_engine_store_from_docker_info():
    assert engine_store(LEGACY) == "overlay2"
    assert engine_store(CONTAINERD) == "containerd"
    assert engine_store({"Driver": "vfs", "DriverStatus": None}) == "vfs"


def test_check_engine_store_refuses_the_other_store_and_a_dead_engine():
    assert check_engine_store("h", "containerd", 0, json.dumps(CONTAINERD))["Driver"] == "overlayfs"
    with pytest.raises(OpskitError, match="reports the overlay2 image store, not containerd") as err:
        check_engine_store("h", "containerd", 0, json.dumps(LEGACY))
    assert "daemon.json" in (err.value.hint or "")
    with pytest.raises(OpskitError, match="h: the inner Docker engine is not usable: boom"):
        check_engine_store("h", "legacy", 1, "boom\n")


def test_engine_kinds_and_their_local_dockerd():
    assert {k: (v.suite, v.store) for k, v in ENGINE_KINDS.items()} == {
        "legacy": ("bookworm", "overlay2"), "containerd": ("trixie", "containerd")}
    with pytest.raises(OpskitError, match="unknown engine kind 'podman'"):
        engine_kind("podman")
    argv = dockerd_argv("legacy", Path("/tmp/opskit-engine-x"))
    assert argv[:5] == ["dockerd", "-H", "unix:///tmp/opskit-engine-x/docker.sock", "--data-root",
                        "/tmp/opskit-engine-x/root"]
    assert argv[-2:] == ["--storage-driver", "overlay2"]
    assert "--storage-driver" not in dockerd_argv("containerd", Path("/tmp/opskit-engine-x"))


def test_config_digest_on_either_store_follows_index_and_manifest():
    from opskit.testing.stores import blob_path, config_digest

    cfg, man, idx, att = "sha256:" + "c" * 64, "sha256:" + "m" * 64, "sha256:" + "i" * 64, "sha256:" + "a" * 64
    blobs = {
        idx: json.dumps({"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
            {"digest": att, "platform": {"os": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
            {"digest": man, "platform": {"os": "linux", "architecture": "amd64"}}]}),
        man: json.dumps({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                         "config": {"digest": cfg}, "layers": []}),
    }
    read = lambda d: blobs[d].encode()  # noqa: E731
    assert config_digest(cfg, "overlay2", read) == cfg  # the legacy store's ID IS the config digest
    assert config_digest(man, "containerd", read) == cfg
    assert config_digest(idx, "containerd", read) == cfg
    assert blob_path("/r", man) == "/r/containerd/daemon/io.containerd.content.v1.content/blobs/sha256/" + "m" * 64
