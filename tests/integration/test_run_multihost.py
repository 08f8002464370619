"""One job over two Docker-in-Docker hosts (gloo on CPU, torchrun on each): the real path of
``opskit run-remote --nodes 2``. Both hosts are containers on one Docker network, so each
reaches the other's container address; opskit must find and prove that address itself.

Cost: the session's two GPU hosts and the training image shipped to them (shared with
test_run_remote), then one two-node lenet --small run of 40 steps at --threads 1 (about a
minute here), a kill of one node mid-run, and two refusals that start nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import bed_env, run_opskit

from opskit.errors import WaitTimeout
from opskit.images import ship as shipmod
from opskit.waiting import wait_until

TRAIN = ["lenet", "--small", "--batch-size", "16", "--train-samples", "512", "--val-samples", "64",
         "--threads", "1", "--device", "cpu", "--lr", "3e-3"]


@pytest.fixture(scope="module")
def training_image(docker_client, base_image) -> str:
    """The default training image built from THIS tree under a tag of this module (the shared
    tag is rebuilt by other test modules from theirs): only its runtime layer is new."""
    from opskit.images.build import BuildRequest, build_image

    return build_image(BuildRequest(profile="offline", tag="opskit-train:multihost-tests"), client=docker_client).tag


@pytest.fixture(scope="module")
def hosts(docker_client, gpu_hosts, training_image):
    result = shipmod.ship(docker_client, training_image, gpu_hosts.specs())
    assert result.ok, result.failed
    return gpu_hosts


@pytest.fixture
def env(hosts, tmp_path) -> dict[str, str]:
    return bed_env(hosts, tmp_path)


def opskit(env: dict, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return run_opskit(env, *args, timeout=timeout)


def inspect(bed, name: str, fmt: str, container: str) -> str:
    """``docker inspect -f FMT`` inside the host (docker exec on a loaded machine has come back
    empty once: asked again then)."""
    out = ""
    for _ in range(3):
        code, out = bed.host(name).exec(["docker", "inspect", "-f", fmt, container])
        if code == 0 and out.strip():
            return out
    raise AssertionError(f"{name}: docker inspect {container}: {out!r}")


def addr_of(bed, name: str) -> str:
    code, out = bed.host(name).exec(["hostname", "-i"])  # eth0: the address Docker gave the host
    assert code == 0, out
    return out.split()[0]


def test_two_hosts_train_one_model(hosts, env, training_image):
    h1, h2 = hosts.names
    res = opskit(env, "run-remote", "--host", h1, "--host", h2, "--nodes", "2", "--gpus-per-node", "0",
                 "--image", training_image, "--run-id", "mh-a", *TRAIN, "--steps", "40", "--log-every", "10")
    assert res.returncode == 0, res.stderr[-4000:] + res.stdout[-2000:]
    rank0 = addr_of(hosts, h1)
    assert f"rendezvous at {rank0}:29400" in res.stderr  # a proved address of h1, not a name
    assert f"[{h2}] reaches {rank0}:29400 by eth0" in res.stderr
    assert "torchrun: --nnodes 2 --rdzv-backend static --rdzv-id mh-a --rdzv-conf timeout=120" in res.stderr
    assert f"[{h1}/rank0] " in res.stdout and "step 40/40" in res.stdout
    run = Path(env["OPSKIT_RUNS_DIR"]) / "mh-a"
    card = json.loads((run / "job.json").read_text())
    assert card["state"] == "exited" and card["node_states"] == {h1: "exited", h2: "exited"}
    nodes = card["nodes"]["nodes"]
    assert [(n["host"], n["rank"], n["addr"]) for n in nodes] == [(h1, 0, rank0), (h2, 1, addr_of(hosts, h2))]
    assert {n["ifname"] for n in nodes} == {"eth0"}
    summary = json.loads((run / "results/summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2
    losses = [m["loss"] for m in map(json.loads, (run / "results/metrics.jsonl").read_text().splitlines())
              if m["kind"] == "train"]
    assert len(losses) >= 4 and losses[-1] < losses[0] * 0.8, losses  # it learns
    assert (run / "nodes" / h2 / "logs.txt").is_file()  # every host's output came home
    # The containers ran torchrun on the host's network with the chosen interface.
    out = inspect(hosts, h2, "{{.HostConfig.NetworkMode}} {{json .Config.Env}}", "opskit-run-mh-a")
    assert out.startswith("host ") and "GLOO_SOCKET_IFNAME=eth0" in out, out
    jobs = opskit(env, "jobs")
    assert jobs.returncode == 0 and f"{h1}:exited {h2}:exited" in jobs.stdout, jobs.stdout


def test_a_killed_node_stops_the_other(hosts, env, training_image):
    h1, h2 = hosts.names
    proc = subprocess.Popen([sys.executable, "-m", "opskit", "run-remote", "--host", h1, "--host", h2,
                             "--nodes", "2", "--gpus-per-node", "0", "--image", training_image,
                             "--run-id", "mh-kill", *TRAIN, "--steps", "100000", "--log-every", "5"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def training() -> bool:
            code, out = hosts.host(h1).exec(["docker", "logs", "opskit-run-mh-kill"])
            return code == 0 and "step 10/" in out

        try:
            wait_until(training, 240, "the two-node run to train", interval=1)
        except WaitTimeout:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"no training: {err[-3000:]}{out[-2000:]}")
        hosts.host(h2).exec(["docker", "kill", "opskit-run-mh-kill"])
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err[-3000:]
    assert f"[{h2}] node 1 failed" in err and "stopping 1 other node(s)" in err, err[-3000:]
    card = json.loads((Path(env["OPSKIT_RUNS_DIR"]) / "mh-kill" / "job.json").read_text())
    assert card["stopped_by"] == h2 and card["node_states"][h1] != "running"
    assert inspect(hosts, h1, "{{.State.Status}}", "opskit-run-mh-kill").strip() == "exited"


def test_a_cancelled_run_resumes_on_the_hosts_swapped(hosts, env, training_image):
    h1, h2 = hosts.names
    common = ["--nodes", "2", "--gpus-per-node", "0", "--image", training_image]
    start = opskit(env, "run-remote", "--host", h1, "--host", h2, *common, "--run-id", "mh-c", "--detach",
                   *TRAIN, "--steps", "100000", "--log-every", "5")
    assert start.returncode == 0 and "stop all: opskit cancel mh-c" in start.stdout, start.stderr[-3000:]

    def training() -> bool:
        code, out = hosts.host(h1).exec(["docker", "logs", "opskit-run-mh-c"])
        return code == 0 and "step 10/" in out

    wait_until(training, 240, "the detached two-node run to train", interval=1)
    jobs = opskit(env, "jobs")
    assert f"{h1}:running {h2}:running" in jobs.stdout, jobs.stdout
    logs = opskit(env, "logs", "mh-c")
    assert logs.returncode == 0 and f"[{h1}/rank0] step 5/" in logs.stdout, logs.stdout[-2000:]
    cancel = opskit(env, "cancel", "mh-c", "--grace", "60")
    assert cancel.returncode == 0, cancel.stderr
    assert f"[{h1}] run mh-c: interrupted" in cancel.stderr and f"[{h2}] run mh-c: interrupted" in cancel.stderr
    got = opskit(env, "collect", "mh-c")
    assert got.returncode == 0, got.stderr
    run = Path(env["OPSKIT_RUNS_DIR"]) / "mh-c"
    summary = json.loads((run / "results/summary.json").read_text())
    assert summary["status"] == "interrupted", summary  # rank 0 checkpointed on SIGTERM
    assert (run / "nodes" / h2 / "logs.txt").is_file()

    again = opskit(env, "run-remote", "--host", h2, "--host", h1, *common, "--run-id", "mh-d", "--resume", "mh-c",
                   *TRAIN, "--steps", str(summary["step"] + 10), "--log-every", "5")
    assert again.returncode == 0, again.stderr[-3000:] + again.stdout[-2000:]
    assert f"resumed at step {summary['step']}" in again.stdout
    done = json.loads((Path(env["OPSKIT_RUNS_DIR"]) / "mh-d/results/summary.json").read_text())
    assert done["status"] == "completed" and done["step"] == summary["step"] + 10


def test_bad_inputs_start_nothing(hosts, env, training_image):
    h1, h2 = hosts.names
    few = opskit(env, "run-remote", "--host", h1, "--nodes", "2", "--image", training_image, *TRAIN)
    assert few.returncode == 2 and "--nodes 2 but only 1 host(s) given" in few.stderr, few.stderr
    # Something already listens on h1's rendezvous port: refused before any container starts.
    code, pid = hosts.host(h1).exec(["sh", "-c", "nohup python3 -m http.server 29411 >/dev/null 2>&1 & echo $!"])
    assert code == 0 and pid.strip().isdigit(), pid
    try:
        taken = opskit(env, "run-remote", "--host", h1, "--host", h2, "--nodes", "2", "--gpus-per-node", "0",
                       "--rdzv-port", "29411", "--image", training_image, "--run-id", "mh-port", *TRAIN)
    finally:
        hosts.host(h1).exec(["kill", pid.strip()])
    assert taken.returncode == 1 and f"{h1}: the rendezvous port 29411 is taken" in taken.stderr, taken.stderr
    for name in (h1, h2):
        code, _ = hosts.host(name).exec(["docker", "inspect", "opskit-run-mh-port"])
        assert code != 0  # nothing left behind
