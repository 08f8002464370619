"""Two training processes on CPU with torchrun (gloo): DDP, DistributedSampler, rank 0 writes.

Proof that the processes train one model together: with lenet (no batch norm), 2 processes x
8 samples per step see, step by step, the same 16 samples as 1 process x 16 (the sampler
interleaves one permutation), and DDP averages their gradients, so the final weights equal
the single-process run's up to float summation order.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from opskit.jobs.nodes import torchrun_argv
from opskit.train.checkpoint import load_checkpoint
from opskit.train.entry import main

COMMON = ["lenet", "--small", "--steps", "6", "--train-samples", "256", "--val-samples", "32",
          "--threads", "1", "--device", "cpu", "--log-every", "3", "--lr", "1e-3"]  # fmt: skip


def test_torchrun_two_processes_on_cpu(tmp_path):
    out = tmp_path / "ddp"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "opskit.train", *COMMON, "--batch-size", "8", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2
    assert json.loads((out / "run_card.json").read_text())["world_size"] == 2
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    # Only rank 0 writes: one line per logging point, not two.
    assert [(x["kind"], x["step"]) for x in lines] == [("train", 3), ("train", 6), ("eval", 6)]
    assert proc.stdout.count("eval step 6") == 1
    assert_summed_throughput(lines, 2)
    # A resume with another number of processes is refused (the batches would change).
    code = main([*COMMON, "--batch-size", "8", "--out", str(out), "--resume", "--progress",
                 "none"])  # fmt: skip
    assert code == 2

    single = tmp_path / "single"
    assert main([*COMMON, "--batch-size", "16", "--out", str(single), "--progress", "none"]) == 0
    w_ddp = load_checkpoint(out / "checkpoints" / "last.pt")["model"]
    w_one = load_checkpoint(single / "checkpoints" / "last.pt")["model"]
    for key, value in w_one.items():
        assert torch.allclose(w_ddp[key], value, atol=1e-5), key
    # ... and training did move the weights (the comparison is not between two inits).
    torch.manual_seed(0)
    from opskit.models.registry import get_model, get_model_info

    init = get_model("lenet", **get_model_info("lenet").small).state_dict()
    assert any(not torch.allclose(init[k], v, atol=1e-4) for k, v in w_one.items())


def assert_summed_throughput(lines: list, world: int) -> None:
    """Every train line: the world size, and the run's items/s = the sum of the ranks' own."""
    for line in (x for x in lines if x["kind"] == "train"):
        assert line["world_size"] == world
        ranks = line["items_per_s_ranks"]
        assert len(ranks) == world and all(r > 0 for r in ranks)
        assert line["items_per_s"] == pytest.approx(sum(ranks))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_launcher(launcher: str, node: int, port: int) -> list[str]:
    """torchrun itself, or the line opskit runs on each node (opskit.jobs.nodes.torchrun_argv:
    the static rendezvous, workers forked from opskit.train.torchrun after its imports)."""
    if launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(node),
                "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port", str(port)]
    return [sys.executable, "-m", "opskit.train.torchrun",
            *torchrun_argv(nnodes=2, nproc=1, node_rank=node, addr="127.0.0.1", port=port, run_id="t")]


@pytest.mark.parametrize("launcher", ["torchrun", "opskit-node"])
def test_two_nodes_write_one_metrics_file_from_global_rank_0(tmp_path, launcher):
    """Two torchrun agents (--nnodes 2, one process each) sharing one --out, as two hosts
    sharing a folder would: node 1's local rank 0 writes nothing, rank 0 writes each line once
    with the world size and the summed throughput. The same with opskit's node line."""
    out, port = tmp_path / "nodes", free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    procs = [
        subprocess.Popen(
            [*node_launcher(launcher, node, port), "-m", "opskit.train", *COMMON, "--batch-size", "8",
             "--out", str(out)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        for node in (0, 1)
    ]
    try:
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(x["kind"], x["step"]) for x in lines] == [("train", 3), ("train", 6), ("eval", 6)]
    assert_summed_throughput(lines, 2)
    card = json.loads((out / "run_card.json").read_text())
    assert (card["world_size"], card["nodes"]) == (2, 2)
    assert card["resolved"]["global_batch_size"] == 16
    assert "eval step 6" in outputs[0] and "eval step 6" not in outputs[1]


@pytest.mark.parametrize("module", ["torch.distributed.run", "opskit.train.torchrun"])
def test_sigterm_to_torchrun_checkpoints_once_and_resumes(tmp_path, module):
    """torchrun forwards SIGTERM to both ranks; they agree on one step, rank 0 checkpoints.
    opskit's node launcher (workers forked after its imports) does the same and exits 143."""
    import signal
    import time

    out = tmp_path / "ddp"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    warm = module == "opskit.train.torchrun"  # the line opskit runs, here for one node of two processes
    node = torchrun_argv(nnodes=1, nproc=2, node_rank=0, addr="127.0.0.1", port=free_port(), run_id="s")
    launcher = [sys.executable, "-m", module, *(node if warm else ["--standalone", "--nproc_per_node=2"]),
                "-m", "opskit.train"]  # fmt: skip
    opts = ["lenet", "--small", "--batch-size", "8", "--train-samples", "256", "--val-samples",
            "16", "--threads", "1", "--device", "cpu", "--log-every", "2", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen([*launcher, *opts, "--steps", "100000"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        metrics, deadline = out / "metrics.jsonl", time.monotonic() + 180
        while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "no metrics within 180 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # torchrun reports the signal as a failure of its own; opskit's launcher as the signal's exit
    assert proc.returncode == 143 if warm else proc.returncode != 0, output[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["exit_code"] == 143, output[-3000:]
    stopped = summary["step"]
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == stopped
    assert output.count("SIGTERM: checkpoint written") == 1  # rank 0 only

    resumed = subprocess.run([*launcher, *opts, "--steps", str(stopped + 4), "--resume"],
                             env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["step"] == stopped + 4
