"""opskit df / ps / status on this machine (local transport), compared with what df, ps,
hostname and the Docker engine say here; and the fake nvidia-smi path (fake on PATH)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _helpers import assert_df_bytes, parse_df_b1

from opskit.testing.cli import run_cli as opskit

FAKE_BIN = Path(__file__).resolve().parents[2] / "opskit" / "testing" / "bin"


def df_b1(*extra: str) -> dict[str, tuple[int, int, int]]:
    out = subprocess.run(["df", "-B1", "-P", *extra], capture_output=True, text=True,
                         env={**os.environ, "LC_ALL": "C"}).stdout
    return parse_df_b1(out)


@pytest.fixture(autouse=True)
def _localhost_only(monkeypatch, tmp_path):
    empty = tmp_path / "ssh_config"
    empty.write_text("")
    monkeypatch.setenv("OPSKIT_SSH_CONFIG", str(empty))
    monkeypatch.delenv("OPSKIT_INVENTORY", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./opskit.yaml or ./hosts.yaml from elsewhere


def df_json(capsys, *args: str) -> dict:
    code, out, err = opskit(capsys, "df", "--json", *args)
    assert code == 0, err
    fss = json.loads(out)["hosts"]["localhost"]["filesystems"]
    return {f["mount"]: (f["size"], f["used"], f["free"]) for f in fss}


def test_df_bytes_equal_df_b1(capsys):
    before, ours, after = df_b1(), df_json(capsys), df_b1()
    assert ours and not any(m.startswith(("/proc", "/sys", "/dev/shm")) for m in ours)
    assert_df_bytes(ours, before, after)
    # with --all, the quiet pseudo filesystems must match df -B1 -a exactly
    before, ours, after = df_b1("-a"), df_json(capsys, "--all"), df_b1("-a")
    assert set(ours) == set(before)
    assert assert_df_bytes(ours, before, after) >= len(ours) // 2


def test_df_human(capsys):
    code, out, _ = opskit(capsys, "df", "-h")
    assert code == 0 and "localhost" in out and "MOUNTED ON" in out
    assert any(unit in out for unit in ("G ", "M ", "T ", "K "))


def test_df_warn_exit_codes(capsys):
    code, _, err = opskit(capsys, "df", "--warn", "0%")
    assert code == 1 and "is " in err and "full (above 0%)" in err
    code, out, _ = opskit(capsys, "df", "--warn", "100%", "--json")
    assert code == 0 and json.loads(out)["warn"] == 100


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "307"])
    time.sleep(0.1)
    yield proc
    proc.kill()
    proc.wait()


def test_ps_finds_a_process_like_ps_does(capsys, sleeper):
    code, out, _ = opskit(capsys, "ps", "--name", "^sleep 307$", "--json")
    assert code == 0
    (p,) = json.loads(out)["hosts"]["localhost"]["processes"]
    real = subprocess.run(["ps", "-o", "user=,args=", "-p", str(sleeper.pid)],
                          capture_output=True, text=True).stdout.split(None, 1)
    assert p["pid"] == sleeper.pid and p["user"] == real[0] and p["command"] == real[1].strip()
    assert p["ppid"] == os.getpid() and 0 <= p["elapsed"] < 60
    code, out, _ = opskit(capsys, "ps", "--sort", "mem", "--limit", "3", "--json")
    procs = json.loads(out)["hosts"]["localhost"]["processes"]
    assert len(procs) == 3 and procs[0]["mem_percent"] >= procs[2]["mem_percent"]


def test_status_matches_this_machine(capsys, docker_client, monkeypatch):
    from opskit.hosts.local import LocalTransport

    calls = []
    real_run = LocalTransport.run

    def counting_run(self, argv, **kw):
        calls.append(list(argv))
        return real_run(self, argv, **kw)

    monkeypatch.setattr(LocalTransport, "run", counting_run)
    code, out, err = opskit(capsys, "status", "--json")
    assert code == 0, err
    assert calls == [["sh", "-s"]]  # the whole snapshot in one round trip
    s = json.loads(out)["hosts"]["localhost"]
    assert s["hostname"] == Path("/proc/sys/kernel/hostname").read_text().strip()
    assert s["kernel"]["release"] == os.uname().release and s["cpus"] == os.cpu_count()
    assert s["memory"]["total"] == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert s["disks"] and s["top_processes"]
    assert s["docker"]["state"] == "running"
    assert s["docker"]["server_version"] == docker_client.version()["Version"]
    images = s["docker"]["images"]
    assert images["count"] >= 1  # the base image at least
    # a busy engine may need longer than status waits for the disk use (see sections.py)
    assert images["size_bytes"] or "docker system df took over" in s["docker"]["message"]
    if not any(Path(p, "nvidia-smi").exists() for p in os.environ["PATH"].split(":")):
        assert s["gpu"]["message"] == "no NVIDIA GPU (nvidia-smi not found)"
    code, out, _ = opskit(capsys, "status")
    assert code == 0 and "hostname" in out and "docker" in out


def test_fake_gpu_on_path(capsys, monkeypatch, tmp_path, sleeper):
    data = json.loads((FAKE_BIN / "fake-nvidia-smi.json").read_text())
    data["processes"] = [{"gpu": 1, "pid": sleeper.pid, "process_name": "sleep",
                          "used_gpu_memory": 2048}]
    (tmp_path / "gpus.json").write_text(json.dumps(data))
    monkeypatch.setenv("OPSKIT_FAKE_NVIDIA_SMI", str(tmp_path / "gpus.json"))
    monkeypatch.setenv("PATH", f"{FAKE_BIN}:{os.environ['PATH']}")
    assert sys.executable  # the fake runs with /usr/bin/env python3

    code, out, err = opskit(capsys, "status", "--json")
    assert code == 0, err
    g = json.loads(out)["hosts"]["localhost"]["gpu"]
    assert g["status"] == "ok" and g["driver_version"] == "590.48.01"
    assert g["cuda_version"] == "13.1" and len(g["gpus"]) == 2
    (proc,) = g["gpus"][1]["processes"]
    assert proc["pid"] == sleeper.pid and proc["gpu_memory_usage"] == 2048
    assert proc["username"] and proc["command"] == "sleep"

    code, out, _ = opskit(capsys, "ps", "--name", "^sleep 307$")
    assert code == 0 and "GPU MEM" in out and "2048MiB" in out

    (tmp_path / "gpus.json").write_text(json.dumps({"fail": {"exit_code": 9}, "gpus": []}))
    code, out, err = opskit(capsys, "status")
    assert code == 1 and "nvidia-smi failed" in out
