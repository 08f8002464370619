"""Reports that survive sick hosts (field cases hosts/13, 14, 17, 18, 19): each failing part of
``status`` carries its own error, every other part is filled, the exit code is 1, and a hung
tool is stopped on the host by its own limit. Real ``sh`` on this machine with stand-in tools
first in PATH (a stand-in nvidia-smi/ps/df is a few lines of sh); real BusyBox where named."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from opskit.checks import sections as sec
from opskit.checks.disk import parse_df, real_filesystems
from opskit.checks.status import snapshot
from opskit.hosts.local import LocalTransport
from opskit.testing.cli import run_cli
from opskit.testing.engine import require_tool

GPU_RESET = (
    "0, GPU-5e1f0c3a-9b7d-4c21-8e33-0a6b2d9f7c10, 00000000:4A:00.0, 550.90.07, "
    "[GPU requires reset], [N/A], [GPU requires reset], [GPU requires reset], 40211, 81559, "
    "[N/A], 700.00, NVIDIA H100 80GB HBM3\n"
    "1, GPU-5e1f0c3a-9b7d-4c21-8e33-0a6b2d9f7c11, 00000000:5D:00.0, 550.90.07, 36, [N/A], 0, 0, "
    "3, 81559, 69.8, 700.00, NVIDIA H100 80GB HBM3\n")
GPU_LOST = (
    "0, GPU-7a2c4e91-0d3b-4f6a-b5c8-91e0f2a3d400, 00000000:18:00.0, 535.183.01, 41, 35, 12, 3, "
    "20480, 49140, 88.40, 300.00, NVIDIA L40S\n"
    "Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error\n"
    "2, GPU-7a2c4e91-0d3b-4f6a-b5c8-91e0f2a3d402, 00000000:86:00.0, 535.183.01, 39, 33, 0, 0, "
    "512, 49140, 71.25, 300.00, NVIDIA L40S\n")


def tool(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture
def bin_dir(tmp_path, monkeypatch) -> Path:
    """A folder first in PATH for stand-in tools; localhost is the host."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    empty = tmp_path / "empty.yaml"
    empty.write_text("hosts: {}\n")
    monkeypatch.setenv("OPSKIT_INVENTORY", str(empty))
    (tmp_path / "ssh_config").write_text("")
    monkeypatch.setenv("OPSKIT_SSH_CONFIG", str(tmp_path / "ssh_config"))
    return folder


def smi(folder: Path, query_gpu: str, rc: int = 0) -> None:
    (folder / "gpu.out").write_text(query_gpu)
    tool(folder, "nvidia-smi", f'case "$*" in *--query-gpu=*) cat "{folder}/gpu.out"; '
                               f'exit {rc};; esac\nexit 0\n')


def assert_rest_filled(d: dict, *, but: set[str]) -> None:
    for key in ("hostname", "os", "kernel", "uptime_seconds", "load", "cpus", "memory", "disks",
                "top_processes", "docker"):
        if key not in but:
            assert d[key] is not None, key


def test_gpu_requires_reset_is_a_problem_naming_that_gpu(bin_dir, capsys):  # hosts/13
    smi(bin_dir, GPU_RESET)
    d = snapshot(LocalTransport()).to_dict()
    g = d["gpu"]
    assert [x["index"] for x in g["gpus"]] == [0, 1] and g["status"] == "degraded"
    assert g["gpus"][0]["temperature.gpu"] is None
    assert g["gpus"][0]["errors"]["temperature.gpu"] == "GPU requires reset"
    assert g["gpus"][1]["temperature.gpu"] == 36 and g["gpus"][1]["errors"] == {}
    assert d["problems"] == ["GPU 0 (00000000:4A:00.0): GPU requires reset (temperature.gpu, "
                             "utilization.gpu, utilization.memory)"]
    assert_rest_filled(d, but=set())
    code, out, err = run_cli(capsys, "status")
    assert code == 1 and "GPU requires reset" in out and "memory" in out
    code, out, err = run_cli(capsys, "ps")
    assert code == 1 and "GPU 0 (00000000:4A:00.0): GPU requires reset" in out and "PID" in out


def test_one_lost_gpu_leaves_the_healthy_ones_listed(bin_dir, capsys):  # hosts/14
    smi(bin_dir, GPU_LOST, rc=15)
    code, out, _ = run_cli(capsys, "status", "--json")
    d = json.loads(out)["hosts"]["localhost"]
    assert code == 1
    assert [x["index"] for x in d["gpu"]["gpus"]] == [0, 2] and d["gpu"]["status"] == "degraded"
    (problem,) = d["problems"]
    assert "0000:3B:00.0" in problem and "Unable to determine the device handle" in problem
    assert "L40S" not in problem  # not a healthy GPU's row
    assert_rest_filled(d, but=set())


