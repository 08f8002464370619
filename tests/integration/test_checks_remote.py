"""opskit df / ps / status against real sshd containers (the SSH test bed), compared with
what df, ps, hostname and uname print INSIDE the same container; a fake nvidia-smi put in a
container; and a dead host beside good ones (every host still reported, exit 1)."""

from __future__ import annotations

import io
import json
import socket
import tarfile
from pathlib import Path

import pytest
import yaml
from _helpers import assert_df_bytes, parse_df_b1, point_opskit_at

from opskit.testing.cli import run_cli as opskit

FAKE = Path(__file__).resolve().parents[2] / "opskit" / "testing" / "bin" / "nvidia-smi"


@pytest.fixture
def bed(ssh_testbed, monkeypatch, tmp_path):
    return point_opskit_at(ssh_testbed, monkeypatch, tmp_path)


def df_inside(host) -> dict[str, tuple[int, int, int]]:
    code, out = host.exec(["env", "LC_ALL=C", "df", "-B1", "-P", "-a"])
    assert code == 0, out
    return parse_df_b1(out)


def test_df_over_ssh_equals_df_b1_inside(capsys, bed):
    names = bed.names
    for n in names:  # a filesystem nobody else writes to: its numbers must match exactly
        assert bed.host(n).exec(["sh", "-c", "head -c 1048576 /dev/zero > /dev/shm/opskit-df"])[0] == 0
    before = {n: df_inside(bed.host(n)) for n in names}
    code, out, err = opskit(capsys, "df", "--all", "--json", "--host", "@" + bed.group)
    after = {n: df_inside(bed.host(n)) for n in names}
    assert code == 0, err
    hosts = json.loads(out)["hosts"]
    assert set(hosts) == set(names)
    for n in names:
        ours = {f["mount"]: (f["size"], f["used"], f["free"]) for f in hosts[n]["filesystems"]}
        assert set(ours) == set(before[n])
        assert ours["/dev/shm"] == before[n]["/dev/shm"] and ours["/dev/shm"][1] >= 1048576
        assert assert_df_bytes(ours, before[n], after[n]) >= 1
    code, out, err = opskit(capsys, "df", "--json", "--host", "@" + bed.group)
    for n in names:
        fss = json.loads(out)["hosts"][n]["filesystems"]
        root = next(f for f in fss if f["mount"] == "/")
        assert root["type"] == "overlay"  # a container's root shows
        assert root["size"] == before[n]["/"][0]
        assert not any(f["type"] in ("tmpfs", "proc", "sysfs", "cgroup") for f in fss)
        bed.host(n).exec(["rm", "-f", "/dev/shm/opskit-df"])


def test_ps_over_ssh_matches_ps_inside(capsys, bed):
    host = bed.hosts[0]
    host.container.exec_run(["sleep", "4242"], user="opskit", detach=True)
    code, out = host.exec(["sh", "-c", "ps -o pid=,user=,args= -C sleep | grep ' 4242$'"])
    assert code == 0, out
    pid, user, args = out.split(None, 2)
    code, out, err = opskit(capsys, "ps", "--host", host.name, "--user", "opskit",
                            "--name", "^sleep 4242$", "--json")
    assert code == 0, err
    (p,) = json.loads(out)["hosts"][host.name]["processes"]
    assert (p["pid"], p["user"], p["command"]) == (int(pid), user, args.strip())
    code, out, err = opskit(capsys, "ps", "--host", host.name, "--limit", "2")
    assert code == 0 and host.name in out and "no NVIDIA GPU (nvidia-smi not found)" in out


