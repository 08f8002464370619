"""What opskit does to files on a host, made safe against a hostile run folder.

A run's folder on the host (``~/.opskit/runs/RUN``) is the container's ``/out``: the
container can leave anything there, symbolic links included, under any name. So:

- opskit's own files about a run (the saved logs, the reference manifest) live in
  ``~/.opskit/records/RUN``, a folder no container ever sees;
- every file opskit writes on the host is written into a fresh folder made by ``mktemp -d``
  and renamed into place (``rename`` replaces a link, it never follows one);
- the run folder is listed without following links (``find -P``), files are hashed only when
  ``[ -f ] && [ ! -L ]`` holds, one at a time under a time limit of their own, and removed by
  exact name (``rm`` never follows the link it removes);
- every folder opskit makes under ``~/.opskit`` is private to the login user (0700, files 0600
  through ``umask 077``), whatever the login session's umask.

File names travel as NUL-separated bytes on stdin, never through a shell's parser.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from opskit.errors import HostError
from opskit.hosts.privatedirs import private_dirs  # noqa: F401 - part of this module's interface
from opskit.hosts.transport import Transport

RECORDS_DIR = ".opskit/records"  # under the login user's home; never mounted into a container
LOGS = "logs.txt"
MANIFEST = "manifest.json"

# $1 = folder, $2 = final name inside it; stdin (or the command) -> a fresh temp folder -> rename.
_WRITE_STDIN = (
    'umask 077 && mkdir -p -- "$1" && d=$(mktemp -d -- "$1/.opskit-tmp.XXXXXXXX") || exit 3\n'
    'if cat > "$d/f"; then mv -fT -- "$d/f" "$1/$2"; rc=$?; else rc=$?; fi\n'
    'rm -rf -- "$d"; exit $rc'
)
# $1 = folder, $2 = final name, $3 = container: its output, saved the same way.
_WRITE_LOGS = (
    'umask 077 && mkdir -p -- "$1" && d=$(mktemp -d -- "$1/.opskit-tmp.XXXXXXXX") || exit 3\n'
    'if docker logs "$3" > "$d/f" 2>&1; then mv -fT -- "$d/f" "$1/$2"; rc=$?; else rc=$?; fi\n'
    'rm -rf -- "$d"; exit $rc'
)
# Everything but folders, not following links: type, size and name, NUL-separated.
_LIST = "cd -P -- \"$1\" && find . -mindepth 1 ! -type d -printf '%y\\0%s\\0%P\\0'"
# NUL-separated names on stdin -> "status NUL name NUL hash NUL" each, one time limit per file.
_HASH = (
    'cd -P -- "$1" || exit 3\n'
    "xargs -0 -r sh -c '\n"
    "t=$0\n"
    'for f; do\n'
    '  if [ -L "$f" ] || [ ! -f "$f" ]; then printf "%s\\0%s\\0\\0" 2 "$f"; continue; fi\n'
    '  h=$(timeout -s KILL "$t" sha256sum < "$f"); rc=$?\n'
    '  printf "%s\\0%s\\0%s\\0" "$rc" "$f" "${h%% *}"\n'
    "done' \"$2\""
)
# NUL-separated names on stdin: removed exactly (never following links), then empty folders.
_REMOVE = (
    'cd -P -- "$1" || exit 3\n'
    "xargs -0 -r rm -f -- 2>/dev/null\n"  # what cannot be removed stays, and is listed as kept
    "find . -mindepth 1 -depth -type d -empty -delete 2>/dev/null\n"
    'cd / && rmdir -- "$1" 2>/dev/null; exit 0'
)


@dataclass(frozen=True)
class Entry:
    """One thing in a run folder on the host, as ``find -P`` saw it."""

    path: str  # relative to the run folder
    kind: str  # find's %y: f regular, l link, p fifo, s socket, b/c device, ...
    size: int


@dataclass(frozen=True)
class Hashed:
    path: str
    status: int  # 0 hashed; 2 not a regular file any more; 124/137 over the time limit; else unreadable
    sha256: str


def records_dir(home: str, run_id: str) -> str:
    return f"{home.rstrip('/')}/{RECORDS_DIR}/{run_id}"


def write_file(transport: Transport, folder: str, name: str, data: bytes) -> None:
    """Write ``folder/name`` on the host through a fresh temp folder and a rename."""
    res = transport.run(["sh", "-c", _WRITE_STDIN, "sh", folder, name], stdin=data, timeout=300)
    res.check(f"opskit writes its records under {folder}: check the disk space and rights there")


def save_logs(transport: Transport, folder: str, container: str) -> None:
    """Save the container's output as ``folder/logs.txt`` on the host (temp folder + rename)."""
    res = transport.run(["sh", "-c", _WRITE_LOGS, "sh", folder, LOGS, container], timeout=600)
    res.check(f"the run's output could not be saved under {folder}: check the disk space there")