def test_missing_nvidia_smi_without_a_driver_is_no_problem(bin_dir):
    tool(bin_dir, "nvidia-smi", "exit 0\n").unlink()  # none in PATH (nor on this machine)
    d = snapshot(LocalTransport()).to_dict()
    if os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl"):
        pytest.skip("this machine has an NVIDIA driver")
    assert d["gpu"]["status"] == "absent" and d["problems"] == []


def busybox_ps_stand_in(folder: Path) -> None:
    """What BusyBox ps answers to the options opskit uses (shape copied from busybox 1.35)."""
    tool(folder, "ps", "echo \"ps: invalid option -- 'w'\" >&2\n"
                       "echo 'BusyBox v1.35.0 (Debian 1:1.35.0-4+b3) multi-call binary.' >&2\n"
                       "exit 1\n")


@pytest.mark.parametrize("real", [False, True], ids=["stand-in", "busybox"])
def test_busybox_ps_marks_only_the_processes_unavailable(bin_dir, capsys, real):  # hosts/17
    if real:
        busybox = require_tool("busybox", "busybox")
        (bin_dir / "ps").symlink_to(busybox)
        (bin_dir / "df").symlink_to(busybox)
    else:
        busybox_ps_stand_in(bin_dir)
    d = snapshot(LocalTransport()).to_dict()
    assert list(d["section_errors"]) == ["processes"]
    err = d["section_errors"]["processes"]
    assert err["message"] == "ps failed: ps: invalid option -- 'w'" and "procps" in err["hint"]
    assert d["top_processes"] is None and d["disks"]  # BusyBox df answers
    assert_rest_filled(d, but={"top_processes"})
    code, out, _ = run_cli(capsys, "status")
    assert code == 1 and "unavailable: ps failed" in out and "memory" in out and "disk /" in out


def test_container_file_bind_mounts_are_not_disks():  # hosts/18
    text = """Filesystem     Type       1-blocks        Used    Available Capacity Mounted on
overlay        overlay 63278391296 59861622784   3416768512      95% /
tmpfs          tmpfs      67108864           0     67108864       0% /dev
shm            tmpfs      67108864           0     67108864       0% /dev/shm
/dev/vda2      ext4    63278391296 59861622784   3416768512      95% /etc/resolv.conf
/dev/vda2      ext4    63278391296 59861622784   3416768512      95% /etc/hostname
/dev/vda2      ext4    63278391296 59861622784   3416768512      95% /etc/hosts
/dev/vda2      ext4    63278391296 59861622784   3416768512      95% /srv/config.yaml
"""
    fs = parse_df(text, "ctr")
    assert [f.mount for f in real_filesystems(fs)] == ["/", "/srv/config.yaml"]
    # the host's file_mounts section names any other single-file mount
    assert [f.mount for f in real_filesystems(fs, {"/srv/config.yaml"})] == ["/"]


def test_file_mounts_section_names_mount_points_that_are_files():
    got = sec.run_sections(LocalTransport(), ["file_mounts"])["file_mounts"]
    assert got.ok
    for mount in got.stdout.splitlines():
        assert os.path.exists(mount) and not os.path.isdir(mount)


def hung_df(bin_dir: Path) -> Path:
    pids = bin_dir / "df.pids"
    tool(bin_dir, "df", f'echo $$ >> "{pids}"\nexec sleep 300\n')
    return pids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("timeout", ["coreutils", "busybox"])
def test_a_hung_df_costs_only_the_disks_and_is_stopped_on_the_host(bin_dir, monkeypatch,
                                                                   timeout):  # hosts/19
    if timeout == "busybox":  # BusyBox's timeout (Alpine hosts) ends with 143, not 124
        (bin_dir / "timeout").symlink_to(require_tool("busybox", "busybox"))
    monkeypatch.setitem(sec.SNIPPETS, "df", sec._need("df", sec._bounded(1, "df -B1 -P -T")))
    pids = hung_df(bin_dir)
    d = snapshot(LocalTransport()).to_dict()
    assert list(d["section_errors"]) == ["disks"] and d["disks"] is None
    assert d["section_errors"]["disks"]["message"].startswith("df did not answer within")
    assert "NFS" in d["section_errors"]["disks"]["hint"]
    assert_rest_filled(d, but={"disks"})
    (pid,) = [int(x) for x in pids.read_text().split()]
    assert not alive(pid)  # stopped by its limit, not left behind