def test_status_over_ssh_matches_the_container(capsys, bed):
    code, out, err = opskit(capsys, "status", "--json", "--host", "@" + bed.group)
    assert code == 0, err
    data = json.loads(out)
    assert data["errors"] == {} and set(data["hosts"]) == set(bed.names)
    for name in bed.names:
        host, s = bed.host(name), data["hosts"][name]
        assert s["hostname"] == host.exec(["hostname"])[1].strip()
        assert s["kernel"]["release"] == host.exec(["uname", "-r"])[1].strip()
        assert s["cpus"] == int(host.exec(["nproc"])[1])
        assert s["os"]["id"] == "debian" and s["os"]["version_id"] == "12"
        assert s["gpu"]["status"] == "absent"
        assert s["gpu"]["message"] == "no NVIDIA GPU (nvidia-smi not found)"
        assert s["docker"]["state"] == "not installed"
        assert any(d["mount"] == "/" for d in s["disks"])
        assert s["top_processes"] and all(p["pid"] > 0 for p in s["top_processes"])
    code, out, _ = opskit(capsys, "status", "--host", bed.names[0])
    assert code == 0 and "Docker: not installed" in out and "no NVIDIA GPU" in out


def _put(container, path: str, data: bytes, mode: int) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(path.rsplit("/", 1)[1])
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))
    container.exec_run(["mkdir", "-p", path.rsplit("/", 1)[0]])
    assert container.put_archive(path.rsplit("/", 1)[0], buf.getvalue())


def test_fake_gpu_in_a_container_over_ssh(capsys, bed):
    host = bed.hosts[-1]
    host.container.exec_run(["sleep", "4343"], user="opskit", detach=True)
    code, out = host.exec(["sh", "-c", "ps -o pid= -o args= -C sleep | grep ' 4343$'"])
    pid = int(out.split()[0])
    data = {"driver_version": "550.54.15", "cuda_version": "12.4",
            "gpus": [{"name": "NVIDIA A100-SXM4-40GB", "temperature.gpu": 41,
                      "utilization.gpu": 87, "utilization.memory": 40, "memory.used": 30000,
                      "memory.total": 40960, "power.draw": 250.5,
                      "enforced.power.limit": 400.0, "fan.speed": None}],
            "processes": [{"gpu": 0, "pid": pid, "process_name": "python",
                           "used_gpu_memory": 29000}]}
    _put(host.container, "/usr/local/bin/nvidia-smi", FAKE.read_bytes(), 0o755)
    _put(host.container, "/etc/opskit/fake-nvidia-smi.json", json.dumps(data).encode(), 0o644)
    try:
        code, out, err = opskit(capsys, "status", "--json", "--host", host.name)
        assert code == 0, err
        g = json.loads(out)["hosts"][host.name]["gpu"]
        assert (g["status"], g["driver_version"], g["cuda_version"]) == ("ok", "550.54.15",
                                                                          "12.4")
        (dev,) = g["gpus"]
        assert dev["name"] == "NVIDIA A100-SXM4-40GB" and dev["memory.used"] == 30000
        assert dev["utilization.gpu"] == 87 and dev["temperature.gpu"] == 41
        (proc,) = dev["processes"]
        assert (proc["pid"], proc["username"], proc["gpu_memory_usage"]) == (pid, "opskit",
                                                                             29000)
        code, out, err = opskit(capsys, "ps", "--host", host.name, "--name", "^sleep 4343$",
                                "--json")
        (p,) = json.loads(out)["hosts"][host.name]["processes"]
        assert (p["pid"], p["gpu_memory"], p["gpu_index"]) == (pid, 29000, 0)
    finally:
        host.container.exec_run(["rm", "-rf", "/usr/local/bin/nvidia-smi", "/etc/opskit"])
        host.container.exec_run(["pkill", "-f", "^sleep 4343$"])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_dead_host_fails_alone(capsys, bed, monkeypatch, tmp_path):
    inv = yaml.safe_load(Path(bed.inventory_path).read_text())
    inv["hosts"]["deadhost"] = {"hostname": "127.0.0.1", "port": _closed_port(),
                                "user": "opskit", "connect_timeout": 3}
    inv["groups"]["mixed"] = [*bed.names, "deadhost"]
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(inv))
    monkeypatch.setenv("OPSKIT_INVENTORY", str(path))
    code, out, err = opskit(capsys, "df", "--json", "--host", "@mixed")
    data = json.loads(out)
    assert code == 1
    assert set(data["hosts"]) == set(bed.names) and set(data["errors"]) == {"deadhost"}
    assert data["errors"]["deadhost"]["message"].startswith("deadhost")
    code, out, err = opskit(capsys, "status", "--host", "@mixed")
    assert code == 1 and "error: deadhost:" in err
    assert all(name in out for name in bed.names)


