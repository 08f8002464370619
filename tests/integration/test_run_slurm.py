"""``opskit run-remote --scheduler slurm`` on a real Slurm 22.05 cluster (opskit.testing.slurm:
slurm-login + two Docker-in-Docker nodes reached through it): the image shipped to the
partition's nodes by NodeName, sbatch over SSH, real training steps on both nodes (gloo on CPU),
status from scontrol and the sentinel, cancel, collect; and the faults of issue 13.

Cost: the session's Slurm cluster (about 10 s to start once its images exist), the training
image shipped to both nodes once (about 20 s), then a two-node lenet --small run of 40 steps at
--threads 1, three longer runs stopped early (cancel, a lost node, a lost client), a job held
pending, and refusals that ship and submit nothing.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import bed_env, run_opskit

from opskit.atomic import sha256_file
from opskit.testing.slurm import SlurmCluster
from opskit.waiting import wait_until

pytestmark = pytest.mark.integration

TRAIN = ["lenet", "--small", "--batch-size", "16", "--train-samples", "512", "--val-samples", "64",
         "--threads", "1", "--device", "cpu", "--lr", "3e-3"]


@pytest.fixture(scope="module")
def training_image(docker_client, base_image) -> str:
    """The default training image built from THIS tree under a tag of this module."""
    from opskit.images.build import BuildRequest, build_image

    return build_image(BuildRequest(profile="offline", tag="opskit-train:slurm-tests"), client=docker_client).tag


@pytest.fixture
def env(cluster, tmp_path) -> dict[str, str]:
    return bed_env(cluster, tmp_path)


def opskit(env: dict, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return run_opskit(env, *args, timeout=timeout)


def submit(env: dict, image: str, run_id: str, *args: str, steps: int = 40) -> subprocess.CompletedProcess:
    return opskit(env, "run-remote", "--host", "slurm-login", "--scheduler", "slurm", "--image", image,
                  "--run-id", run_id, *args, *TRAIN, "--steps", str(steps), "--log-every", "10")


def card(env: dict, run_id: str) -> dict:
    return json.loads((Path(env["OPSKIT_RUNS_DIR"]) / run_id / "job.json").read_text())


def wait_steps(env: dict, run_id: str, timeout: float = 240) -> None:
    """Until the run's output shows training steps (its output file, through the login host)."""
    wait_until(lambda: "step 10/" in opskit(env, "logs", run_id).stdout, timeout, f"run {run_id} to train",
               interval=2)


def test_two_nodes_learn_and_come_home_verified(cluster, env, training_image):
    res = submit(env, training_image, "sl-a", "--nodes", "2", "--shared-dir", cluster.shared_dir, "--json")
    assert res.returncode == 0, res.stderr[-4000:] + res.stdout[-2000:]
    doc = json.loads(res.stdout)
    assert (doc["state"], doc["exit_code"], doc["nodes"], doc["partition"]) == ("exited", 0, "slurm-node[1-2]", "gpu")
    assert doc["not_collected"] == [] and "results/checkpoints/last.pt" in doc["collected"]
    assert "[slurm-node1/node0] step 40/40" in res.stderr  # rank 0's lines, as its node's own
    assert "[slurm-node2] opskit: container exited with 0" in res.stderr  # rank 1 ran on the other node
    local = Path(doc["local_dir"])
    assert not (local / ".partial").exists()  # kept only while it holds partial copies
    sentinel = json.loads((local / "opskit-sentinel.json").read_text())
    assert sentinel["exit_code"] == 0 and sentinel["slurm_job_id"] == doc["job_id"]
    for rel, digest in sentinel["files"].items():  # every result verified against the job's own manifest
        assert sha256_file(local / rel) == digest
    summary = json.loads((local / "results" / "summary.json").read_text())
    assert summary["status"] == "completed" and len(summary["train"]["items_per_s_ranks"]) == 2  # two ranks
    losses = [json.loads(ln)["loss"] for ln in (local / "results" / "metrics.jsonl").read_text().splitlines()
              if json.loads(ln).get("kind") == "train"]
    assert losses[-1] < losses[0]  # it learned
    c = card(env, "sl-a")
    assert c["slurm"]["job_id"] == doc["job_id"] and c["slurm"]["batch_host"] == "slurm-node1"
    assert set(c["image"]["node_ids"]) == set(cluster.nodes)  # shipped to each node's engine, by NodeName
    assert (local / "job.sbatch").read_text().startswith("#!/bin/bash\n#SBATCH --job-name=opskit-sl-a")
    assert (local / f"slurm-{doc['job_id']}.out").is_file()
    jobs = opskit(env, "jobs")
    assert jobs.returncode == 0 and "sl-a" in jobs.stdout and "exited" in jobs.stdout
    elsewhere = {**env, "OPSKIT_RUNS_DIR": str(Path(env["OPSKIT_RUNS_DIR"]).parent / "elsewhere")}
    again = submit(elsewhere, training_image, "sl-a", "--nodes", "2", "--shared-dir", cluster.shared_dir)
    assert again.returncode == 2  # a usage refusal: the run's folder on the cluster is not written over
    assert "slurm-login: run 'sl-a' already exists there (its folder /shared/opskit/runs/sl-a is there)" in again.stderr
    by_login = opskit(env, "jobs", "--host", "slurm-login")  # no Docker engine there: not an error
    assert by_login.returncode == 0 and "sl-a" in by_login.stdout, by_login.stderr
    res = opskit(env, "collect", "sl-a", "--remove-remote")
    assert res.returncode == 0, res.stderr + res.stdout
    assert "[slurm-login] removed slurm-login:/shared/opskit/runs/sl-a" in res.stdout
    assert cluster.exec(cluster.login, ["test", "-e", "/shared/opskit/runs/sl-a"])[0] != 0  # all of it
    jobs = json.loads(opskit(env, "jobs", "--json").stdout)["slurm"]
    mine = [s for s in jobs if s["run_id"] == "sl-a"][0]  # the cluster's copy gone: the collected one says
    assert (mine["state"], mine["exit_code"]) == ("exited", 0) and "sentinel collected here" in mine["detail"]


