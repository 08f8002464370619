"""The sbatch script opskit renders (opskit.jobs.slurm.script) and the sentinel it writes
(opskit.jobs.slurm.sentinel): its options, and its shell run for real by bash against a pretend
allocation (tests/unit/_fakeslurm.py): two nodes, a failure before the training entry, a
SIGTERM that checkpoints, file names the shell cannot put into JSON. The real path is
tests/integration/test_run_slurm.py."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from _fakeslurm import fake_cluster

from opskit.errors import JobError, UsageError
from opskit.jobs.slurm.script import SbatchSpec, check_time, render
from opskit.jobs.slurm.sentinel import SENTINEL, parse_sentinel
from opskit.waiting import wait_until

NODES = ["n1", "n2"]


def spec(run_dir: Path | str, **kw) -> SbatchSpec:
    base = dict(run_id="r1", model="lenet", train_args=["--steps", "2", "--threads", "1"], run_dir=str(run_dir),
                nodes=2, image_ids={"n1": "sha256:" + "a" * 64, "n2": "sha256:" + "b" * 64},
                default_image="sha256:" + "c" * 64, grace=5)
    return SbatchSpec(**{**base, **kw})


def test_sbatch_options():
    s = spec("/shared/opskit/runs/r1", partition="gpu", gpus_per_node=2, time="10:00")
    assert s.sbatch_options() == [
        "--job-name=opskit-r1", "--nodes=2", "--ntasks-per-node=1", "--no-requeue", "--partition=gpu", "--gres=gpu:2",
        "--time=10:00", "--signal=TERM@35", "--output=/shared/opskit/runs/r1/slurm-%j.out"]  # grace 5 + 30 s
    text = render(s)
    assert text.startswith("#!/bin/bash\n#SBATCH --job-name=opskit-r1\n")
    assert "#SBATCH --gres=gpu:2" in text and '--gpus "\\"device=$CUDA_VISIBLE_DEVICES\\""' in text
    assert "--nproc-per-node 2" in text and "--rdzv-backend static" in text
    assert "--master-addr \"$OPSKIT_RDZV_ADDR\" --master-port \"$OPSKIT_RDZV_PORT\"" in text and "--node-rank \"$SLURM_NODEID\"" in text
    assert spec("/x", extra_sbatch=["--exclude=n3"]).sbatch_options()[-1] == "--exclude=n3"
    cpu = spec("/x", gpus_per_node=0)
    assert "--gres" not in "\n".join(cpu.sbatch_options()) and "--gpus" not in render(cpu)
    assert subprocess.run(["bash", "-n"], input=text.encode()).returncode == 0


def test_quoting_of_arguments_and_paths():
    s = spec("/shared/with space/r1", train_args=["--note", "it's $(rm -rf /)"])
    text = render(s)
    assert "RUN_DIR='/shared/with space/r1'" in text
    assert "'it'\"'\"'s $(rm -rf /)'" in text
    assert subprocess.run(["bash", "-n"], input=text.encode()).returncode == 0


@pytest.mark.parametrize("good", ["30", "10:00", "2:00:00", "1-00:00:00", "1-12", "1-12:30"])
def test_time_forms_slurm_takes(good):
    assert check_time(good) == good


@pytest.mark.parametrize("bad", ["1h", "-5", "10:", "abc", "1-"])
def test_time_forms_refused(bad):
    with pytest.raises(UsageError, match="not a Slurm time"):
        check_time(bad)


def run_script(tmp_path: Path, run_dir: Path, env_extra: dict | None = None, **kw) -> tuple[subprocess.Popen, dict]:
    env = {**fake_cluster(tmp_path / "fake", NODES), **(env_extra or {})}
    script = tmp_path / "job.sbatch"
    script.write_text(render(spec(run_dir, **kw)))
    proc = subprocess.Popen(["bash", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, env


def stopped_once(out: str) -> bool:
    """Each node's task stopped its container once for its one SIGTERM (one 'docker stop')."""
    return all(out.count(f"opskit[{n}]: SIGTERM: stopping the container") == 1 for n in NODES)


def sentinel_of(run_dir: Path) -> dict:
    return json.loads((run_dir / SENTINEL).read_text())


def hashes(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.relative_to(run_dir).parts[0] in ("results", "nodes")}


