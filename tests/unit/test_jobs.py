"""Unit tests of run specs, preflight rules, job states and manifests (no engine, no host)."""

from __future__ import annotations

import pytest

from opskit.checks.gpu import Gpu
from opskit.errors import (
    DockerUnavailable,
    HostError,
    UsageError,
)
from opskit.jobs import launch
from opskit.jobs.collect import odd_name
from opskit.jobs.preflight import HostFacts, evaluate
from opskit.jobs.spec import (
    GpuRequest,
    check_run_id,
    new_run_id,
    parse_gpus,
    parse_size,
    validate_train_args,
)

GIB = 1 << 30


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all", GpuRequest("all")),
        ("auto", GpuRequest("auto")),
        ("none", GpuRequest("none")),
        ("0", GpuRequest("none")),
        ("2", GpuRequest("count", count=2)),
        ("0,1", GpuRequest("devices", devices=("0", "1"))),
        ("device=3", GpuRequest("devices", devices=("3",))),
    ],
)
def test_parse_gpus(text, expected):
    assert parse_gpus(text) == expected


@pytest.mark.parametrize("text", ["many", "-1", "0,x", "1.5"])
def test_parse_gpus_refuses(text):
    with pytest.raises(UsageError, match="--gpus"):
        parse_gpus(text)


def test_parse_size():
    assert parse_size("512m", "x") == 512 << 20
    assert parse_size("2G", "x") == 2 * GIB
    assert parse_size("1048576", "x") == 1 << 20
    with pytest.raises(UsageError, match="--shm-size"):
        parse_size("lots", "--shm-size")


def test_run_ids():
    rid = new_run_id("ResNet18", now=0)
    assert rid.startswith("resnet18-19700101-000000-") and check_run_id(rid) == rid
    for bad in ["", "-x", "A", "a/b", "a b", "x" * 64]:
        with pytest.raises(UsageError, match="invalid run ID"):
            check_run_id(bad)


def test_training_options_are_checked_locally_before_anything_travels():
    parsed = validate_train_args("lenet", ["--small", "--steps", "20", "--seed", "7"])
    assert parsed["steps"] == 20 and parsed["seed"] == 7 and parsed["out"] == "/out"
    with pytest.raises(UsageError, match="--steps"):
        validate_train_args("lenet", ["--steps", "zero"])
    with pytest.raises(UsageError, match="unknown model 'lenett'"):
        validate_train_args("lenett", [])
    with pytest.raises(UsageError, match="--out is set by opskit"):
        validate_train_args("lenet", ["--out", "/tmp/x"])


def h100(index: int) -> Gpu:
    return Gpu({"index": index, "name": "NVIDIA H100", "driver_version": "550.54", "memory.total": 81559})


def facts(**kw) -> HostFacts:
    base = dict(host="gpu1", docker_version="20.10.24", root_free=50 * GIB, home="/home/u",
                home_free=50 * GIB, mem_total=32 * GIB, runtimes=["nvidia", "runc"],
                gpus=[h100(0), h100(1)],
                cuda="12.4")
    base.update(kw)
    return HostFacts(**base)


def failed(checks):
    return {c.name: c.detail for c in checks if not c.ok}


def test_preflight_passes_on_a_healthy_gpu_host():
    checks = evaluate(facts(), GpuRequest("all"), GIB, 2 * GIB, GIB)
    assert failed(checks) == {}
    gpu = next(c for c in checks if c.name == "gpus")
    assert "2 GPU(s) visible (NVIDIA H100)" in gpu.detail and "CUDA 12.4" in gpu.detail


def test_preflight_refuses_a_full_disk_with_numbers():
    checks = evaluate(facts(root_free=3 * GIB), GpuRequest("none"), GIB, 3 * GIB, GIB)
    assert failed(checks) == {
        "disk": "3.0G free at /var/lib/docker; need 4.0G (3.0G of image layers to load + 1.0G margin)"
    }


@pytest.mark.parametrize(
    ("kw", "req", "needle"),
    [
        ({"gpus": []}, GpuRequest("all"), "nvidia-smi shows none"),
        ({}, GpuRequest("count", count=4), "4 GPU(s) asked for; 2 GPU(s) visible"),
        ({}, GpuRequest("devices", devices=("0", "5")), "GPU(s) 5 asked for are not there"),
        ({"runtimes": ["runc"], "nvidia_hook": None}, GpuRequest("all"), "NVIDIA container runtime is missing"),
    ],
)
def test_preflight_gpu_refusals(kw, req, needle):
    assert needle in failed(evaluate(facts(**kw), req, GIB, 0, GIB))["gpus"]