def test_plan_shows_the_script_and_submits_nothing(cluster, env, training_image):
    res = submit(env, training_image, "sl-plan", "--nodes", "2", "--gpus-per-node", "1", "--time", "5", "--plan")
    assert res.returncode == 0, res.stderr
    assert "#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --no-requeue\n#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1" in res.stdout
    assert "#SBATCH --time=5" in res.stdout and "srun --ntasks-per-node=1" in res.stdout
    assert "# Rendered by opskit (would be kept, when submitted, in runs/sl-plan/job.sbatch)" in res.stdout
    assert not (Path(env["OPSKIT_RUNS_DIR"]) / "sl-plan").exists()


def containers(cluster: SlurmCluster, run_id: str) -> dict[str, str]:
    """Each node's containers of the run (any state), as its engine lists them."""
    return {node: cluster.check(node, ["docker", "ps", "-aq", "--filter", f"label=opskit.run={run_id}"]).strip()
            for node in cluster.nodes}


def test_cancel_checkpoints_node_local(cluster, env, training_image):
    """The run's --grace (30 s) is longer than the cluster's KillWait (10 s): each node's container
    gets 7 s to stop; after the cancel no container of the run is on any node."""
    res = submit(env, training_image, "sl-c", "--nodes", "2", "--detach", steps=20000)
    assert res.returncode == 0, res.stderr[-3000:]
    wait_steps(env, "sl-c")
    res = opskit(env, "cancel", "sl-c", "--grace", "20", "--json")
    assert res.returncode == 0, res.stderr
    st = json.loads(res.stdout)
    assert (st["state"], st["exit_code"]) == ("interrupted", 143), st
    assert containers(cluster, "sl-c") == {n: "" for n in cluster.nodes}  # stopped and removed
    res = opskit(env, "collect", "sl-c", "--json")  # node-local: from the batch host and the other node
    assert res.returncode == 0, res.stderr + res.stdout
    got = json.loads(res.stdout)
    assert "results/checkpoints/last.pt" in got["files"] and got["not_collected"] == []
    local = Path(env["OPSKIT_RUNS_DIR"]) / "sl-c"
    assert json.loads((local / "results" / "summary.json").read_text())["status"] == "interrupted"
    job_id = card(env, "sl-c")["slurm"]["job_id"]
    out = (local / f"slurm-{job_id}.out").read_text()
    assert "opskit: Slurm's KillWait is 10s (scontrol show config" in out
    assert "each node's container gets 7s to stop (--grace 30s)" in out
    run_dir = card(env, "sl-c")["slurm"]["run_dir"]
    res = opskit(env, "collect", "sl-c", "--remove-remote")  # node-local: the folder goes from every node
    assert res.returncode == 0, res.stderr + res.stdout
    for node in cluster.nodes:
        assert f"removed {node}:{run_dir}" in res.stdout
        assert cluster.exec(node, ["test", "-e", run_dir])[0] != 0