def test_two_nodes_end_to_end(tmp_path):
    run_dir = tmp_path / "shared" / "r1"
    proc, env = run_script(tmp_path, run_dir)
    out, _ = proc.communicate(timeout=60)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "n1/node0: rank 0: step 2/2 loss=2.1" in text and "n2/node1: rank 1: step 1/2 loss=2.3" in text
    doc = sentinel_of(run_dir)
    assert (doc["exit_code"], doc["run_id"], doc["slurm_job_id"], doc["unlisted"]) == (0, "r1", "42", 0)
    assert doc["node_exits"] == {"n1": 0, "n2": 0}
    assert doc["files"] == hashes(run_dir) and set(doc["files"]) == {"results/summary.json",
                                                                   "nodes/n2/summary.json"}
    sent = parse_sentinel((run_dir / SENTINEL).read_bytes(), "x", "r1", "42")
    assert sent.state == "exited" and sent.started <= sent.finished
    argv = (Path(env["FAKE_STATE"]) / "n2" / "argv").read_text().splitlines()
    assert argv[argv.index("--entrypoint") + 1:argv.index("--entrypoint") + 3] == ["python", "sha256:" + "b" * 64]
    assert argv[argv.index("--node-rank"):argv.index("--node-rank") + 2] == ["--node-rank", "1"]
    i = argv.index("--master-addr")
    assert argv[i:i + 4] == ["--master-addr", "n1", "--master-port", "29442"]
    assert argv[argv.index("--start-method"):argv.index("--start-method") + 2] == ["--start-method", "fork"]
    assert argv[-2:] == ["--out", "/out"] and "--cap-drop" in argv and "no-new-privileges:true" in argv


def test_failure_before_the_entry_starts_still_writes_the_sentinel(tmp_path):
    run_dir = tmp_path / "shared" / "r1"
    proc, _ = run_script(tmp_path, run_dir, {"FAKE_NO_IMAGE": "sha256:aaaa"})
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 125
    assert "docker run failed (is the image on this node?" in out.decode()
    assert "Unable to find image" in out.decode()
    doc = sentinel_of(run_dir)
    assert (doc["exit_code"], doc["files"]) == (125, {})
    assert parse_sentinel((run_dir / SENTINEL).read_bytes(), "x", "r1").state == "failed"


