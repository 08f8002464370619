"""Bounds on what a host can make opskit hold or wait for.

- Output captured from one command is kept in memory up to ``max_output()`` bytes per stream
  (``OPSKIT_MAX_OUTPUT_MB``, default 64); a command that prints more is stopped and reported,
  so a host that floods output cannot grow opskit without bound.
- A connection whose host stops answering is given up after ``keepalive x ALIVE_COUNT``
  seconds without a byte from it (see :mod:`opskit.hosts.liveness`), as OpenSSH's
  ``ServerAliveInterval``/``ServerAliveCountMax`` do.
"""

from __future__ import annotations

from opskit.errors import HostError

DEFAULT_MAX_OUTPUT_MB = 64
ALIVE_COUNT = 3  # OpenSSH's ServerAliveCountMax default


def max_output() -> int:
    from opskit import settings

    raw = settings.get("max_output_mb")
    try:
        mb = float(raw) if raw else DEFAULT_MAX_OUTPUT_MB
    except ValueError:
        mb = DEFAULT_MAX_OUTPUT_MB
    return max(1, int(mb * (1 << 20)))


class OutputTooLarge(Exception):
    def __init__(self, stream: str, limit: int):
        super().__init__(stream)
        self.stream = stream
        self.limit = limit


def too_large_error(host: str, command: str, exc: OutputTooLarge) -> HostError:
    mib = exc.limit / (1 << 20)
    return HostError(
        host,
        f"command {command!r} printed more than {mib:g} MiB on {exc.stream}; stopped it "
        f"(opskit keeps at most {mib:g} MiB of a command's output)",
        "the host sends endless output: check the command there; OPSKIT_MAX_OUTPUT_MB raises the limit",
    )