def _fields(stdout: str) -> list[str]:
    parts = stdout.split("\0")
    if parts and parts[-1] == "":
        parts.pop()
    return parts


def list_run(transport: Transport, run_dir: str, timeout: float = 600) -> list[Entry]:
    """Everything in the run folder but folders, without following links."""
    res = transport.run(["sh", "-c", _LIST, "sh", run_dir], timeout=timeout)
    res.check("the run's folder on the host must be readable by the login user")
    parts = _fields(res.stdout)
    if len(parts) % 3:
        raise HostError(transport.host, f"unexpected listing of {run_dir} (find -printf)")
    return [Entry(parts[i + 2], parts[i], int(parts[i + 1])) for i in range(0, len(parts), 3)]


def hash_files(transport: Transport, run_dir: str, paths: Sequence[str], per_file_s: float) -> list[Hashed]:
    """sha256 of each file, each under its own time limit ``per_file_s``.

    If the host command as a whole passes the transport's time limit, the list is halved and
    each half tried again, so that one slow file is isolated and named (status 124) instead
    of costing the others their hashes.
    """
    if not paths:
        return []
    try:
        return _hash_batch(transport, run_dir, paths, per_file_s)
    except HostError as exc:
        if not _timed_out(exc):
            raise
    if len(paths) == 1:
        return [Hashed(paths[0], 124, "")]
    half = len(paths) // 2
    return hash_files(transport, run_dir, paths[:half], per_file_s) + hash_files(
        transport, run_dir, paths[half:], per_file_s)


def _timed_out(exc: HostError) -> bool:
    import subprocess

    return isinstance(exc.__cause__, (TimeoutError, subprocess.TimeoutExpired))


def _hash_batch(transport: Transport, run_dir: str, paths: Sequence[str], per_file_s: float) -> list[Hashed]:
    stdin = b"".join(p.encode() + b"\0" for p in paths)
    limit = 60 + len(paths) * (per_file_s + 1)
    res = transport.run(["sh", "-c", _HASH, "sh", run_dir, f"{per_file_s:g}"], stdin=stdin, timeout=limit)
    parts = _fields(res.stdout)
    if len(parts) % 3 or (not res.ok and not parts):
        res.check("the run's files on the host must be readable by the login user")
        raise HostError(transport.host, f"unexpected output hashing files in {run_dir}")
    return [Hashed(parts[i + 1], int(parts[i]), parts[i + 2]) for i in range(0, len(parts), 3)]


def remove_files(transport: Transport, run_dir: str, paths: Iterable[str]) -> None:
    """Remove exactly ``paths`` from the run folder, then the folders left empty."""
    stdin = b"".join(p.encode() + b"\0" for p in paths)
    transport.run(["sh", "-c", _REMOVE, "sh", run_dir], stdin=stdin, timeout=600).check(
        f"the host's copies in {run_dir} could not be removed"
    )


def remove_tree(transport: Transport, path: str) -> None:
    """``rm -rf`` one of opskit's own folders (never one a container could write)."""
    if posixpath.basename(path.rstrip("/")) in ("", ".", ".."):
        raise ValueError(f"refusing to remove {path!r}")
    transport.run(["rm", "-rf", "--", path], timeout=600).check()
