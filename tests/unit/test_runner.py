"""The runner's phases on a fake GPU host (FakeTransport) and fake engines: no Docker, no SSH.

The real path is tests/integration/test_run_remote.py (DinD GPU hosts over SSH) and
tests/integration/test_run_remote_json.py (this machine's engine); these pin the control
flow: phase order, one connection per host, what is refused before anything travels, what
the run card says after each outcome, and how few times the container is looked up.
"""

from __future__ import annotations

import json

import pytest

from opskit import events as ev
from opskit.errors import JobError, UsageError
from opskit.hosts.spec import HostSpec
from opskit.jobs.runner import PHASES, Detached, Runner, RunOptions
from opskit.jobs.spec import JobSpec
from opskit.jobs.store import RunStore
from opskit.testing.fakehost import FakeEngine, fake_gpu_host, image_attrs
from opskit.testing.hostlike import fake_docker_cli

TAG = "opskit-train:offline"
IMAGE = image_attrs("sha256:" + "a" * 64, ["sha256:" + "1" * 64, "sha256:" + "2" * 64], [TAG])
OUTPUTS = {"summary.json": b'{"status": "completed"}\n', "metrics.jsonl": b'{"step": 2}\n'}
LOGS = [b"lenet: 2 steps on cpu, out=/out\nstep 1/2 loss=2.3\n", b"step 2/2 loss=2.1\n"]


@pytest.fixture(autouse=True)
def docker_logs_cli(tmp_path, monkeypatch) -> None:
    """The host's ``docker logs`` (collect saves the output there) prints the run's lines."""
    monkeypatch.setenv("PATH", fake_docker_cli(tmp_path / "fakebin", b"".join(LOGS).decode()))


class Setup:
    def __init__(self, tmp_path, *, gpus: int = 2, exit_code: int = 0, refuse_start: str | None = None,
                 detach: bool = False, remove_remote: bool = True):
        self.local = FakeEngine({TAG: IMAGE})
        self.remote = FakeEngine(logs=LOGS, outputs=OUTPUTS, exit_code=exit_code,
                                 refuse_start=refuse_start)
        self.home = tmp_path / "home" / "opskit"
        self.host = fake_gpu_host("gpu1", self.remote, home=self.home, image=IMAGE, gpus=gpus)
        self.store = RunStore(tmp_path / "runs")
        self.events: list[ev.Event] = []
        self.connections = 0
        self.runner = Runner(self.store, RunOptions(detach=detach, emit=self.events.append,
                                                    remove_remote=remove_remote),
                             connect=self.connect, engine=lambda: self.local)

    def connect(self, spec: HostSpec):
        self.connections += 1
        assert spec.name == "gpu1"
        return self.host

    def job(self, *args: str, gpus: str = "all") -> JobSpec:
        from opskit.jobs.spec import parse_gpus

        return JobSpec("r1", "lenet", list(args or ("--small", "--steps", "2")), TAG, parse_gpus(gpus))

    def run(self, job: JobSpec | None = None):
        return self.runner.run(HostSpec("gpu1", hostname="10.0.0.5"), job or self.job())

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def test_the_whole_job_over_one_connection(tmp_path) -> None:
    s = Setup(tmp_path)
    outcome = s.run()
    assert (outcome.state, outcome.exit_code, outcome.host) == ("exited", 0, "gpu1")
    assert outcome.collected == ["metrics.jsonl", "summary.json"]
    local = tmp_path / "runs" / "r1"
    assert outcome.local_dir == str(local / "results")
    assert (local / "results" / "summary.json").read_bytes() == OUTPUTS["summary.json"]
    assert (local / "logs.txt").read_bytes() == b"".join(LOGS)  # a record, beside the results
    assert s.connections == 1 and s.host.closed
    # events in phase order: preflight checks, started, the run's lines
    kinds = s.kinds()
    assert kinds[:5] == ["check"] * 5 and kinds[5] == "run_started"
    lines = [e.line for e in s.events if isinstance(e, ev.LogLine)]
    assert lines == ["lenet: 2 steps on cpu, out=/out", "step 1/2 loss=2.3", "step 2/2 loss=2.1"]
    card = json.loads((local / "job.json").read_text())
    assert card["state"] == "exited" and card["exit_code"] == 0 and card["host_home"] == str(s.home)
    assert [g["index"] for g in card["host_facts"]["gpus"]] == ["0", "1"]
    assert card["host_snapshot"]["gpu"]["cuda_version"] == card["host_facts"]["cuda"] == "12.4"
    assert card["image"]["id"] == IMAGE["Id"] and card["collected"]["verified"] is True
    assert [c["name"] for c in card["preflight"]] == ["docker", "disk", "home", "gpus", "shm"]
    # one round trip for the facts; the container inspected: is the run ID free, is it still
    # running after the log stream, its state at the end, and collect's own look (was 6)
    assert s.host.calls.count(("sh", "-s")) == 1
    assert s.remote.requests["inspect"] == 4, s.remote.requests
    assert not (s.home / ".opskit" / "runs" / "r1" / "summary.json").exists()  # --remove-remote
    assert s.remote.containers.by_name == {}  # the finished container went with the host's copies