def test_the_limit_holds_without_a_timeout_command(tmp_path):
    """A host without ``timeout`` (coreutils nor BusyBox): the shell watchdog stops the tool."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("sleep", "cat"):
        (folder / name).symlink_to(__import__("shutil").which(name))
    pids = tmp_path / "pids"
    tool(folder, "slow", f'echo $$ >> "{pids}"\nexec sleep 300\n')
    script = (sec.PRELUDE + "_opskit_limit 1 slow; echo \"rc=$?\"\n"
              + "_opskit_limit 5 cat /proc/loadavg >/dev/null; echo \"rc=$?\"\n")
    res = LocalTransport().run(["/bin/sh", "-c", script], env={"PATH": str(folder)}, timeout=30)
    assert res.stdout.split() == ["rc=143", "rc=0"], res
    (pid,) = [int(x) for x in pids.read_text().split()]
    assert not alive(pid) and 143 in sec.TIMED_OUT_CODES


def test_every_section_failing_is_still_a_report(bin_dir, monkeypatch, capsys):
    """Bad input: nothing on the host answers; still one report per host, exit 1."""
    for name in list(sec.SNIPPETS):
        if name != "self":
            monkeypatch.setitem(sec.SNIPPETS, name, "echo 'broken host' >&2; (exit 3)")
    code, out, err = run_cli(capsys, "status", "--json")
    d = json.loads(out)["hosts"]["localhost"]
    assert code == 1 and d["problems"] and "memory" in d["section_errors"]
    assert d["gpu"]["status"] == "error"
    code, out, err = run_cli(capsys, "status")
    assert code == 1 and "unavailable" in out


def test_mount_sections_without_grep_give_the_same_answer(tmp_path):
    """A host without grep (or timeout): the shell fallbacks read the same tables."""
    import shutil

    from opskit.checks.disk import parse_mountinfo

    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("sh", "cat", "sleep"):
        (folder / name).symlink_to(shutil.which(name))

    class NoGrep(LocalTransport):
        def run(self, argv, **kw):
            return super().run(argv, **{**kw, "env": {"PATH": str(folder)}})

    names = ["file_mounts", "mountinfo", "long_users", "mounts"]
    bare = sec.run_sections(NoGrep(), names)
    full = sec.run_sections(LocalTransport(), names)
    def outside_engines(text: str) -> set[str]:  # grep leaves the engines' mounts out early
        return {m for m in text.splitlines() if not m.startswith(sec.ENGINE_DIRS)}

    assert bare["file_mounts"].ok
    assert outside_engines(bare["file_mounts"].stdout) == set(full["file_mounts"].stdout.splitlines())
    assert parse_mountinfo(bare["mountinfo"].stdout).keys() >= parse_mountinfo(
        full["mountinfo"].stdout).keys()
    assert bare["long_users"].stdout == full["long_users"].stdout
    assert bare["mounts"].ok and bare["mounts"].stdout.count(sec.FILE_MOUNT) >= full[
        "mounts"].stdout.count(sec.FILE_MOUNT)


@pytest.mark.parametrize("df_ok", [True, False])
def test_docker_image_ls_runs_only_where_system_df_failed(bin_dir, df_ok):
    """Each docker CLI start costs the host ~15 ms of CPU: image ls is the fallback only."""
    calls = bin_dir / "calls"
    row = '{"Type":"Images","TotalCount":"3","Active":"1","Size":"1GB","Reclaimable":"0B"}'
    tool(bin_dir, "docker", f'echo "$*" >> "{calls}"\ncase "$*" in\n'
         "  version*) echo '{\"Client\":{\"Version\":\"1\"},\"Server\":{\"Version\":\"2\"}}';;\n"
         f"  'system df'*) {'echo ' + repr(row) if df_ok else 'echo boom >&2; exit 1'};;\n"
         "  'image ls'*) echo sha256:a; echo sha256:b;;\nesac\n")
    got = sec.run_sections(LocalTransport(), ["docker_version", "docker_df", "docker_images"])
    from opskit.checks.dockerinfo import docker_info

    info = docker_info("h", got["docker_version"], got["docker_df"], got["docker_images"])
    ran = [line.split()[0] + " " + line.split()[1] for line in calls.read_text().splitlines()]
    if df_ok:
        assert ran == ["version --format", "system df"] and info.to_dict()["images"]["count"] == 3
    else:
        assert ran == ["version --format", "system df", "image ls"]
        assert info.to_dict()["images"]["count"] == 2


def test_mounts_section_is_file_mounts_and_mountinfo_in_one_pass():
    """What status and df ask for: one child sh instead of two sections, the same answers."""
    from opskit.checks.disk import mount_tables

    got = sec.run_sections(LocalTransport(), ["mounts", "file_mounts", "mountinfo"])
    files, mounts = mount_tables({"mounts": got["mounts"]})
    old_files, old_mounts = mount_tables({k: got[k] for k in ("file_mounts", "mountinfo")})
    assert got["mounts"].ok and mounts and mounts == old_mounts and files == old_files
    for mount in files:
        assert os.path.exists(mount) and not os.path.isdir(mount)
