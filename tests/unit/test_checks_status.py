"""The one-round-trip section script (real sh, no engine) and Snapshot assembly from
captured outputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opskit.checks import sections as sec
from opskit.checks.sections import Section, build_script, parse_sections, run_sections
from opskit.checks.status import STATUS_SECTIONS, build_snapshot
from opskit.errors import ParseError
from opskit.hosts.local import LocalTransport
from opskit.testing.fake import FakeReply, FakeTransport

DATA = Path(__file__).parent / "data"


def fixture(name: str) -> str:
    lines = (DATA / name).read_text().splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("#"))


def test_script_is_fixed_text():
    script = build_script(STATUS_SECTIONS)
    assert script == build_script(STATUS_SECTIONS)
    assert script.startswith("export LC_ALL=C\n")
    with pytest.raises(KeyError):
        build_script(["df; rm -rf /"])


def test_sections_round_trip_through_real_sh(monkeypatch):
    monkeypatch.setitem(sec.SNIPPETS, "t_noeol", "printf 'a\\nb'")
    monkeypatch.setitem(sec.SNIPPETS, "t_eol", "printf 'a\\n\\n'; echo oops >&2; (exit 3)")
    monkeypatch.setitem(sec.SNIPPETS, "t_empty", "true")
    monkeypatch.setitem(sec.SNIPPETS, "t_missing", sec._need("no-such-tool-xyz", "x"))
    monkeypatch.setitem(sec.SNIPPETS, "t_nofile", "_opskit_show /nonexistent/opskit-x")
    got = run_sections(LocalTransport(), ["t_noeol", "t_eol", "t_empty", "t_missing",
                                          "t_nofile", "self"])
    assert got["t_nofile"].exit_code == 1 and "cannot read" in got["t_nofile"].stderr
    assert got["t_noeol"] == Section("t_noeol", "a\nb", "", 0)
    assert got["t_eol"] == Section("t_eol", "a\n\n", "oops", 3)
    assert got["t_empty"].stdout == "" and got["t_empty"].ok
    assert got["t_missing"].not_found and "no-such-tool-xyz" in got["t_missing"].message()
    assert got["self"].stdout.strip().isdigit()


def test_sections_ignore_banners_but_not_broken_frames():
    out = (f"Welcome to host!\n{sec.MARK}begin a\nx\n\n{sec.MARK}end a 0\n"
           f"{sec.MARK}begin b\n\n{sec.MARK}stderr b\nboom\n{sec.MARK}end b 2\n")
    got = parse_sections("h", out, "motd\n")
    assert got["a"] == Section("a", "x\n", "", 0) and got["b"] == Section("b", "", "boom", 2)
    with pytest.raises(ParseError, match="h9.*no end marker"):
        parse_sections("h9", f"{sec.MARK}begin a\nx\n", "")
    with pytest.raises(ParseError, match="unexpected marker"):
        parse_sections("h9", f"{sec.MARK}begin a\n{sec.MARK}begin b\n", "")
    with pytest.raises(ParseError, match="unexpected marker"):
        parse_sections("h9", f"{sec.MARK}begin a\n{sec.MARK}end a zero\n", "")


def test_a_host_without_sh_is_a_command_failure():
    fake = FakeTransport("nosh", {("sh", "-s"): FakeReply(stderr="sh: not found", exit_code=127)})
    with pytest.raises(Exception, match="nosh.*exited with 127"):
        run_sections(fake, ["uname"])
    assert fake.calls[0][1] == build_script(["uname"]).encode()  # the script goes on stdin


def test_sections_output_is_one_write():
    """Framing and stderr capture happen on the host; the answer arrives in one piece."""
    script = build_script(["uptime", "df"])
    assert script.rstrip().endswith("printf '%s\\n' \"$_opskit_out\"")
    assert ">&2" not in script.split("_opskit_body() {", 1)[1]


def captured_sections(**override: Section) -> dict[str, Section]:
    base = {
        "self": Section("self", "11\n", "", 0),
        "hostname": Section("hostname", "c1\n", "", 0),
        "os_release": Section("os_release", fixture("os-release-debian.txt"), "", 0),
        "uname": Section("uname", "Linux 6.1.0-18-amd64 x86_64\n", "", 0),
        "uptime": Section("uptime", fixture("proc-uptime.txt"), "", 0),
        "loadavg": Section("loadavg", fixture("proc-loadavg.txt"), "", 0),
        "nproc": Section("nproc", "list 0-1\n", "", 0),
        "cpu_model": Section("cpu_model", "", "", 0),
        "meminfo": Section("meminfo", fixture("proc-meminfo.txt"), "", 0),
        "df": Section("df", fixture("df-container.txt"), "", 0),
        "ps": Section("ps", fixture("ps-container.txt"), "", 0),
        "gpu_query": Section("gpu_query", "", "nvidia-smi: command not found", 127),
        "gpu_apps": Section("gpu_apps", "", "nvidia-smi: command not found", 127),
        "gpu_version": Section("gpu_version", "", "nvidia-smi: command not found", 127),
        "docker_version": Section("docker_version", "", "docker: command not found", 127),
        "docker_df": Section("docker_df", "", "docker: command not found", 127),
    }
    base.update(override)
    return base


def test_snapshot_of_a_plain_container():
    snap = build_snapshot("c1", captured_sections())
    d = snap.to_dict()
    assert d["hostname"] == "c1" and d["os"]["id"] == "debian" and d["cpus"] == 2
    assert [x["mount"] for x in d["disks"]] == ["/"]  # /etc/hosts is a file bind-mounted
    assert d["gpu"]["status"] == "absent"
    assert d["gpu"]["message"] == "no NVIDIA GPU (nvidia-smi not found)"
    assert d["docker"]["message"] == "Docker: not installed"
    # the script's own shell (pid 11 here, "self") and its children are not reported
    assert 11 not in [p["pid"] for p in d["top_processes"]]
    assert snap.ok and d["problems"] == [] and d["section_errors"] == {}


def test_snapshot_with_gpus_joins_processes(tmp_path):
    query = fixture("nvidia-smi-h100-load.query-gpu.csv")
    apps = fixture("nvidia-smi-h100-load.compute-apps.csv").replace("11345", "10")
    snap = build_snapshot("g1", captured_sections(
        gpu_query=Section("gpu_query", query, "", 0),
        gpu_apps=Section("gpu_apps", apps, "", 0),
        gpu_version=Section("gpu_version", fixture("nvidia-smi-h100.version.txt"), "", 0),
    ))
    g = snap.to_dict()["gpu"]
    assert g["status"] == "ok" and g["cuda_version"] == "13.1"
    assert g["driver_version"] == "590.48.01"
    (dev,) = g["gpus"]
    for key in ("index", "uuid", "name", "temperature.gpu", "utilization.gpu", "memory.used",
                "memory.total", "power.draw", "enforced.power.limit", "processes"):
        assert key in dev  # gpustat's keys
    burn = next(p for p in dev["processes"] if p["pid"] == 10)
    assert burn["username"] == "opskit" and burn["gpu_memory_usage"] == 15690
    assert burn["command"] == "gpu_burn"


def test_snapshot_broken_driver_is_a_problem():
    snap = build_snapshot("g2", captured_sections(gpu_query=Section(
        "gpu_query", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
        "driver.\n", "", 9)))
    assert not snap.ok and "nvidia-smi failed" in snap.problems[0]


def test_garbage_in_one_section_is_that_sections_error_only():
    cases = {
        "disks": dict(df=Section("df", "Filesystem junk\n", "", 0)),
        "processes": dict(ps=Section("ps", "", "ps: not found", 127)),
        "memory": dict(meminfo=Section("meminfo", "", "", 1)),
        "cpus": dict(nproc=Section("nproc", "many\n", "", 0)),
    }
    want = {"disks": "could not parse df output", "processes": "ps: command not found",
            "memory": "could not read /proc/meminfo: exited with 1",
            "cpus": "could not parse CPU count output"}
    for section, override in cases.items():
        d = build_snapshot("c7", captured_sections(**override)).to_dict()
        assert list(d["section_errors"]) == [section]
        assert d["section_errors"][section]["message"].startswith(want[section])
        assert d["problems"] == [f"{section}: {d['section_errors'][section]['message']}"]
        assert d["hostname"] == "c1" and d["gpu"]["status"] == "absent"
        assert d["docker"]["state"] == "not installed"
        filled = {k for k in ("memory", "disks", "cpus") if d[k] is not None}
        assert filled == {"memory", "disks", "cpus"} - {section}
        assert (d["top_processes"] is None) == (section == "processes")


def test_a_host_whose_every_section_fails_is_still_a_report():
    broken = {name: Section(name, "", "boom", 1) for name in STATUS_SECTIONS}
    snap = build_snapshot("c8", broken)
    d = snap.to_dict()
    assert not snap.ok
    assert set(d["section_errors"]) == {"hostname", "os", "kernel", "uptime", "load", "cpus",
                                        "memory", "disks", "processes", "docker"} or \
        set(d["section_errors"]) >= {"hostname", "memory", "disks", "processes"}
    assert d["gpu"]["status"] == "error" and d["gpu"]["problems"]
    assert len(d["problems"]) == len(d["section_errors"]) + len(d["gpu"]["problems"])


def test_a_hung_nvidia_smi_is_cut_short(monkeypatch, tmp_path):
    """The fake nvidia-smi told to hang: the snapshot's bound ends it and says so."""
    import json

    fake_bin = Path(__file__).resolve().parents[2] / "opskit" / "testing" / "bin"
    (tmp_path / "gpus.json").write_text(json.dumps({"hang": 30, "gpus": [{"name": "X"}]}))
    monkeypatch.setenv("OPSKIT_FAKE_NVIDIA_SMI", str(tmp_path / "gpus.json"))
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    monkeypatch.setitem(sec.SNIPPETS, "gpu_query", sec._need(
        "nvidia-smi", sec._bounded(1, "nvidia-smi --query-gpu=index --format=csv")))
    from opskit.checks.gpu import gpu_report

    got = run_sections(LocalTransport(), ["gpu_query"], timeout=20)
    report = gpu_report("local", got["gpu_query"], None, None)
    assert got["gpu_query"].exit_code == 124 and report.status == "error"
    assert report.message.startswith("nvidia-smi did not answer within")


