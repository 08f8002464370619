"""torchrun as one node of an opskit multi-host job: ``python -m opskit.train.torchrun ARGS``.

Takes torchrun's own arguments (``python -m torch.distributed.run ARGS``) and does what it
does, with two differences:

- a node stopped by a signal (``opskit cancel`` sends SIGTERM: the workers checkpoint, then
  torchrun shuts down) exits 128+N as a process killed by that signal does (143 for SIGTERM),
  where torchrun itself exits 1 with a traceback. ``opskit jobs`` then says "interrupted" for
  a cancelled node and "failed" only for a failed one;
- ``--start-method fork`` with ``-m opskit.train`` starts the workers warm: this process
  imports what every training process imports (:mod:`opskit.train.preload`: torch and the
  entry; no CUDA, no tensor work) before it meets the other nodes, and each worker is forked
  from it and runs the entry as a function, torchrun's documented path for a function
  entrypoint. torchrun would otherwise start ``python -m opskit.train`` per worker after the
  rendezvous, which imports torch a second time on every node (measured: about 1 s of CPU
  per worker, on the critical path; bench/multihost.py). Every other start method, another
  script, or ``--standalone``, runs torchrun unchanged (a subprocess per worker).
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from typing import Any

ENTRY_MODULE = "opskit.train"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # training does not use numpy
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.run import main as torchrun
    from torch.distributed.run import parse_args

    args = parse_args(argv)
    try:
        if warm_start(args):
            launch_warm(args)
        else:
            torchrun(argv)
    except SignalException as exc:
        print(f"torchrun: stopped by {exc.sigval.name}; the workers had their grace period", file=sys.stderr)
        return 128 + int(exc.sigval)
    return 0


def warm_start(args: Any) -> bool:
    """Whether torchrun's parsed arguments run ``-m opskit.train`` with ``--start-method fork``."""
    return (args.start_method == "fork" and args.module and args.training_script == ENTRY_MODULE
            and not args.no_python and not args.run_path and not args.standalone)


def launch_warm(args: Any) -> None:
    """torchrun's own launch (its configuration, its agent and rendezvous), with :func:`worker`
    as the entrypoint function in place of ``python -m opskit.train``, after this process
    imported :mod:`opskit.train.preload` (the workers are forked from it)."""
    from torch.distributed.elastic.multiprocessing.errors import record
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args

    import opskit.train.preload  # noqa: F401

    if args.master_port is None:  # as torchrun's run() does (only the static rendezvous reads it)
        args.master_port = 29500
    config, _, _ = config_from_args(args)
    record(elastic_launch(config=config, entrypoint=worker))(*args.training_script_args)


def worker(*argv: str) -> None:
    """One worker, forked from torchrun: ``python -m opskit.train ARGV`` as a function."""
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):  # torchrun's handlers are its own
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit():  # torchrun sets it for the workers, after torch read the environment
        import torch

        torch.set_num_threads(int(threads))
    from opskit.train.entry import main as entry

    code = entry(list(argv))
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    sys.exit(main())
