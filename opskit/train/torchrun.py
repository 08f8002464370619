"""torchrun as one node of an opskit multi-host job: ``python -m opskit.train.torchrun ARGS``.

The same as ``python -m torch.distributed.run ARGS``, with one difference: a node stopped by
a signal (``opskit cancel`` sends SIGTERM: the workers checkpoint, then torchrun shuts down)
exits 128+N as a process killed by that signal does (143 for SIGTERM), where torchrun itself
exits 1 with a traceback. ``opskit jobs`` then says "interrupted" for a cancelled node and
"failed" only for a failed one.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.run import main as torchrun

    try:
        torchrun(argv if argv is not None else sys.argv[1:])
    except SignalException as exc:
        print(f"torchrun: stopped by {exc.sigval.name}; the workers had their grace period", file=sys.stderr)
        return 128 + int(exc.sigval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