def test_df_runs_beside_the_other_sections(monkeypatch, tmp_path):
    """A df that waits out its limit (a dead network mount) does not hold up the sections after
    it: it runs in the background beside them, and its block still arrives whole."""
    flag = tmp_path / "later-section-ran"
    wait_for_flag = (f"_n=0; while [ ! -e '{flag}' ] && [ $_n -lt 100 ]; do sleep 0.1; "
                     f"_n=$((_n + 1)); done; [ -e '{flag}' ] && echo 'saw the later section'")
    monkeypatch.setitem(sec.SNIPPETS, "df", sec.Needs("sh", wait_for_flag))
    monkeypatch.setitem(sec.SNIPPETS, "t_later", f"touch '{flag}'; echo later")
    got = run_sections(LocalTransport(), ["self", "df", "t_later"])
    assert got["df"] == Section("df", "saw the later section\n", "", 0)
    assert got["t_later"].stdout == "later\n" and got["self"].ok


def test_df_alone_runs_in_the_foreground():
    script = build_script(["df_all"])
    assert "&\n" not in script.split("_opskit_body() {", 1)[1] and "_opskit_beside" not in script


def test_uname_section_is_what_uname_srm_prints():
    """Read from /proc where the kernel has /proc/sys/kernel/arch: the same line, no process."""
    import subprocess

    got = run_sections(LocalTransport(), ["uname"])["uname"]
    assert got.ok and got.stdout == subprocess.run(["uname", "-srm"], capture_output=True,
                                                   text=True, check=True).stdout
