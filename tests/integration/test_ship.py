"""opskit ship against two Docker-in-Docker hosts over real SSH (real engines, real sshd)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from opskit.errors import TransferError
from opskit.hosts.group import connect
from opskit.images import ship as shipmod

MIB = 1 << 20


def build_on(client, base: str, tmp: Path, tag: str, value: int, blob: bytes = b"") -> str:
    """An image FROM ``base`` whose last layer holds one line of code (and maybe a blob).

    Derived from the training image, so that other layers cannot change between two builds.
    """
    ctx = tmp / f"ctx-{tag.replace(':', '-')}"
    ctx.mkdir()
    (ctx / "settings.py").write_text(f"VALUE = {value}\n")
    (ctx / "blob.bin").write_bytes(blob)
    for name in ("settings.py", "blob.bin"):
        os.utime(ctx / name, (0, 0))  # same bytes, same layer, whenever it is built
    (ctx / "Dockerfile").write_text(
        f"FROM {base}\nCOPY blob.bin /app/data/blob.bin\nCOPY settings.py /app/src/settings.py\n"
    )
    client.images.build(path=str(ctx), tag=tag, rm=True, pull=False)
    return tag


def never_shipped(client, tmp: Path) -> str:
    """An image FROM scratch that no other test ships: whatever ran before in this session,
    its first ship to a host is a cold, full one. One layer of 4 MB of compressible text."""
    ctx = tmp / "ctx-cold"
    ctx.mkdir()
    lines = (f"line {i:06d}: the quick brown fox jumps over the lazy dog\n" for i in range(60000))
    (ctx / "payload.txt").write_text("".join(lines))
    os.utime(ctx / "payload.txt", (0, 0))
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY payload.txt /payload.txt\n")
    tag = "opskit-train-shiptest:cold"
    client.images.build(path=str(ctx), tag=tag, rm=True, pull=False)
    return tag


def _assert_hosts_hold(gpu_hosts, ref: str, image_id: str) -> None:
    for host in gpu_hosts.hosts:  # the host's engine has the very same image
        code, out = host.exec(["docker", "image", "inspect", "-f", "{{.Id}}", ref])
        assert code == 0 and out.strip() == image_id


def test_cold_ship_to_two_hosts_in_parallel_then_nothing_to_send(docker_client, gpu_hosts, training_image, tmp_path):
    specs = gpu_hosts.specs()
    result = shipmod.ship(docker_client, training_image, specs)
    assert result.ok, result.failed
    local_id = docker_client.images.get(training_image).id
    for outcome in result:
        r = outcome.value
        assert r.image_id == local_id
        if r.mode == "none":  # test_run_remote.py (earlier in a full run) shipped it already
            continue
        # 'delta' when an earlier test shipped an image sharing lower layers (playbooks, matrix);
        # the strictly cold path is checked below with an image no host has held
        assert r.mode in ("full", "delta") and r.codec == "zstd"
        assert r.wire_bytes <= 0.55 * r.raw_bytes  # compressed on the wire
    _assert_hosts_hold(gpu_hosts, training_image, local_id)
    # The cold path, checked whatever ran before: an image no host has held.
    cold = never_shipped(docker_client, tmp_path)
    cold_id = docker_client.images.get(cold).id
    result = shipmod.ship(docker_client, cold, specs)
    assert result.ok, result.failed
    for outcome in result:
        r = outcome.value
        assert (r.image_id, r.mode, r.layers_sent, r.codec) == (cold_id, "full", 1, "zstd")
        assert r.raw_bytes > 3 * MIB and r.wire_bytes > 0
        assert r.wire_bytes <= 0.55 * r.raw_bytes  # compressed on the wire
    _assert_hosts_hold(gpu_hosts, cold, cold_id)
    for ref in (training_image, cold):
        again = shipmod.ship(docker_client, ref, specs)
        assert [(o.value.mode, o.value.wire_bytes) for o in again] == [("none", 0), ("none", 0)]


def test_one_line_change_ships_only_the_code_layers(docker_client, gpu_hosts, training_image, tmp_path):
    spec = gpu_hosts.specs()[:1]
    shipmod.ship(docker_client, training_image, spec)  # the shared layers are there
    v1 = build_on(docker_client, training_image, tmp_path, "opskit-train-shiptest:v1", 1)
    first = shipmod.ship(docker_client, v1, spec)
    assert first.ok, first.failed
    v2 = build_on(docker_client, training_image, tmp_path, "opskit-train-shiptest:v2", 2)
    image = shipmod.local_image(docker_client, v2)
    result = shipmod.ship(docker_client, v2, spec)
    assert result.ok, result.failed
    r = result.outcomes[0].value
    assert r.mode == "delta" and r.layers_sent == 1  # only the code layer travels
    assert "in /app/src/settings.py" in image.layers[-1].created_by  # the one-line change's layer
    full_archive = sum(lay.size for lay in image.layers)
    assert r.raw_bytes < 32 * 1024 and r.wire_bytes < 8 * 1024  # one layer + config + manifest
    assert r.wire_bytes <= 0.001 * full_archive  # the figure of the issue: <= 0.1% of the bytes
    code, out = gpu_hosts.hosts[0].exec(["docker", "run", "--rm", "--entrypoint", "cat", v2, "/app/src/settings.py"])
    assert code == 0 and out.strip() == "VALUE = 2"


def test_plan_sends_nothing(docker_client, gpu_hosts, training_image, tmp_path):
    shipmod.ship(docker_client, training_image, gpu_hosts.specs()[1:])  # the lower layers are there
    v9 = build_on(docker_client, training_image, tmp_path, "opskit-train-shiptest:v9", 9)
    image, plans = shipmod.plan_only(v9, docker_client, gpu_hosts.specs()[1:])
    p = plans.outcomes[0].value
    assert not p.image_present and p.send and p.send_bytes == sum(lay.size for lay in p.send)
    code, _ = gpu_hosts.hosts[1].exec(["docker", "image", "inspect", v9])
    assert code != 0  # --plan sent nothing
    env = {**os.environ, **gpu_hosts.env()}
    name = gpu_hosts.names[1]
    cli = [sys.executable, "-m", "opskit", "ship", v9, "--host", name]
    planned = json.loads(subprocess.run([*cli, "--plan", "--json"], env=env, capture_output=True, text=True,
                                        check=True).stdout)
    assert planned["hosts"][name]["bytes"] == p.send_bytes and planned["image"]["image_id"] == image.image_id
    shipped = subprocess.run([*cli, "--json"], env=env, capture_output=True, text=True, check=False)
    assert shipped.returncode == 0, shipped.stderr
    r = json.loads(shipped.stdout)["hosts"][name]
    assert r["image_id"] == image.image_id and r["layers_sent"] == len(p.send) and r["mode"] == "delta"


def test_connection_cut_mid_transfer_then_rerun_resumes_and_verifies(docker_client, gpu_hosts, training_image, tmp_path):
    spec = gpu_hosts.specs()[1]
    shipmod.ship(docker_client, training_image, [spec])
    tag = build_on(docker_client, training_image, tmp_path, "opskit-train-shiptest:blob", 3,
                   blob=random.Random(3).randbytes(12 * MIB))
    image = shipmod.local_image(docker_client, tag)
    transport = connect(spec)
    spool = tempfile.mkdtemp()
    sent = [0]

    def cut_after_4mib(host: str, n: int) -> None:
        sent[0] += n
        if sent[0] >= 4 * MIB:
            transport.client().get_transport().close()  # the connection dies

    try:
        hp = shipmod.plan_host(transport, image)
        saved = shipmod.save_wanted(docker_client, image, [hp], spool)
        with pytest.raises(TransferError, match="interrupted after .* partial upload is kept") as err:
            shipmod.ship_one(transport, image, hp, saved[hp.codec], shipmod.ShipOptions(progress=cut_after_4mib))
    finally:
        transport.close()
        shutil.rmtree(spool, ignore_errors=True)
    assert "run the same command again" in (err.value.hint or "")
    host = gpu_hosts.hosts[1]
    code, listing = host.exec(["sh", "-c", "ls -1 /home/opskit/.opskit/ship/"])
    names = listing.split()
    assert names and all(n.endswith(".part") for n in names)  # nothing at a final path
    assert host.exec(["docker", "image", "inspect", tag])[0] != 0  # nothing loaded
    result = shipmod.ship(docker_client, tag, [spec])
    assert result.ok, result.failed
    r = result.outcomes[0].value
    assert r.resumed_from >= 1 * MIB and r.image_id == image.image_id
    assert host.exec(["sh", "-c", "ls -A /home/opskit/.opskit/ship/"])[1].strip() == ""
    code, out = host.exec(["docker", "image", "inspect", "-f", "{{.Id}}", tag])
    assert out.strip() == image.image_id


def test_host_out_of_disk_during_load_is_a_clear_error(docker_client, small_disk_host, tmp_path):
    # 300 MB of zeros: a few hundred KB on the wire, more than the host's 400 MB engine disk
    # holds beside the base layer.
    (tmp_path / "Dockerfile").write_text(
        "FROM opskit-base:bookworm\nRUN head -c 314572800 /dev/zero > /zeros\n"
    )
    tag = "opskit-train-shiptest:zeros"
    docker_client.images.build(path=str(tmp_path), tag=tag, rm=True, pull=False)
    result = shipmod.ship(docker_client, tag, small_disk_host.specs())
    assert not result.ok
    err = result.outcomes[0].error
    assert isinstance(err, TransferError) and "docker load failed" in err.message
    assert "no space left on device" in err.message and "free disk space" in (err.hint or "")
    host = small_disk_host.hosts[0]
    assert host.exec(["sh", "-c", "ls -A /home/opskit/.opskit/ship"])[1].strip() == ""  # cleaned up
    assert host.exec(["docker", "image", "inspect", tag])[0] != 0
