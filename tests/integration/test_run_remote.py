"""opskit run-remote and the job lifecycle, end to end on Docker-in-Docker GPU hosts over SSH.

The CLI runs as a subprocess (as a user runs it); the hosts are real sshd + real engines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import bed_env, run_opskit

from opskit.atomic import sha256_file
from opskit.images import ship as shipmod
from opskit.waiting import wait_until

RUN_HOME = "/home/opskit/.opskit/runs"
QUICK = ["lenet", "--small", "--steps", "12", "--batch-size", "16", "--log-every", "4",
         "--train-samples", "256", "--val-samples", "64"]


@pytest.fixture(scope="module")
def hosts(docker_client, gpu_hosts, training_image):
    """Both hosts with the training image already there (a no-op if test_ship shipped it)."""
    result = shipmod.ship(docker_client, training_image, gpu_hosts.specs())
    assert result.ok, result.failed
    return gpu_hosts


@pytest.fixture
def env(hosts, tmp_path) -> dict[str, str]:
    return bed_env(hosts, tmp_path)


def opskit(env: dict, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return run_opskit(env, *args, timeout=timeout)


def spawn(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "opskit", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def host_exec(bed, name: str, argv: list[str]) -> tuple[int, str]:
    return bed.host(name).exec(argv)


def container_state(bed, name: str, run_id: str) -> str:
    code, out = host_exec(bed, name, ["docker", "inspect", "-f", "{{.State.Status}}", f"opskit-run-{run_id}"])
    return out.strip() if code == 0 else "absent"


def wait_for_training(bed, name: str, run_id: str) -> None:
    def started() -> bool:
        code, out = host_exec(bed, name, ["docker", "logs", f"opskit-run-{run_id}"])
        return code == 0 and "step " in out

    wait_until(started, 120, f"run {run_id} to start training on {name}", interval=0.5)


def derived_image(client, base: str, tmp: Path) -> str:
    """The training image plus one small layer: what run-remote must ship before it runs."""
    (tmp / "note.txt").write_text("run-remote ships this layer\n")
    os.utime(tmp / "note.txt", (0, 0))
    (tmp / "Dockerfile").write_text(f"FROM {base}\nCOPY note.txt /app/note.txt\n")
    tag = "opskit-train-runtest:note"
    client.images.build(path=str(tmp), tag=tag, rm=True, pull=False)
    return tag


def test_run_then_results_collected_and_verified(hosts, env, training_image, docker_client, tmp_path):
    h1 = hosts.names[0]
    image = derived_image(docker_client, training_image, tmp_path)
    hosts.host(h1).exec(["docker", "image", "rm", "-f", image])  # from an earlier session
    res = opskit(env, "run-remote", "--host", h1, "--image", image, "--run-id", "rt-a",
                 "--gpus", "all", *QUICK, "--seed", "3")
    assert res.returncode == 0, res.stderr + res.stdout
    assert f"[{h1}] " in res.stdout and "step 12/12" in res.stdout  # followed, host prefix
    assert "preflight disk:" in res.stderr and "free at /var/lib/docker" in res.stderr
    assert f"[{h1}] shipping 1 of " in res.stderr  # only the new layer travelled
    run = Path(env["OPSKIT_RUNS_DIR"]) / "rt-a"
    card = json.loads((run / "job.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())["files"]
    assert {"metrics.jsonl", "summary.json", "run_card.json", "checkpoints/last.pt"} <= set(manifest)
    for rel, digest in manifest.items():  # hashes made on the host == the local copies
        assert sha256_file(run / "results" / rel) == digest
    assert json.loads((run / "results/summary.json").read_text())["status"] == "completed"
    assert "step 12/12" in (run / "logs.txt").read_text()  # a record beside the card, not a result
    local = docker_client.images.get(image)
    assert card["image"]["id"] == local.id and card["image"]["layers"] == local.attrs["RootFS"]["Layers"]
    assert card["state"] == "exited" and card["exit_code"] == 0 and card["oom_killed"] is False
    assert card["seed"] == 3 and card["args"][-2:] == ["--seed", "3"] and card["host"] == h1
    facts = card["host_facts"]  # the test hosts' fake nvidia-smi: two H100s
    assert facts["docker_root"] == "/var/lib/docker" and facts["cuda"]
    assert [g["index"] for g in facts["gpus"]] == ["0", "1"] and "H100" in facts["gpus"][0]["name"]
    code, out = host_exec(hosts, h1, ["docker", "inspect", "-f", "{{json .HostConfig.DeviceRequests}}", "opskit-run-rt-a"])
    [request] = json.loads(out)  # the GPUs went to the engine as a device request
    assert request["Driver"] == "nvidia" and request["Count"] == -1 and request["Capabilities"] == [["gpu"]]
    assert "commit" in card["git"] and card["collected"]["verified"] is True
    assert card["host_snapshot"]["gpu"]["cuda_version"] == facts["cuda"]  # opskit.checks snapshot

    again = opskit(env, "collect", "rt-a")  # idempotent
    assert again.returncode == 0 and "0 copied" in again.stdout, again.stderr
    listed = json.loads(opskit(env, "runs", "list", "--json").stdout)
    assert [c["run_id"] for c in listed] == ["rt-a"]
    jobs = json.loads(opskit(env, "jobs", "--json").stdout)["hosts"][h1]
    # other tests of the session (playbooks, matrix) may have left their runs on this host
    assert [(j["run_id"], j["state"], j["model"]) for j in jobs if j["run_id"] == "rt-a"] == [
        ("rt-a", "exited", "lenet")]

    twice = opskit(env, "run-remote", "--host", h1, "--image", image, "--run-id", "rt-a", *QUICK)
    assert twice.returncode == 2 and "already exists" in twice.stderr  # a usage refusal
    other_store = {**env, "OPSKIT_RUNS_DIR": str(tmp_path / "elsewhere")}  # the host refuses it too
    twice = opskit(other_store, "run-remote", "--host", h1, "--image", image, "--run-id", "rt-a", *QUICK)
    assert twice.returncode == 2 and f"{h1}: run 'rt-a' already exists" in twice.stderr

    # A result truncated on the host afterwards: reported, never marked collected.
    host_exec(hosts, h1, ["sh", "-c", f"truncate -s 10 {RUN_HOME}/rt-a/metrics.jsonl"])
    (run / "results/metrics.jsonl").unlink()
    bad = opskit(env, "collect", "rt-a")
    assert bad.returncode == 1 and "changed on the host since the first collect" in bad.stderr
    assert "metrics.jsonl" in bad.stderr and not (run / "results/metrics.jsonl").exists()


def test_connection_cut_while_following_job_goes_on_logs_reattach_collect(hosts, env, training_image):
    h2 = hosts.names[1]
    proc = spawn(env, "run-remote", "--host", h2, "--image", training_image, "--run-id", "rt-cut",
                 *QUICK[:3], "3000", *QUICK[4:])
    try:
        wait_for_training(hosts, h2, "rt-cut")
        # Frozen mid-run so that the cut lands while run-remote follows the job, however fast this
        # machine trains (300 steps take 0.6 s unloaded: the job could end before the cut).
        assert host_exec(hosts, h2, ["docker", "pause", "opskit-run-rt-cut"])[0] == 0
        host_exec(hosts, h2, ["pkill", "-f", "sshd: opskit"])  # every SSH session of the user dies
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        host_exec(hosts, h2, ["docker", "unpause", "opskit-run-rt-cut"])
    assert proc.returncode == 1, out + err
    assert "lost the connection" in err and "opskit logs rt-cut -f" in err, err
    assert container_state(hosts, h2, "rt-cut") in ("running", "exited")  # the job went on
    logs = opskit(env, "logs", "rt-cut", "-f")
    assert logs.returncode == 0, logs.stderr
    assert "step 3000/3000" in logs.stdout and "exited (exit 0)" in logs.stderr
    got = opskit(env, "collect", "rt-cut", "--remove-remote")
    assert got.returncode == 0, got.stderr
    run = Path(env["OPSKIT_RUNS_DIR"]) / "rt-cut"
    assert json.loads((run / "results/summary.json").read_text())["status"] == "completed"
    assert host_exec(hosts, h2, ["test", "-e", f"{RUN_HOME}/rt-cut"])[0] != 0  # removed after verify
    assert container_state(hosts, h2, "rt-cut") == "absent"
    saved = opskit(env, "logs", "rt-cut")  # the container is gone: the copy collect saved here
    assert saved.returncode == 0 and "step 3000/3000" in saved.stdout, saved.stderr
    assert f"showing the saved copy of run rt-cut's output: {run / 'logs.txt'}" in saved.stderr


def test_ctrl_c_detaches_then_cancel_checkpoints_and_collects(hosts, env, training_image):
    h1 = hosts.names[0]
    proc = spawn(env, "run-remote", "--host", h1, "--image", training_image, "--run-id", "rt-cancel",
                 *QUICK[:3], "100000", *QUICK[4:])
    try:
        wait_for_training(hosts, h1, "rt-cancel")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "opskit logs rt-cancel -f" in err, out + err
    assert container_state(hosts, h1, "rt-cancel") == "running"
    res = opskit(env, "cancel", "rt-cancel", "--grace", "60", "--json")
    assert res.returncode == 0, res.stderr
    state = json.loads(res.stdout)
    assert state["state"] == "interrupted" and state["exit_code"] == 143  # 143, not 137: SIGTERM honoured, no kill
    got = opskit(env, "collect", "rt-cancel")
    assert got.returncode == 0, got.stderr
    run = Path(env["OPSKIT_RUNS_DIR"]) / "rt-cancel"
    assert (run / "results/checkpoints/last.pt").stat().st_size > 0
    assert json.loads((run / "results/summary.json").read_text())["status"] == "interrupted"
    assert json.loads((run / "job.json").read_text())["state"] == "interrupted"


def test_killed_for_memory_is_reported_and_logs_collected(hosts, env, training_image):
    h2 = hosts.names[1]
    res = opskit(env, "run-remote", "--host", h2, "--image", training_image, "--run-id", "rt-oom",
                 "--memory", "40m", *QUICK)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "killed for memory" in res.stdout
    run = Path(env["OPSKIT_RUNS_DIR"]) / "rt-oom"
    card = json.loads((run / "job.json").read_text())
    assert card["state"] == "oom-killed" and card["oom_killed"] is True and card["exit_code"] == 137
    assert (run / "logs.txt").exists() and card["collected"]["logs"] is True
    jobs = json.loads(opskit(env, "jobs", "--host", h2, "--json").stdout)["hosts"][h2]
    assert ("rt-oom", "oom-killed") in [(j["run_id"], j["state"]) for j in jobs]


def test_preflight_refuses_a_host_without_disk_room_with_numbers(small_disk_host, training_image, tmp_path):
    env = {**os.environ, **small_disk_host.env(), "OPSKIT_RUNS_DIR": str(tmp_path / "runs"),
           "OPSKIT_DISK_MARGIN": "0"}
    name = small_disk_host.names[0]
    res = opskit(env, "run-remote", "--host", name, "--image", training_image, "--run-id", "rt-disk", *QUICK)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "preflight refused the run" in res.stderr
    line = next(ln for ln in res.stderr.splitlines() if "disk:" in ln)
    # e.g. "disk: 399.9M free at /var/lib/docker; need 1000.0M (1000.0M of image layers to load + 0B margin)"
    assert "M free at /var/lib/docker; need " in line and "of image layers to load + 0B margin" in line
    assert container_state(small_disk_host, name, "rt-disk") == "absent"
    assert small_disk_host.hosts[0].exec(["sh", "-c", "ls -A /home/opskit/.opskit/ship 2>/dev/null"])[1] == ""
    assert not (Path(env["OPSKIT_RUNS_DIR"]) / "rt-disk").exists()


def test_bad_model_or_option_fails_before_anything_travels(hosts, env, training_image):
    h2 = hosts.names[1]
    for args, needle in ((["lenett"], "unknown model 'lenett'"), (["lenet", "--steps", "x"], "--steps")):
        res = opskit(env, "run-remote", "--host", h2, "--image", "no-such-image:never", "--run-id", "rt-bad", *args)
        assert res.returncode == 2 and needle in res.stderr, res.stderr
    assert container_state(hosts, h2, "rt-bad") == "absent"
    res = opskit(env, "run-remote", "--host", h2, "--image", training_image, "--run-id", "rt-bad", "--gpus", "4", *QUICK)
    assert res.returncode == 1 and "gpus: 4 GPU(s) asked for; 2 GPU(s) visible" in res.stderr, res.stderr
    assert container_state(hosts, h2, "rt-bad") == "absent"
    res = opskit(env, "logs", "rt-nope")
    assert res.returncode == 2 and "unknown run ID 'rt-nope'" in res.stderr


def test_a_run_the_engine_refuses_is_recorded_as_not_started(hosts, env, training_image):
    h2 = hosts.names[1]
    res = opskit(env, "run-remote", "--host", h2, "--image", training_image, "--run-id", "rt-refused",
                 "--memory", "1m", *QUICK)  # the engine's minimum memory limit is 6 MB
    assert res.returncode == 1 and f"{h2}: the engine would not start run rt-refused" in res.stderr, res.stderr
    assert container_state(hosts, h2, "rt-refused") == "absent"
    card = json.loads((Path(env["OPSKIT_RUNS_DIR"]) / "rt-refused" / "job.json").read_text())
    assert card["state"] == "not-started" and "would not start" in card["error"]
