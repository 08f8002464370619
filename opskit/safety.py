"""Refuse inputs that could be read as shell syntax or options, before any connection.

Commands are always built from argv lists and joined with ``shlex.join``; these checks are
the second fence: a host name or mode with shell metacharacters, a path or name with control
characters or newlines, and a leading ``-`` are refused with an error that names them. A path
may hold any other character a filesystem allows (``&``, ``$``, quotes, spaces).
"""

from __future__ import annotations

import posixpath
import re

from opskit.errors import UnsafeInputError

# \Z, not $: "$" also matches before a trailing newline ("gpu1\n" would pass).
_HOST_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
_USER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_host_name(name: str, what: str = "host name") -> str:
    """A host or group member name: letters, digits, ``_ . -``; never a leading ``-``."""
    if not name or not _HOST_RE.match(name):
        raise UnsafeInputError(
            f"refusing {what} {name!r}: only letters, digits, '.', '_' and '-' are allowed, "
            "and it may not start with '-'",
            "use the name from your inventory or ~/.ssh/config",
        )
    return name


def check_user_name(name: str) -> str:
    if not _USER_RE.match(name):
        raise UnsafeInputError(f"refusing user name {name!r}: not a valid POSIX user name")
    return name


def check_listed_name(name: str, what: str = "name") -> str:
    """A name only compared with what a host lists (a user in ``ps --user``): anything a
    directory service allows (``alice@corp.example.com``, ``CORP\\alice``, ``host$``) except
    empty and control characters, since it never reaches a shell or the host."""
    if not name or _CONTROL.search(name):
        raise UnsafeInputError(f"refusing {what} {name!r}: empty or a control character")
    return name


def check_path(path: str, what: str = "path") -> str:
    """A path given on the command line: any name the filesystem allows (``R&D notes.txt``,
    ``price $5.txt``, ``say "hi".txt``: paths travel as argv items and SFTP requests, never
    through a shell), except a leading ``-`` (it could be read as an option) and control
    characters or newlines (they cannot be shown or typed back safely)."""
    if not path:
        raise UnsafeInputError(f"refusing empty {what}")
    if _CONTROL.search(path):
        raise UnsafeInputError(
            f"refusing {what} {path!r}: it contains a control character or newline"
        )
    if path.startswith("-"):
        raise UnsafeInputError(
            f"refusing {what} {path!r}: it starts with '-' and could be read as an option",
            f"write ./{path} if you mean a file of that name",
        )
    return path


def check_remote_name(name: str, base: str = "") -> str:
    """A file name received from a remote host (e.g. while copying a folder back).

    Refuses absolute names, ``..`` components and control characters, so that a hostile or
    broken host can never make us write outside the destination folder.
    """
    if not name or _CONTROL.search(name):
        raise UnsafeInputError(f"refusing remote file name {name!r}: empty or control characters")
    if name.startswith("/") or posixpath.isabs(name):
        raise UnsafeInputError(f"refusing remote file name {name!r}: it is absolute")
    parts = name.split("/")
    if any(p == ".." for p in parts):
        raise UnsafeInputError(f"refusing remote file name {name!r}: it contains '..'")
    norm = posixpath.normpath(posixpath.join(base or ".", name))
    if base and not (norm == base or norm.startswith(base.rstrip("/") + "/")):
        raise UnsafeInputError(f"refusing remote file name {name!r}: it leaves {base!r}")
    return name


def check_mode(mode: str) -> str:
    """A chmod mode GNU chmod accepts (octal like 755 or 00755, symbolic like u+x-w,go=r,
    or =755, -6000); anything else is refused with the reason (see ``files.modes``)."""
    from opskit.files.modes import parse_mode

    parse_mode(mode)
    return mode