def test_garbage_from_a_host_names_host_and_line(capsys, bed):
    good, bad = bed.hosts[0], bed.hosts[-1]
    _put(bad.container, "/usr/local/bin/df",
         b"#!/bin/sh\necho 'Filesystem Type 1-blocks Used Available Capacity Mounted on'\n"
         b"echo 'rootfs ext4 many some few 12% /'\n", 0o755)
    try:
        code, out, err = opskit(capsys, "df", "--json", "--host", "@" + bed.group)
        data = json.loads(out)
        assert code == 1 and good.name in data["hosts"] and bad.name not in data["hosts"]
        problem = data["errors"][bad.name]
        assert problem["error"] == "ParseError"
        assert problem["message"].startswith(f"{bad.name}: could not parse df output")
        assert "rootfs ext4 many some few 12% /" in problem["message"]
        code, out, err = opskit(capsys, "status", "--json", "--host", bad.name)
        report = json.loads(out)["hosts"][bad.name]  # still a report: only its disks failed
        assert code == 1 and list(report["section_errors"]) == ["disks"]
        message = report["section_errors"]["disks"]["message"]
        assert message.startswith("could not parse df output")
        assert "rootfs ext4 many some few 12% /" in message and report["memory"]
    finally:
        bad.container.exec_run(["rm", "-f", "/usr/local/bin/df"])


def test_a_hung_df_on_a_host_is_stopped_there_and_costs_only_the_disks(capsys, bed, monkeypatch):
    """hosts/19 over SSH: a df that never answers (first in the login PATH) is killed on the
    host by its section's limit (1 s here), every other section is reported, exit 1."""
    from opskit.checks import sections as sec

    host = bed.hosts[0]
    stand_in = "#!/bin/sh\nexec sleep 300\n"
    code, out = host.exec(["sh", "-c", f"printf '{stand_in}' > /usr/local/bin/df && "
                           "chmod 755 /usr/local/bin/df"])
    assert code == 0, out
    monkeypatch.setitem(sec.SNIPPETS, "df", sec._need("df", sec._bounded(1, "df -B1 -P -T")))
    try:
        code, out, err = opskit(capsys, "status", "--json", "--host", host.name)
        left = host.exec(["sh", "-c", "pgrep -fx 'sleep 300' || true"])[1].strip()
    finally:
        host.exec(["rm", "-f", "/usr/local/bin/df"])
    d = json.loads(out)["hosts"][host.name]
    assert code == 1 and list(d["section_errors"]) == ["disks"] and d["disks"] is None
    assert d["section_errors"]["disks"]["message"].startswith("df did not answer within")
    assert d["hostname"] and d["memory"] and d["top_processes"] and d["load"]
    assert left == ""  # no df left running on the host


def test_mounts_section_in_a_container_names_its_bind_mounted_files(ssh_testbed):
    """In a container /etc/hosts & co. are files bind-mounted from the engine's folder: the
    one-pass mounts section finds them as the file_mounts + mountinfo pair does."""
    from opskit.checks.disk import mount_tables
    from opskit.checks.sections import run_sections
    from opskit.hosts.group import connect

    [spec] = ssh_testbed.specs(ssh_testbed.names[:1])
    with connect(spec) as t:
        got = run_sections(t, ["mounts", "file_mounts", "mountinfo"])
    files, mounts = mount_tables({"mounts": got["mounts"]})
    assert (files, mounts) == mount_tables({k: got[k] for k in ("file_mounts", "mountinfo")})
    assert {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"} <= files and "/" in mounts