def test_sigterm_to_the_tasks_checkpoints_and_is_recorded(tmp_path):
    run_dir = tmp_path / "shared" / "r1"
    proc, env = run_script(tmp_path, run_dir, {"FAKE_STEPS_S": "600"})
    for pid in wait_tasks(env):  # what 'scancel --signal=TERM JOB' does: the step's tasks
        os.kill(pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out.decode()
    assert "SIGTERM: stopping the container (the training entry checkpoints" in out.decode()
    assert stopped_once(out.decode())
    doc = sentinel_of(run_dir)
    assert doc["exit_code"] == 143 and "results/checkpoints/last.pt" in doc["files"]
    assert doc["node_exits"] == {"n1": 143, "n2": 143}
    assert doc["files"] == hashes(run_dir)


@pytest.mark.parametrize(("exits", "stopped", "srun", "job"), [
    ({"n1": "1", "n2": "143"}, ["n2"], 143, "1"),  # rank 0 failed, its peer was stopped: the job failed (1)
    ({"n1": "143", "n2": "143"}, ["n1", "n2"], 143, "143"),  # cancelled: interrupted
    ({"n1": "143", "n2": "1"}, ["n1", "n2"], 1, "143"),  # cancelled; rank 1's torchrun failed as rank 0 went first
    ({"n1": "0", "n2": "1"}, [], 1, "1"),  # a node failed on its own, told nothing
    ({"n1": "0", "n2": "0"}, [], 0, "0"),
    ({}, [], 125, "125"),  # no node wrote its end: srun's code
])
def test_a_nodes_own_failure_is_the_jobs_exit_code(tmp_path, exits, stopped, srun, job):
    from opskit.jobs.slurm.script import EXIT_FN

    for node, code in exits.items():
        (tmp_path / f".exit-{node}").write_text(code + "\n")
    for node in stopped:
        (tmp_path / f".stopped-{node}").touch()
    out = subprocess.run(["bash", "-c", f"{EXIT_FN}\nopskit_exit {srun}"], env={**os.environ, "RUN_DIR": str(tmp_path)},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == job


def test_names_json_cannot_hold_are_counted_not_written(tmp_path):
    run_dir = tmp_path / "shared" / "r1"
    proc, _ = run_script(tmp_path, run_dir, {"FAKE_ODD": 'quote"and\\back'})
    proc.communicate(timeout=60)
    doc = sentinel_of(run_dir)  # valid JSON all the same
    assert doc["unlisted"] == 2 and set(doc["files"]) == {"results/summary.json", "nodes/n2/summary.json"}


def test_sentinel_of_another_run_or_broken_is_refused():
    good = {"format": "opskit-slurm-sentinel/1", "run_id": "r1", "slurm_job_id": "42", "exit_code": 0,
            "files": {"results/a": "0" * 64}}
    assert parse_sentinel(json.dumps(good).encode(), "w", "r1", "42").files == {"results/a": "0" * 64}
    with pytest.raises(JobError, match="the sentinel of run r1 .* not of run r2"):
        parse_sentinel(json.dumps(good).encode(), "w", "r2")
    with pytest.raises(JobError, match="not a valid sentinel"):
        parse_sentinel(b'{"format": "opskit-slurm-sentinel/1", "run_', "w", "r1")
    with pytest.raises(JobError, match="is not a sha256"):
        parse_sentinel(json.dumps({**good, "files": {"a": "xyz"}}).encode(), "w", "r1")


def wait_tasks(env: dict) -> list[int]:
    """The step's tasks (srun's pids), once every node's container is ready for 'docker stop'."""
    state = Path(env["FAKE_STATE"])
    wait_until(lambda: all((state / p).exists() for p in ["tasks", *(f"{n}/pid" for n in NODES)]), 60,
               "the fake nodes' containers", interval=0.05, max_interval=0.05)
    tasks = [int(p) for p in (state / "tasks").read_text().split()]
    assert len(tasks) == len(NODES), tasks
    return tasks


def descendants(pid: int) -> list[int]:
    """``pid`` and every process under it (what proctrack/linuxproc signals for a step's task)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


@pytest.mark.parametrize(("kill_wait", "grace", "stop", "said"), [
    ("10", 30, "7", "Slurm's KillWait is 10s (scontrol show config"),  # 10 - 3 s for the task's own end
    ("60", 30, "30", "Slurm's KillWait is 60s"),  # --grace fits
    ("2", 30, "1", "Slurm's KillWait is 2s"),
    ("", 30, "30", "Slurm's KillWait unknown (scontrol show config)"),
])
def test_the_stop_timeout_is_bounded_by_killwait(tmp_path, kill_wait, grace, stop, said):
    run_dir = tmp_path / "shared" / "r1"
    proc, env = run_script(tmp_path, run_dir, {"FAKE_STEPS_S": "600", "FAKE_KILLWAIT": kill_wait}, grace=grace)
    for pid in wait_tasks(env):
        os.kill(pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143 and said in out.decode(), out.decode()
    assert f"each node's container gets {stop}s to stop" in out.decode() or not kill_wait
    assert stopped_once(out.decode()), out.decode()
    for node in NODES:
        assert (Path(env["FAKE_STATE"]) / node / "stop_args").read_text().split() == ["-t", stop, "opskit-run-r1"]
        assert (Path(env["FAKE_STATE"]) / node / "removed").read_text().strip() == "removed"


def test_the_steps_signal_to_every_process_keeps_the_exit_code(tmp_path):
    """As Slurm signals a step (every process of each task): 'docker wait' and 'docker logs' die
    too (Go programs cannot ignore SIGTERM, measured on Docker 20.10's CLI); the task waits anew."""
    run_dir = tmp_path / "shared" / "r1"
    proc, env = run_script(tmp_path, run_dir, {"FAKE_STEPS_S": "600"})
    time.sleep(0.5)  # 'docker wait' and 'docker logs' are running
    for task in wait_tasks(env):
        for pid in descendants(task):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:  # a short-lived one (a fake's sleep) already gone
                pass
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out.decode()
    assert sentinel_of(run_dir)["node_exits"] == {"n1": 143, "n2": 143}
    assert "opskit[n2]: container exited with 143" in out.decode()
    assert stopped_once(out.decode()), out.decode()


def test_the_time_limit_warning_checkpoints_then_slurm_ends_it(tmp_path):
    run_dir = tmp_path / "shared" / "r1"
    proc, env = run_script(tmp_path, run_dir, {"FAKE_STEPS_S": "600", "FAKE_LEFT": "0:50"}, time="10")
    assert "#SBATCH --signal=TERM@35" in (tmp_path / "job.sbatch").read_text()
    for pid in wait_tasks(env):  # what '#SBATCH --signal=TERM@35' does near the limit: the step's tasks
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while not (run_dir / SENTINEL).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    doc = sentinel_of(run_dir)
    assert (doc["ended"], doc["exit_code"]) == ("time-limit", 143) and "results/checkpoints/last.pt" in doc["files"]
    assert parse_sentinel((run_dir / SENTINEL).read_bytes(), "x", "r1").state == "timeout"
    time.sleep(0.5)
    assert proc.poll() is None  # the batch script waits for Slurm to end the job at its limit (TIMEOUT)
    proc.send_signal(signal.SIGTERM)  # the limit: Slurm's SIGTERM to the batch script
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert "opskit: the --time limit is 50s away: the nodes checkpointed and stopped" in out.decode()


def test_a_cancel_far_from_the_time_limit_is_not_a_timeout(tmp_path):
    run_dir = tmp_path / "shared" / "r1"
    proc, env = run_script(tmp_path, run_dir, {"FAKE_STEPS_S": "600", "FAKE_LEFT": "1-02:00:00"}, time="2-00:00:00")
    for pid in wait_tasks(env):
        os.kill(pid, signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 143 and sentinel_of(run_dir)["ended"] == ""
    assert parse_sentinel((run_dir / SENTINEL).read_bytes(), "x", "r1").state == "interrupted"


@pytest.mark.parametrize(("text", "seconds"), [("30", 1800), ("10:00", 600), ("5:30", 330), ("2:00:00", 7200),
                                               ("1-00:00:00", 86400), ("1-12", 129600), ("1-12:30", 131400)])
def test_time_in_seconds(text, seconds):
    from opskit.jobs.slurm.script import time_seconds

    assert time_seconds(check_time(text)) == seconds
    assert spec("/x", time=text, grace=30).warn_s == min(60, seconds // 2)
