"""Folders opskit makes in a login user's home are that user's alone (0700), whatever the umask.

On a shared GPU host, ``~/.opskit`` holds staged image archives (code, and whatever went into
the image) and every run's results: other local users must not read them.
"""

from __future__ import annotations

from collections.abc import Sequence

from opskit.hosts.transport import Transport

_PRIVATE_DIRS = 'umask 077 && mkdir -p -- "$@" && chmod 700 -- "$@"'


def private_dirs(transport: Transport, home: str, rel_dirs: Sequence[str]) -> None:
    """Make ``home/.opskit`` and each ``home/REL`` (and the folders between) 0700."""
    home = home.rstrip("/")
    wanted: list[str] = []
    for rel in (".opskit", *rel_dirs):
        parts = rel.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            path = f"{home}/{'/'.join(parts[:i])}"
            if path not in wanted and path != home:
                wanted.append(path)
    transport.run(["sh", "-c", _PRIVATE_DIRS, "sh", *wanted], check=True)
