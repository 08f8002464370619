"""df, ps, /proc, os-release and docker parsers on captured real output (tests/unit/data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opskit.checks import disk, dockerinfo, procs, system
from opskit.errors import ParseError, UsageError

DATA = Path(__file__).parent / "data"


def fixture(name: str) -> str:
    """A captured output without its leading '#' comment lines (which say where it came from)."""
    lines = (DATA / name).read_text().splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("#"))


# -- df -------------------------------------------------------------------------------------
def test_df_host_bytes_and_real_filesystems():
    fss = disk.parse_df(fixture("df-host.txt"), "vm")
    root = next(f for f in fss if f.mount == "/")
    assert (root.filesystem, root.type, root.size) == ("/dev/vda", "ext4", 270553174016)
    assert root.used == 32871333888 and root.free == 76072960000 and root.percent == 31
    real = disk.real_filesystems(fss)
    # tmpfs/devtmpfs hidden, and so are the overlay mounts of running containers
    assert [f.mount for f in real] == ["/"]
    assert any(f.type == "overlay" and f.mount.startswith("/var/lib/docker/") for f in fss)


def test_df_inside_container_keeps_overlay_root():
    fss = disk.parse_df(fixture("df-container.txt"), "c1")
    real = disk.real_filesystems(fss)
    assert real[0].mount == "/" and real[0].type == "overlay"
    assert {f.type for f in real} <= {"overlay", "ext4"}
    assert not any(f.mount in ("/dev", "/dev/shm", "/sys/fs/cgroup") for f in real)


def test_df_all_lists_pseudo_filesystems_with_no_percent():
    fss = disk.parse_df(fixture("df-container-all.txt"), "c1")
    proc = next(f for f in fss if f.mount == "/proc")
    assert proc.type == "proc" and proc.size == 0 and proc.percent is None
    assert not proc.real
    assert len(fss) == 28


def test_df_header_gives_the_block_size():
    k = disk.parse_df(fixture("df-host-k.txt"))
    b = disk.parse_df(fixture("df-host.txt"))
    root_k = next(f for f in k if f.mount == "/")
    root_b = next(f for f in b if f.mount == "/")
    assert root_k.size == root_b.size  # 1024-blocks * 1024 == bytes
    assert root_k.size % 1024 == 0


def test_df_mount_point_with_spaces():
    text = ("Filesystem Type 1-blocks Used Available Capacity Mounted on\n"
            "/dev/sdb1  ext4 1000 400 600 40% /mnt/my disk\n")
    (fs,) = disk.parse_df(text)
    assert fs.mount == "/mnt/my disk" and fs.used == 400


@pytest.mark.parametrize("text, bad_line", [
    ("", ""),
    ("Filesystem 1K-blocks Used Available Use% Mounted on\n", "Filesystem 1K-blocks"),
    ("Filesystem Type 1-blocks Used Available Capacity Mounted on\n/dev/x ext4 12 x 3 4% /\n",
     "/dev/x ext4 12 x 3 4% /"),
])
def test_df_garbage_names_host_and_line(text, bad_line):
    with pytest.raises(ParseError) as err:
        disk.parse_df(text, "gpu7")
    assert "gpu7" in str(err.value) and bad_line in str(err.value)


@pytest.mark.parametrize("text, value", [("90%", 90), ("90", 90), (" 0% ", 0), ("100%", 100)])
def test_threshold(text, value):
    assert disk.parse_threshold(text) == value


@pytest.mark.parametrize("text", ["abc", "101%", "-5%", "9 0", "", "90%%"])
def test_bad_threshold_is_usage_error(text):
    with pytest.raises(UsageError, match="--warn"):
        disk.parse_threshold(text)


def test_over_threshold():
    fss = disk.parse_df(fixture("df-host.txt"))
    assert [f.mount for f in disk.over_threshold(disk.real_filesystems(fss), 30)] == ["/"]
    assert disk.over_threshold(disk.real_filesystems(fss), 31) == []  # "above", not "at"


# -- ps -------------------------------------------------------------------------------------
def test_ps_container():
    ps = procs.parse_ps(fixture("ps-container.txt"), "c1")
    by_pid = {p.pid: p for p in ps}
    assert by_pid[10].user == "opskit" and by_pid[10].command == "sleep 31"
    assert by_pid[7].rss == 1784 * 1024 and by_pid[1].cpu_percent == 4.3
    assert by_pid[1].command.startswith("sh -c sleep 30 &")  # args keep their spaces


def test_ps_host_kernel_threads_and_zombies():
    ps = procs.parse_ps(fixture("ps-host.txt"))
    kthreadd = next(p for p in ps if p.pid == 2)
    assert kthreadd.command == "[kthreadd]" and kthreadd.name == "[kthreadd]"
    zombie = next(p for p in ps if p.command.endswith("<defunct>"))
    assert zombie.rss == 0
    dockerd = next(p for p in ps if p.name == "dockerd")
    assert dockerd.elapsed == 1057 and dockerd.mem_percent == 0.4


def test_ps_garbage_names_host_and_line():
    with pytest.raises(ParseError, match="h1.*header"):
        procs.parse_ps("PID TTY TIME CMD\n1 ? 00:00:01 init\n", "h1")
    bad = "  PID  PPID USER %CPU %MEM RSS ELAPSED COMMAND\n  12 1 root x.y 0.0 4 5 sleep\n"
    with pytest.raises(ParseError) as err:
        procs.parse_ps(bad, "h1")
    assert "h1" in str(err.value) and "x.y" in str(err.value)


def test_without_descendants_drops_our_own_commands():
    ps = procs.parse_ps(fixture("ps-container.txt"))
    assert [p.pid for p in procs.without_descendants(ps, 1)] == []
    assert len(procs.without_descendants(ps, None)) == len(ps)
    assert [p.pid for p in procs.without_descendants(ps, 7)] == [1, 10, 11]


def test_filter_sort_limit():
    ps = procs.parse_ps(fixture("ps-host.txt"))
    top = procs.ProcessFilter(sort="cpu", limit=3).apply(ps)
    assert len(top) == 3 and top[0].cpu_percent >= top[1].cpu_percent >= top[2].cpu_percent
    mem = procs.ProcessFilter(sort="mem").apply(ps)
    assert mem[0].mem_percent == max(p.mem_percent for p in ps)
    named = procs.ProcessFilter(name=r"^sshd: ").apply(ps)
    assert named and all(p.command.startswith("sshd: ") for p in named)
    assert procs.ProcessFilter(user="nobody").apply(ps) == []
    assert len(procs.ProcessFilter(user="root").apply(ps)) == len(ps)
    assert procs.ProcessFilter(user="1000").apply(ps) == []  # a bare uid is a valid filter


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "("}, "--name"),
    ({"user": "a\x1bb"}, "user name"),
    ({"user": ""}, "user name"),
    ({"limit": 0}, "--limit"),
    ({"sort": "rss"}, "sort"),
])
def test_bad_filters_are_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        procs.ProcessFilter(**kwargs)


@pytest.mark.parametrize("seconds, text", [
    (0, "00:00"), (59, "00:59"), (61, "01:01"), (3600, "01:00:00"), (90061, "1-01:01:01"),
])
def test_format_elapsed_like_ps_etime(seconds, text):
    assert procs.format_elapsed(seconds) == text


# -- /proc and os-release --------------------------------------------------------------------
def test_meminfo():
    mem = system.parse_meminfo(fixture("proc-meminfo.txt"))
    assert mem.total == 24684100 * 1024 and mem.available == 22728688 * 1024
    assert mem.used == mem.total - mem.available
    assert mem.percent == round(100 * (24684100 - 22728688) / 24684100, 1)
    assert mem.to_dict()["swap_used"] == 0


def test_meminfo_without_memavailable_falls_back():
    text = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n"
    assert system.parse_meminfo(text).available == 400 * 1024


def test_meminfo_garbage():
    with pytest.raises(ParseError, match="h2"):
        system.parse_meminfo("MemTotal 12\n", "h2")
    with pytest.raises(ParseError, match="MemTotal"):
        system.parse_meminfo("MemFree: 1 kB\n", "h2")


def test_os_release():
    rel = system.parse_os_release(fixture("os-release-debian.txt"))
    info = system.OsInfo.from_release(rel)
    assert (info.id, info.version_id) == ("debian", "12")
    assert info.pretty_name == "Debian GNU/Linux 12 (bookworm)"


def test_os_release_garbage():
    with pytest.raises(ParseError, match="os-release"):
        system.parse_os_release('ID=debian\nthis is not a key\n', "h3")


def test_loadavg_uptime_uname():
    load = system.parse_loadavg(fixture("proc-loadavg.txt"))
    assert load == system.Load(11.62, 8.96, 4.62, 11, 395)
    assert system.parse_uptime(fixture("proc-uptime.txt")) == 1245.33
    k = system.parse_uname("Linux 6.1.0-18-amd64 x86_64\n")
    assert (k.name, k.release, k.machine) == ("Linux", "6.1.0-18-amd64", "x86_64")
    for bad, fn in [("1 2", system.parse_loadavg), ("x", system.parse_uptime),
                    ("Linux", system.parse_uname)]:
        with pytest.raises(ParseError, match="h4"):
            fn(bad, "h4")


@pytest.mark.parametrize("text, cpus", [
    ("list 0-1", 2), ("list 0", 1), ("list 0-3,8-11", 8), ("list 2,4,6", 3), ("count 16", 16),
])
def test_cpus(text, cpus):
    assert system.parse_cpus(text + "\n") == cpus


@pytest.mark.parametrize("text", ["4", "list a-b", "count", ""])
def test_cpus_garbage(text):
    with pytest.raises(ParseError, match="h5"):
        system.parse_cpus(text, "h5")


def test_cpu_model():
    assert system.parse_cpu_model("model name\t: AMD EPYC 7B13\n") == "AMD EPYC 7B13"
    assert system.parse_cpu_model("") is None


# -- docker ---------------------------------------------------------------------------------
def _section(name, stdout="", stderr="", code=0):
    from opskit.checks.sections import Section

    return Section(name, stdout, stderr, code)


def test_docker_running():
    info = dockerinfo.docker_info(
        "h", _section("docker_version", fixture("docker-version.jsonl")),
        _section("docker_df", fixture("docker-system-df.jsonl")))
    d = info.to_dict()
    assert d["state"] == "running" and d["server_version"] == "20.10.24+dfsg1"
    assert d["images"]["count"] == 21 and d["images"]["size"] == "8.968GB"
    assert d["images"]["size_bytes"] == 8_968_000_000
    assert d["build_cache"]["size_bytes"] == 0
    assert "21 images" in info.message


def test_docker_not_running_and_permission_denied():
    no_engine = dockerinfo.docker_info("h", _section(
        "docker_version", fixture("docker-version-no-engine.jsonl"),
        fixture("docker-version-no-engine.stderr"), 1), None)
    assert no_engine.state == "not running"
    assert no_engine.message == "Docker: engine not running"
    assert no_engine.client_version == "28.2.2"
    denied = dockerinfo.docker_info("h", _section(
        "docker_version", "", fixture("docker-version-permission.stderr"), 1), None)
    assert denied.state == "permission denied" and "permission denied" in denied.message
    absent = dockerinfo.docker_info("h", _section("docker_version", "", "docker: not found",
                                                  127), None)
    assert absent.to_dict()["state"] == "not installed"
    assert absent.message == "Docker: not installed"


@pytest.mark.parametrize("text, value", [
    ("0B", 0), ("6.02MB", 6_020_000), ("170.3MB (99%)", 170_300_000), ("1.5GiB", 1610612736),
    ("what", None),
])
def test_docker_sizes(text, value):
    assert dockerinfo.parse_size(text) == value


def test_docker_garbage():
    with pytest.raises(ParseError, match="docker system df"):
        dockerinfo.parse_system_df('{"Type": "Images"}\n', "h")
    with pytest.raises(ParseError, match="docker version"):
        dockerinfo.parse_version("{not json\n", "h")


def test_docker_engine_that_does_not_answer():
    info = dockerinfo.docker_info("h", _section("docker_version", "", "", 124), None)
    assert info.state == "error" and info.message == "Docker: the engine did not answer within 10s"


def test_docker_df_timed_out_still_reports_the_engine():
    info = dockerinfo.docker_info(
        "h", _section("docker_version", fixture("docker-version.jsonl")),
        _section("docker_df", "", "", 124),
        _section("docker_images", "sha256:aa\nsha256:bb\nsha256:aa\n"))
    images = info.to_dict()["images"]
    assert info.state == "running" and images["count"] == 2 and images["size_bytes"] is None
    assert info.message.endswith(", 2 images, disk use unknown (docker system df took over 10s)")