def test_scancel_by_hand_leaves_no_container(cluster, env, training_image):
    """Slurm's own end of a job (scancel: SIGTERM to every process of the steps, SIGKILL KillWait
    seconds later), no opskit command in between: no container of the job stays on a node."""
    res = submit(env, training_image, "sl-k", "--nodes", "2", "--shared-dir", cluster.shared_dir, "--detach",
                 steps=20000)
    assert res.returncode == 0, res.stderr[-3000:]
    wait_steps(env, "sl-k")
    job_id = card(env, "sl-k")["slurm"]["job_id"]
    cluster.check(cluster.login, ["scancel", job_id], user="opskit")
    wait_until(lambda: cluster.job_state(job_id) not in ("RUNNING", "COMPLETING"), 120, f"job {job_id} ended",
               interval=0.5)
    running = {n: cluster.check(n, ["docker", "ps", "-q", "--filter", "label=opskit.run=sl-k"]).strip()
               for n in cluster.nodes}
    assert running == {n: "" for n in cluster.nodes}  # none runs once Slurm has ended the job
    res = opskit(env, "collect", "sl-k", "--json")
    assert res.returncode == 0, res.stderr + res.stdout
    assert containers(cluster, "sl-k") == {n: "" for n in cluster.nodes}  # none at all after collect


def test_the_time_limit_checkpoints_and_ends_timeout(cluster, env, training_image):
    """--time 2: Slurm sends SIGTERM to the steps 60 s (and up to a minute more) before the limit
    (#SBATCH --signal=TERM@60); the nodes checkpoint and stop, the sentinel is written, Slurm ends
    the job TIMEOUT at its limit, and the results are collected."""
    res = submit(env, training_image, "sl-t", "--nodes", "2", "--shared-dir", cluster.shared_dir, "--time", "2",
                 "--json", steps=20000)
    doc = json.loads(res.stdout)
    assert (doc["state"], doc["not_collected"]) == ("timeout", []), res.stderr[-4000:]
    assert "results/checkpoints/last.pt" in doc["collected"]
    local = Path(doc["local_dir"])
    assert "#SBATCH --signal=TERM@60" in (local / "job.sbatch").read_text()
    sentinel = json.loads((local / "opskit-sentinel.json").read_text())
    assert sentinel["ended"] == "time-limit" and set(sentinel["node_exits"]) == set(cluster.nodes)
    assert sentinel["node_exits"][cluster.nodes[0]] == 143  # rank 0 stopped by the warning's SIGTERM
    assert json.loads((local / "results" / "summary.json").read_text())["status"] == "interrupted"
    assert "opskit: the --time limit is" in res.stderr and "Slurm ends the job at its limit (TIMEOUT)" in res.stderr
    assert containers(cluster, "sl-t") == {n: "" for n in cluster.nodes}


def test_pending_says_why_then_a_failure_before_the_entry_is_collected(cluster, env, training_image):
    blocker = cluster.check(cluster.login, ["bash", "-lc", "sbatch --parsable --nodes=2 --gres=gpu:2 "
                                            "--output=/dev/null --wrap 'sleep 600'"], user="opskit").strip()
    socks = ["chmod", "600", "/var/run/docker.sock"]
    try:  # the blocker holds every GPU first: then ours waits for resources (not behind another pending job)
        wait_until(lambda: cluster.job_state(blocker) == "RUNNING", 60, f"job {blocker} running", interval=0.5)
        res = submit(env, training_image, "sl-p", "--nodes", "2", "--gpus-per-node", "1",
                     "--shared-dir", cluster.shared_dir, "--detach")
        assert res.returncode == 0, res.stderr[-3000:]

        def pending() -> list[dict]:
            out = json.loads(opskit(env, "jobs", "--json").stdout)["slurm"]
            return [s for s in out if s["run_id"] == "sl-p" and s["state"] == "pending" and s["reason"]]

        st = wait_until(pending, 60, "sl-p pending with a reason", interval=1)[0]
        assert st["reason"].startswith("Resources: waiting for resources"), st
        assert "Resources: waiting for resources" in opskit(env, "jobs").stdout
        for node in cluster.nodes:  # the nodes' engines refuse the user: docker run fails, no training starts
            cluster.check(node, socks)
        cluster.check(cluster.login, ["scancel", blocker])
        res = opskit(env, "logs", "sl-p", "-f")
        assert res.returncode == 0, res.stderr
        assert "failed (exit 125)" in res.stderr
        res = opskit(env, "collect", "sl-p", "--json")
        out = json.loads(res.stdout)
        job_id = card(env, "sl-p")["slurm"]["job_id"]
        assert f"slurm-{job_id}.out" in out["files"]
        text = (Path(env["OPSKIT_RUNS_DIR"]) / "sl-p" / f"slurm-{job_id}.out").read_text()
        assert "docker run failed (is the image on this node? is its engine up?)" in text
        assert "permission denied" in text.lower()
    finally:
        for node in cluster.nodes:
            cluster.exec(node, ["chmod", "660", "/var/run/docker.sock"])
        cluster.exec(cluster.login, ["scancel", blocker])


