"""The two kinds of Docker engine the tests run on: GPU hosts and local engines of each kind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from opskit.hosts.group import connect
from opskit.testing.dind import engine_store
from opskit.testing.localengine import copy_image, saved_archive


def test_containerd_host_is_docker_26_on_the_containerd_store(containerd_host, base_image):
    host = containerd_host.hosts[0]
    code, out = host.exec(["docker", "info", "--format", "{{json .}}"], user="opskit")
    info = json.loads(out)
    assert code == 0 and info["ServerVersion"].startswith("26.1.5")
    assert ["driver-type", "io.containerd.snapshotter.v1"] in info["DriverStatus"]
    assert info["ContainerdCommit"]["ID"] and "trixie" in info["OperatingSystem"]
    transport = connect(containerd_host.specs()[0])  # opskit's own view, over real SSH
    try:
        remote = transport.docker().info()
        assert engine_store(remote) == "containerd"
        assert "nvidia" in remote["Runtimes"]  # the fake NVIDIA runtime, as on the legacy host
    finally:
        transport.close()
    code, out = host.exec(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
    assert code == 0 and "H100" in out
    # an image made on the spot (dash and what it loads) unpacks and runs on that store
    probe = ("tar -chf - -C / usr/bin/dash usr/lib/x86_64-linux-gnu/libc.so.6 lib64/ld-linux-x86-64.so.2"
             " | docker import - opskit-probe:dash >/dev/null"
             " && docker run --rm opskit-probe:dash /usr/bin/dash -c 'echo ran on $0' containerd"
             " && docker image rm opskit-probe:dash >/dev/null")
    code, out = host.exec(["sh", "-c", probe], user="opskit")
    assert code == 0 and out.strip() == "ran on containerd", out


def test_legacy_host_keeps_docker_20_on_overlay2(gpu_hosts):
    code, out = gpu_hosts.hosts[0].exec(["docker", "info", "--format", "{{json .}}"], user="opskit")
    info = json.loads(out)
    assert code == 0 and info["ServerVersion"].startswith("20.10")
    assert engine_store(info) == "overlay2"


@pytest.mark.parametrize("kind", ["legacy", "containerd"])
def test_local_engine_kind_reads_its_store_from_disk_and_runs(local_engine_factory, docker_client, base_image, kind):
    engine = local_engine_factory(kind)
    info = engine.info()
    assert engine_store(info) == {"legacy": "overlay2", "containerd": "containerd"}[kind]
    root = info["DockerRootDir"]
    assert root == str(engine.data_root) and os.path.isdir(root)  # the same path on this machine
    copy_image(docker_client, engine, base_image)
    attrs = engine.client.api.inspect_image(base_image)
    config_digest = engine.client.images.get(base_image).attrs["Id"]
    chain0 = attrs["RootFS"]["Layers"][0].split(":")[1]  # one layer: its chain ID is its diff ID
    if kind == "legacy":  # overlay2: the layer database, at the path the engine reports
        assert os.path.isdir(os.path.join(root, "image/overlay2/layerdb/sha256", chain0))
        assert config_digest == docker_client.images.get(base_image).id
    else:  # containerd store: dockerd's own containerd, its content store (manifest = the ID)
        blobs = os.path.join(root, "containerd/daemon/io.containerd.content.v1.content/blobs/sha256")
        assert config_digest.split(":")[1] in os.listdir(blobs)
        assert config_digest != docker_client.images.get(base_image).id  # IDs differ by store
    # opskit, run as a user runs it with DOCKER_HOST, sees that engine as "this machine"
    env = {**os.environ, **engine.env()}
    out = subprocess.run([sys.executable, "-m", "opskit", "image", "layers", base_image, "--json"],
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)  # that engine's ID (the manifest digest on containerd)
    assert shown["image_id"] == config_digest and [lay["diff_id"] for lay in shown["layers"]] == attrs["RootFS"]["Layers"]
    assert engine.docker("run", "--rm", base_image, "python3", "-c", "print(6 * 7)").strip() == "42"


def test_saved_archive_names_the_asked_tag_not_the_first(docker_client, tmp_path):
    # The image has a tag that sorts before the one asked for (as a training image tagged by many
    # test modules has): the archive must name the one asked for, or a load leaves it missing.
    import io
    import tarfile

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f.txt").write_text("saved by name\n")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY f.txt /f.txt\n")
    first, asked = "opskit-savetest-a:x", "opskit-savetest-b:x"
    image, _ = docker_client.images.build(path=str(ctx), tag=asked, rm=True, pull=False)
    image.tag(first)
    try:
        assert docker_client.images.get(asked).tags[0] == first  # what save(named=True) would name
        with tarfile.open(fileobj=io.BytesIO(b"".join(saved_archive(docker_client, asked)))) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))
        assert [m["RepoTags"] for m in manifest] == [[asked]]
    finally:
        for tag in (first, asked):
            docker_client.images.remove(tag, force=True)
