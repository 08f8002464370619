"""opskit.train.torchrun: which command lines start workers warm, and what the preload does.

The launcher itself runs for real in tests/integration/test_train_distributed.py (two nodes on
loopback; SIGTERM, checkpoint, exit 143, resume) and on Docker-in-Docker hosts in
tests/integration/test_run_multihost.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from opskit.train.torchrun import warm_start

NODE = ["--nnodes", "2", "--node-rank", "0", "--rdzv-backend", "static", "--master-addr", "10.0.0.1"]


@pytest.mark.parametrize(("argv", "warm"), [
    ([*NODE, "--start-method", "fork", "-m", "opskit.train", "lenet"], True),
    ([*NODE, "--start_method=fork", "--module", "opskit.train", "lenet"], True),
    ([*NODE, "--start-method", "spawn", "-m", "opskit.train", "lenet"], False),
    ([*NODE, "-m", "opskit.train", "lenet"], False),  # torchrun's default: spawn
    ([*NODE, "--start-method", "forkserver", "-m", "opskit.train", "lenet"], False),
    ([*NODE, "--start-method", "fork", "-m", "other.module", "x"], False),  # only opskit's entry
    ([*NODE, "--start-method", "fork", "train.py", "-m", "opskit.train"], False),  # a script, not the module
    ([*NODE, "-m", "opskit.train", "lenet", "--start-method", "fork"], False),  # a training argument
    (["--standalone", "--start-method", "fork", "-m", "opskit.train", "lenet"], False),  # torchrun's own
])
def test_warm_start_only_for_fork_and_the_training_module(argv, warm):
    from torch.distributed.run import parse_args  # torchrun's own reading of the line

    assert warm_start(parse_args(argv)) is warm


def test_the_preload_touches_no_gpu_and_starts_no_python_thread():
    """The workers are forked from the process that imported it: no CUDA call, no tensor
    work, no Python thread may happen at import (a forked child must not inherit them)."""
    code = (
        "import threading, torch, torch.cuda as c\n"
        "calls = []\n"
        "for n in ('is_available', 'device_count', 'init', '_lazy_init', 'current_device', 'set_device'):\n"
        "    setattr(c, n, lambda *a, _n=n, **k: calls.append(_n))\n"
        "import opskit.train.preload, opskit.train.entry\n"
        "print(calls, threading.active_count(), c.is_initialized())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == "[] 1 False"