def test_phases_are_named_in_order() -> None:
    assert PHASES == ("check", "image", "preflight", "ship", "start", "follow", "collect")


def test_detach_starts_and_returns(tmp_path) -> None:
    s = Setup(tmp_path, detach=True)
    assert s.run() is None
    card = json.loads((tmp_path / "runs" / "r1" / "job.json").read_text())
    assert card["state"] == "running" and "log" not in s.kinds() and s.host.closed
    assert s.remote.containers.by_name["opskit-run-r1"].status == "running"


def test_bad_options_are_refused_before_any_engine_or_connection(tmp_path) -> None:
    s = Setup(tmp_path)

    def no_engine():
        raise AssertionError("the engine was asked before the options were checked")

    s.runner = Runner(s.store, RunOptions(), connect=s.connect, engine=no_engine)
    with pytest.raises(UsageError, match="--bogus"):
        s.run(s.job("--bogus"))
    assert s.connections == 0


def test_a_run_id_recorded_here_is_refused_before_connecting(tmp_path) -> None:
    s = Setup(tmp_path)
    s.store.save("r1", {"run_id": "r1", "host": "gpu2"})
    with pytest.raises(UsageError, match="gpu2: run 'r1' already exists") as exc:
        s.run()
    assert s.connections == 0 and exc.value.exit_code == 2  # a usage refusal, as other taken names


def test_preflight_refusal_starts_nothing_and_records_nothing(tmp_path) -> None:
    s = Setup(tmp_path, gpus=2)
    with pytest.raises(JobError, match=r"preflight refused the run:\n  gpus: 4 GPU\(s\) asked for; 2 GPU\(s\) visible"):
        s.run(s.job(gpus="4"))
    assert s.remote.containers.by_name == {} and not s.store.exists("r1") and s.host.closed


def test_a_run_id_already_on_the_host_is_refused(tmp_path) -> None:
    s = Setup(tmp_path)
    s.remote.containers.run(IMAGE["Id"], name="opskit-run-r1")
    with pytest.raises(UsageError, match="gpu1: run 'r1' already exists there \\(running\\)") as exc:
        s.run()
    assert not s.store.exists("r1") and exc.value.exit_code == 2


def test_an_engine_refusing_the_start_is_recorded_as_not_started(tmp_path) -> None:
    s = Setup(tmp_path, refuse_start='could not select device driver "nvidia"')
    with pytest.raises(JobError, match='gpu1: the engine would not start run r1: could not select'):
        s.run()
    card = s.store.load("r1")
    assert card["state"] == "not-started" and "could not select" in card["error"]


def test_a_failed_run_is_collected_and_reported(tmp_path) -> None:
    s = Setup(tmp_path, exit_code=1)
    outcome = s.run()
    assert (outcome.state, outcome.exit_code) == ("failed", 1)
    assert s.store.load("r1")["state"] == "failed" and outcome.collected == ["metrics.jsonl", "summary.json"]


def test_a_dropped_connection_while_following_detaches(tmp_path) -> None:
    s = Setup(tmp_path)

    class Drop:
        def __iter__(self):
            yield LOGS[0]
            raise ConnectionResetError("connection reset by peer")

    s.remote.logs = Drop()  # type: ignore[assignment]
    with pytest.raises(Detached) as info:
        s.run()
    assert "lost the connection while following (ConnectionResetError)" in info.value.message
    assert "opskit logs r1 -f" in info.value.hint and s.host.closed
    assert s.store.load("r1")["state"] == "running"  # the job goes on there


def test_gpu_request_reaches_the_engine_as_a_device_request(tmp_path) -> None:
    s = Setup(tmp_path, remove_remote=False)
    s.run(s.job(gpus="0,1"))
    kwargs = s.remote.containers.by_name["opskit-run-r1"].kwargs
    [request] = kwargs["device_requests"]
    assert request["Driver"] == "nvidia" and request["DeviceIDs"] == ["0", "1"]
    assert kwargs["user"] == "1000:1000" and kwargs["mounts"][0]["Source"] == str(s.home / ".opskit/runs/r1")