def test_a_lost_node_is_reported(cluster, env, training_image):
    res = submit(env, training_image, "sl-l", "--nodes", "2", "--shared-dir", cluster.shared_dir, "--detach",
                 steps=20000)
    assert res.returncode == 0, res.stderr[-3000:]
    wait_steps(env, "sl-l")
    try:
        cluster.stop_slurmd("slurm-node2", kill=True)  # as in a crash: slurmd and its slurmstepd gone
        res = opskit(env, "logs", "sl-l", "-f", timeout=300)
        assert res.returncode == 0, res.stderr
        assert "run sl-l (Slurm job" in res.stderr and ") lost" in res.stderr, res.stderr[-3000:]
        assert "node(s) lost: slurm-node2 (down" in res.stderr
        jobs = json.loads(opskit(env, "jobs", "--json").stdout)["slurm"]
        mine = [s for s in jobs if s["run_id"] == "sl-l"][0]
        assert mine["state"] == "lost" and "slurm-node2" in mine["detail"]
    finally:
        cluster.start_slurmd("slurm-node2")
        for node in cluster.nodes:
            cluster.exec(node, "docker ps -aq --filter label=opskit.run=sl-l | xargs -r docker rm -f")


def test_a_node_down_at_submission_is_left_out(cluster, env, training_image):
    cluster.stop_slurmd("slurm-node2")
    try:
        wait_until(lambda: "*" in cluster.node_states()["slurm-node2"][0], 90, "slurm-node2 not responding",
                   interval=1)
        res = submit(env, training_image, "sl-x", "--nodes", "1", "--shared-dir", cluster.shared_dir, "--json",
                     "--remove-remote", steps=20)
        assert res.returncode == 0, res.stderr[-3000:]
        doc = json.loads(res.stdout)  # --remove-remote as collect's: the run's whole folder, once verified here
        assert doc["removed_remote"] == ["slurm-login:/shared/opskit/runs/sl-x"] and doc["kept_on_cluster"] == []
        assert cluster.exec(cluster.login, ["test", "-e", "/shared/opskit/runs/sl-x"])[0] != 0
        assert (doc["state"], doc["nodes"], doc["candidates"]) == ("exited", "slurm-node1", ["slurm-node1"])
        assert "[slurm-node2] left out: Slurm says" in res.stderr and "(not responding)" in res.stderr
        assert "--exclude slurm-node2: the image is not on them" in res.stderr
        assert "#SBATCH --exclude=slurm-node2" in (Path(doc["local_dir"]) / "job.sbatch").read_text()
    finally:
        cluster.start_slurmd("slurm-node2")


def test_client_lost_after_submission_the_job_goes_on(cluster, env, training_image):
    proc = subprocess.Popen([sys.executable, "-m", "opskit", "run-remote", "--host", "slurm-login", "--scheduler",
                             "slurm", "--image", training_image, "--run-id", "sl-d", "--nodes", "2",
                             "--shared-dir", cluster.shared_dir, *TRAIN, "--steps", "300", "--log-every", "10"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: (Path(env["OPSKIT_RUNS_DIR"]) / "sl-d" / "job.json").is_file()
                   and card(env, "sl-d").get("slurm"), 240, "sl-d submitted", interval=1)
        wait_steps(env, "sl-d")
    finally:
        proc.send_signal(signal.SIGKILL)  # the client and its connection to the login host are gone
        proc.wait()
    res = opskit(env, "logs", "sl-d", "-f")  # reattaches: from the start, to the end
    assert res.returncode == 0, res.stderr
    assert "[slurm-node1/node0] step 300/300" in res.stdout and "exited (exit 0)" in res.stderr
    res = opskit(env, "collect", "sl-d")
    assert res.returncode == 0 and "sha256-verified" in res.stdout


def test_login_host_without_sbatch(cluster, env, training_image):
    cluster.check(cluster.login, ["mv", "/usr/bin/sbatch", "/usr/bin/sbatch.off"])
    try:
        res = submit(env, training_image, "sl-n", "--nodes", "1")
    finally:
        cluster.check(cluster.login, ["mv", "/usr/bin/sbatch.off", "/usr/bin/sbatch"])
    assert res.returncode == 1
    assert "slurm-login: no sbatch on the PATH there" in res.stderr
    assert "give --host the cluster's login host" in res.stderr
    assert not (Path(env["OPSKIT_RUNS_DIR"]) / "sl-n").exists()


@pytest.mark.parametrize(("args", "said"), [
    (["--partition", "nope"], "sbatch: error: invalid partition specified: nope"),
    (["--gpus-per-node", "3"], "Requested node configuration is not available"),
    (["--nodes", "3"], "Requested node configuration is not available"),
])
def test_slurm_refusals_in_its_own_words(cluster, env, training_image, args, said):
    res = submit(env, training_image, "sl-r", *args)
    assert res.returncode == 1
    assert "slurm-login: Slurm refuses the job:" in res.stderr and said in res.stderr
    assert "nothing was submitted" in res.stderr
    assert not (Path(env["OPSKIT_RUNS_DIR"]) / "sl-r").exists()
