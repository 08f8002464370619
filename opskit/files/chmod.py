"""File operations on hosts: where a path lives (``HOST:PATH``) and ``chmod``.

The verified copy itself is in :mod:`opskit.files.transfer`; mode parsing and explaining in
:mod:`opskit.files.modes`.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Sequence
from dataclasses import dataclass, field

from opskit.errors import CommandFailed, OpskitError
from opskit.hosts.transport import Transport
from opskit.safety import check_host_name, check_mode, check_path, check_user_name


@dataclass(frozen=True)
class Location:
    """``host`` is None for a plain local path; ``path`` exactly as written after the colon."""

    host: str | None
    path: str

    def __str__(self) -> str:
        return f"{self.host}:{self.path}" if self.host else self.path


def parse_location(text: str) -> Location:
    """scp's rule: ``HOST:PATH`` when a ``:`` comes before any ``/``, else a local path.

    ``./a:b`` and ``/x/a:b`` are local; ``gpu1:`` is the login folder on gpu1. Host names and
    paths are checked here, before any connection (``user@host:path`` is accepted too).
    """
    head, sep, tail = text.partition(":")
    if sep and head and "/" not in head:
        check_host_name(head.rsplit("@", 1)[-1])
        if "@" in head:
            check_user_name(head.rsplit("@", 1)[0])
        if tail:
            check_path(tail, f"path on {head}")
        return Location(head, tail)
    check_path(text)
    return Location(None, text)


def host_path(path: str, *, is_local: bool) -> str:
    """The path a transport should use: ``~`` expanded here; on a host, the login folder.

    Commands and SFTP on a host both start in the login user's home folder, so ``~/x`` is
    simply ``x`` there (no shell expands it for us: commands are argv lists).
    """
    if is_local:
        return os.path.expanduser(path) if path else "."
    if path in ("", "~", "~/"):
        return "."
    if path.startswith("~/"):
        return path[2:]
    return path


def current_umask() -> int:
    """This process's umask, read without changing it (Linux ``/proc``; 022 elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:  # no /proc (not Linux): the usual default below
        pass
    return 0o022


# -- chmod ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PathMode:
    path: str
    mode: int  # permission bits incl. setuid/setgid/sticky
    is_dir: bool

    @property
    def octal(self) -> str:
        return f"{self.mode:o}" if self.mode > 0o777 else f"{self.mode:03o}"

    @property
    def ls(self) -> str:
        kind = stat_mod.S_IFDIR if self.is_dir else stat_mod.S_IFREG
        return stat_mod.filemode(kind | self.mode)

    def to_dict(self) -> dict:
        return {"path": self.path, "mode": self.octal, "ls": self.ls, "folder": self.is_dir}


@dataclass
class ChmodResult:
    host: str
    mode: str
    recursive: bool
    paths: list[PathMode] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "host": self.host,
            "mode": self.mode,
            "recursive": self.recursive,
            "paths": [p.to_dict() for p in self.paths],
        }


def chmod_argv(mode: str, paths: Sequence[str], *, recursive: bool = False) -> list[str]:
    """``chmod [-R] -- MODE PATH...``: ``--`` first, so neither a mode like ``-w`` nor a path
    can be read as an option."""
    check_mode(mode)
    for p in paths:
        check_path(p)
    return ["chmod", *(["-R"] if recursive else []), "--", mode, *paths]


def read_modes(t: Transport, paths: Sequence[str]) -> list[PathMode]:
    """The modes of ``paths`` now (what ``stat -c %a`` and ``ls -l`` show)."""
    out = []
    for p in paths:
        st = t.stat(p)
        if st is None:
            raise OpskitError(f"{t.host}: {p} does not exist")
        out.append(PathMode(p, stat_mod.S_IMODE(st.mode), st.is_dir))
    return out


def change_mode(t: Transport, mode: str, paths: Sequence[str], *, recursive: bool = False) -> ChmodResult:
    """Run ``chmod`` on one host and read back the resulting modes."""
    real = [host_path(p, is_local=t.is_local) for p in paths]
    result = t.run(chmod_argv(mode, real, recursive=recursive))
    if not result.ok:
        raise CommandFailed(
            result,
            "check that the paths exist on that host and that its login user owns them "
            "(only the owner or root may change a mode)",
        )
    return ChmodResult(t.host, mode, recursive, read_modes(t, real))
