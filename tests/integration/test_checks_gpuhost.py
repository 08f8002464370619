"""opskit status / ps over SSH on a Docker-in-Docker "GPU host" (real sshd, a real inner
Docker engine, the fake nvidia-smi on PATH): compared with docker and nvidia-smi run inside."""

from __future__ import annotations

import json

import pytest
from _helpers import point_opskit_at

from opskit.testing.cli import run_cli as opskit


@pytest.fixture
def gpu_bed(gpu_hosts, monkeypatch, tmp_path):
    return point_opskit_at(gpu_hosts, monkeypatch, tmp_path)


def test_status_on_a_gpu_host(capsys, gpu_bed):
    host = gpu_bed.hosts[0]
    code, out, err = opskit(capsys, "status", "--json", "--host", host.name)
    assert code == 0, err
    s = json.loads(out)["hosts"][host.name]
    inside = host.exec(["docker", "version", "--format", "{{.Server.Version}}"], user="opskit")
    assert s["docker"]["state"] == "running"
    assert s["docker"]["server_version"] == inside[1].strip()
    ids = host.exec(["docker", "image", "ls", "-q", "--no-trunc"], user="opskit")[1].split()
    assert s["docker"]["images"]["count"] in (len(set(ids)), len(ids))
    listed = host.exec(["nvidia-smi", "-L"], user="opskit")[1].splitlines()
    g = s["gpu"]
    assert g["status"] == "ok" and len(g["gpus"]) == len(listed) >= 1
    for dev, line in zip(g["gpus"], listed, strict=True):
        assert line.startswith(f"GPU {dev['index']}: {dev['name']} (UUID: {dev['uuid']})")
    assert g["driver_version"] and g["cuda_version"]


def test_docker_permission_denied_is_said_plainly(capsys, gpu_bed):
    host = gpu_bed.hosts[-1]
    assert host.exec(["chmod", "0600", "/var/run/docker.sock"])[0] == 0
    try:
        code, out, err = opskit(capsys, "status", "--host", host.name)
        assert code == 0, err
        assert "Docker: permission denied for this user" in out
    finally:
        host.exec(["chmod", "0660", "/var/run/docker.sock"])
