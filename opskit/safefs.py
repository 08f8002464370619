"""Local writes that never follow a symbolic link, for folders whose names come from elsewhere.

Each folder on the way is opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to the one before
(``openat``), files are opened with ``O_NOFOLLOW``, and renames go between folder descriptors
(``renameat``): a link planted at any name on the path makes the operation fail with an error
naming it, instead of writing wherever the link points.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from opskit.errors import UnsafeInputError

CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _refuse(where: str, exc: OSError) -> UnsafeInputError:
    return UnsafeInputError(
        f"refusing to write through {where}: it is a symbolic link or not a folder ({exc.strerror})",
        "remove that link; opskit never writes through links",
    )


@contextlib.contextmanager
def open_dir(root: str | os.PathLike, rel: str = "", create: bool = True) -> Iterator[int]:
    """A descriptor of ``root/rel``, walked one name at a time without following links.

    ``root`` itself is opened with ``O_NOFOLLOW`` too (its parents are the caller's).
    """
    root = Path(root)
    if create:
        root.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        raise _refuse(str(root), exc) from exc
    try:
        for name in [p for p in rel.split("/") if p]:
            if name in (".", ".."):
                raise UnsafeInputError(f"refusing path {rel!r}: it contains {name!r}")
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=fd)
            try:
                nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ENOENT and not create:
                    raise
                raise _refuse(str(root / rel), exc) from exc
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def open_file(dir_fd: int, name: str, flags: int, mode: int = 0o666) -> int:
    """``openat(dir_fd, name, flags | O_NOFOLLOW)``: a link at ``name`` is refused (ELOOP)."""
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR):
            raise _refuse(name, exc) from exc
        raise


def sha256_at(dir_fd: int, name: str) -> str | None:
    """sha256 of the regular file ``name`` in ``dir_fd``; None if there is none (no link followed)."""
    try:
        fd = open_file(dir_fd, name, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as fh:
        h = hashlib.sha256()
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
        return h.hexdigest()


def split(rel: str) -> tuple[str, str]:
    """``a/b/c`` -> (``a/b``, ``c``)."""
    head, _, tail = rel.rpartition("/")
    return head, tail