def test_preflight_cpu_host_and_shm():
    ok = evaluate(facts(gpus=[], runtimes=["runc"]), GpuRequest("auto"), GIB, 0, GIB)
    assert failed(ok) == {}
    big = evaluate(facts(mem_total=4 * GIB), GpuRequest("none"), 3 * GIB, 0, GIB)
    assert failed(big) == {"shm": "shm 3.0G asked; host memory 4.0G (limit: half of it)"}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"Running": True, "ExitCode": 0}, "running"),
        ({"Running": False, "ExitCode": 0}, "exited"),
        ({"Running": False, "ExitCode": 1}, "failed"),
        ({"Running": False, "ExitCode": 143}, "interrupted"),
        ({"Running": False, "ExitCode": 137, "OOMKilled": True}, "oom-killed"),
        ({"Running": False, "ExitCode": 0, "Status": "created"}, "created"),
    ],
)
def test_job_states(state, expected):
    assert launch.describe_state(state) == expected


def test_device_requests():
    f = facts()
    [all_req] = launch.device_requests(GpuRequest("auto"), f)
    assert all_req["Count"] == -1 and all_req["Capabilities"] == [["gpu"]] and all_req["Driver"] == "nvidia"
    [ids] = launch.device_requests(GpuRequest("devices", devices=("1",)), f)
    assert ids["DeviceIDs"] == ["1"]
    assert launch.device_requests(GpuRequest("auto"), facts(gpus=[])) == []
    assert launch.device_requests(GpuRequest("none"), f) == []


def test_odd_remote_names_are_named_not_followed():
    assert odd_name("checkpoints/last.pt") is None and odd_name("x;cd;touch PWNED;#") is None
    assert "control" in odd_name("a\nb") and "control" in odd_name("\x1b]0;title\x07")
    assert "UTF-8" in odd_name("caf\ufffd") and "path" in odd_name("../../etc/passwd")
    assert "path" in odd_name("/etc/passwd")


class _Container:
    """What follow() reads of a docker-py Container: its log stream and its status."""

    name = "opskit-run-r1"

    def __init__(self, chunks, status):
        self.chunks, self.status = chunks, status

    def logs(self, **kw):
        for chunk in self.chunks:
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk


def _following(chunks, status="exited"):
    from types import SimpleNamespace

    from opskit.testing.fake import FakeTransport

    container = _Container(chunks, status)
    client = SimpleNamespace(containers=SimpleNamespace(get=lambda name: container))
    lines = []
    return FakeTransport("gpu1", docker_client=client), lines, lambda e: lines.append((e.host, e.line))


def test_follow_delivers_every_line_of_a_finished_run():
    from opskit.jobs.runner import follow

    transport, lines, on_line = _following([b"step 1\nst", b"ep 2\n", b"done"])
    follow(transport, "r1", on_line)
    assert lines == [("gpu1", "step 1"), ("gpu1", "step 2"), ("gpu1", "done")]


@pytest.mark.parametrize(
    ("chunks", "status", "needle"),
    [
        ([b"step 1\n", DockerUnavailable("gpu1: the SSH connection to the engine was closed")], "running",
         "lost the connection while following (gpu1: the SSH connection"),
        ([b"step 1\n", HostError("gpu1", "connection lost")], "running", "lost the connection while following"),
        ([b"step 1\n", ConnectionResetError()], "running", "(ConnectionResetError)"),
        ([b"step 1\n"], "running", "the log stream ended"),
    ],
)
def test_follow_detaches_when_the_connection_goes_and_the_job_goes_on(chunks, status, needle):
    from opskit.jobs.runner import Detached, follow

    transport, lines, on_line = _following(chunks, status)
    with pytest.raises(Detached) as err:
        follow(transport, "r1", on_line)
    assert needle in err.value.message and err.value.exit_code == 1
    assert "opskit logs r1 -f" in err.value.hint and lines == [("gpu1", "step 1")]


def test_follow_passes_other_errors_on():
    from opskit.jobs.runner import follow

    transport, _, on_line = _following([b"x\n", UsageError("no container for run 'r1'")])
    with pytest.raises(UsageError, match="no container"):
        follow(transport, "r1", on_line)


def test_runs_list_shows_a_broken_card_instead_of_hiding_it(tmp_path, opskit_cli):
    import json

    from opskit.jobs.store import RunStore

    store = RunStore(tmp_path / "runs")
    store.save("good-1", {"run_id": "good-1", "host": "gpu1", "model": "lenet", "state": "exited"})
    store.card_path("bad-1").parent.mkdir(parents=True)
    store.card_path("bad-1").write_text('{"run_id": "bad-1", "sta')  # cut short
    code, out, _ = opskit_cli("runs", "list", "--json", "--runs-dir", str(tmp_path / "runs"))
    cards = {c["run_id"]: c for c in json.loads(out)}
    assert code == 0 and cards["good-1"]["state"] == "exited"
    assert cards["bad-1"]["state"] == "broken" and "bad-1/job.json: not valid JSON" in cards["bad-1"]["error"]
    code, out, _ = opskit_cli("runs", "list", "--runs-dir", str(tmp_path / "runs"))
    assert "bad-1" in out and "broken" in out
