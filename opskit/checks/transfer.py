"""Verified copies between this machine and hosts: temp name, sha256, rename.

The promise: a failed copy never leaves a partial file at the final path and never damages an
existing good copy.

- A file is written to a hidden temporary name beside its destination
  (``.NAME.XXXXXXXX.opskit-part``), its mode is set, it is hashed on the destination host
  (``transport.sha256``: ``sha256sum`` remotely, hashlib locally) and compared with the hash of
  the bytes that were sent and with the source's own hash taken after the copy; only then is it
  renamed over the final path (``transport.rename``: SFTP posix-rename or ``os.replace``).
- A folder copied to a new name is built entirely in a temporary folder beside it and renamed
  into place after every file verified; a folder copied into an existing folder is merged file
  by file, each file atomically.
- On any failure the temporary file or folder is removed (through a fresh connection if the
  old one died); if even that fails, the error names what is left.
- File names listed on a host are checked with ``opskit.safety.check_remote_name``: a name with
  ``..``, ``/`` or control characters is refused before anything is written.

Both ends are transports, so local -> host, host -> local, local -> local and host -> host
(relayed through this machine: bytes flow host A -> here -> host B) all take the same path.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import posixpath
import secrets
import stat as stat_mod
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

from opskit.errors import (
    ChecksumMismatch,
    CommandFailed,
    HostError,
    OpskitError,
    TransferError,
    UsageError,
)
from opskit.hosts.transport import FileStat, Transport
from opskit.safety import check_remote_name

CHUNK = 256 * 1024
MAX_DEPTH = 64
MAX_ENTRIES = 100_000  # with MAX_DEPTH, ends symlink loops (stat follows links) in an error
PART_SUFFIX = ".opskit-part"
ByteCallback = Callable[[int], None]


@dataclass(frozen=True)
class Endpoint:
    """One side of a copy: a transport and a path on it. ``label`` is how the user wrote it."""

    transport: Transport
    path: str
    label: str = ""

    @property
    def host(self) -> str:
        return self.transport.host

    def where(self, path: str | None = None) -> str:
        p = self.path if path is None else path
        return p if self.transport.is_local else f"{self.host}:{p}"


@dataclass(frozen=True)
class FileItem:
    rel: str  # path below the copied folder ("" for a single file)
    size: int
    mode: int


@dataclass
class CopyPlan:
    """What a copy will do, worked out before a byte moves (sizes for the progress bar)."""

    src: Endpoint
    dst: Endpoint
    final: str  # the final path on the destination
    is_dir: bool
    merge: bool  # a folder copied into an existing folder (file by file)
    files: list[FileItem] = field(default_factory=list)
    dirs: list[tuple[str, int]] = field(default_factory=list)  # (rel, mode), parents first
    skipped: dict[str, str] = field(default_factory=dict)  # rel -> why it was left out

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class CopiedFile:
    path: str
    size: int
    sha256: str

    def to_dict(self) -> dict:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass
class CopyResult:
    source: str
    destination: str
    is_dir: bool
    files: list[CopiedFile]
    skipped: dict[str, str]  # path below the source -> why it was left out
    seconds: float

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "destination": self.destination,
            "folder": self.is_dir,
            "files": [f.to_dict() for f in self.files],
            "bytes": self.bytes,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped.items()],
            "seconds": round(self.seconds, 3),
            "verified": "sha256",
        }


# -- planning ---------------------------------------------------------------------------------
def _join(base: str, rel: str) -> str:
    if not rel:
        return base
    return rel if base in (".", "./") else posixpath.join(base, rel)


def _parent(path: str) -> str:
    return posixpath.dirname(path.rstrip("/")) or ("/" if path.startswith("/") else ".")


def _base_name(path: str) -> str:
    name = posixpath.basename(posixpath.normpath(path))
    return "" if name in ("", ".", "..", "/") else name


def _stat(ep: Endpoint, path: str, doing: str) -> FileStat | None:
    try:
        return ep.transport.stat(path)
    except OpskitError:
        raise
    except PermissionError as exc:
        raise TransferError(
            f"permission denied {doing} {ep.where(path)}",
            "the login user may not enter a folder on that path; use a path it may use",
        ) from exc
    except Exception as exc:  # noqa: BLE001 - a dead connection or an odd entry, named
        loop = isinstance(exc, OSError) and exc.errno == errno.ELOOP
        raise TransferError(
            f"cannot look at {ep.where(path)}: {'a symlink loop' if loop else _describe(exc)}",
            "remove the looping link or copy the folder's parts one by one" if loop else None,
        ) from exc


def _listdir(ep: Endpoint, folder: str) -> list[str]:
    try:
        return ep.transport.listdir(folder)
    except OpskitError:
        raise
    except PermissionError as exc:
        raise TransferError(
            f"permission denied listing {ep.where(folder)}",
            "the login user may not read that folder; copy what it may read, or fix the modes",
        ) from exc
    except Exception as exc:  # noqa: BLE001 - a dead connection, named
        raise TransferError(f"cannot list {ep.where(folder)}: {_describe(exc)}") from exc


def _final_path(plan_src: FileStat, src: Endpoint, dst: Endpoint) -> tuple[str, bool]:
    """Where the copy lands, scp-style, and whether it merges into an existing folder."""
    dst_st = _stat(dst, dst.path, "looking at")
    if dst_st is not None and dst_st.is_dir:
        name = _base_name(src.path)
        if not name:
            raise UsageError(
                f"cannot tell which name {src.where()} should get inside {dst.where()}",
                "give the destination's full name, e.g. DEST/NAME",
            )
        final = _join(dst.path, name)
        final_st = _stat(dst, final, "looking at")
        if final_st is not None and final_st.is_dir != plan_src.is_dir:
            kinds = ("a folder", "a file") if final_st.is_dir else ("a file", "a folder")
            raise UsageError(f"{dst.where(final)} is {kinds[0]}; the source is {kinds[1]}")
        return final, bool(final_st is not None and final_st.is_dir)
    if dst_st is not None and plan_src.is_dir:
        raise UsageError(f"{dst.where()} is a file; the source {src.where()} is a folder")
    if dst_st is None:
        if dst.path.endswith("/"):
            raise UsageError(
                f"destination folder {dst.where()} does not exist",
                "create it first, or leave out the trailing '/' to copy to that name",
            )
        parent = _parent(dst.path)
        parent_st = _stat(dst, parent, "looking at")
        if parent_st is None or not parent_st.is_dir:
            raise UsageError(
                f"destination folder {dst.where(parent)} does not exist",
                "create it first (mkdir -p) or check the path",
            )
    return dst.path, False


def _walk(src: Endpoint, root: str, plan: CopyPlan, rel: str = "", depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise TransferError(
            f"{src.where(root)} is nested more than {MAX_DEPTH} folders deep (a symlink loop?)"
        )
    folder = _join(root, rel)
    names = _listdir(src, folder)
    if len(plan.files) + len(plan.dirs) + len(plan.skipped) + len(names) > MAX_ENTRIES:
        raise TransferError(
            f"{src.where(root)} holds more than {MAX_ENTRIES} files and folders "
            "(or a symlink loop)", "copy its parts one by one, or archive it first (tar)",
        )
    for name in names:
        check_remote_name(name)
        if "/" in name:
            raise TransferError(f"refusing file name {name!r} listed in {src.where(folder)}")
        child_rel = _join(rel, name) if rel else name
        if name.endswith(PART_SUFFIX):
            plan.skipped[child_rel] = "an unfinished opskit copy (temporary file)"
            continue
        st = _stat(src, _join(root, child_rel), "reading")
        if st is None:
            plan.skipped[child_rel] = "vanished, or a symlink to nothing"
        elif st.is_dir:
            plan.dirs.append((child_rel, stat_mod.S_IMODE(st.mode)))
            _walk(src, root, plan, child_rel, depth + 1)
        elif stat_mod.S_ISREG(st.mode):
            plan.files.append(FileItem(child_rel, st.size, stat_mod.S_IMODE(st.mode)))
        else:
            plan.skipped[child_rel] = "not a regular file or folder"


def plan_copy(src: Endpoint, dst: Endpoint, *, recursive: bool = False) -> CopyPlan:
    """Look at both ends (no bytes copied yet) and decide what goes where."""
    src_st = _stat(src, src.path, "reading")
    if src_st is None:
        raise UsageError(
            f"source {src.where()} does not exist",
            "check the path (relative remote paths start in the login user's home folder)",
        )
    if src_st.is_dir and not recursive:
        raise UsageError(f"source {src.where()} is a folder", "add -r to copy a folder")
    if not src_st.is_dir and not stat_mod.S_ISREG(src_st.mode):
        raise UsageError(f"source {src.where()} is not a regular file or folder")
    final, merge = _final_path(src_st, src, dst)
    plan = CopyPlan(src, dst, final, src_st.is_dir, merge)
    if src_st.is_dir:
        plan.dirs.append(("", stat_mod.S_IMODE(src_st.mode)))
        _walk(src, src.path, plan)
    else:
        plan.files.append(FileItem("", src_st.size, stat_mod.S_IMODE(src_st.mode)))
    return plan


# -- copying ----------------------------------------------------------------------------------
def part_name(final: str) -> str:
    """A fresh hidden temporary name beside ``final``."""
    return _join(_parent(final), f".{posixpath.basename(final)}.{secrets.token_hex(4)}{PART_SUFFIX}")


def _set_mode(t: Transport, fh: IO[bytes], path: str, mode: int) -> None:
    if t.is_local:
        os.chmod(path, mode)
    elif callable(getattr(fh, "chmod", None)):
        fh.chmod(mode)  # SFTP fsetstat on the open handle: no extra command
    else:
        t.run(["chmod", f"{mode:04o}", "--", path], check=True)


def _open(ep: Endpoint, path: str, mode: str) -> IO[bytes]:
    try:
        return ep.transport.open(path, mode)
    except PermissionError as exc:
        doing = f"reading {ep.where(path)}" if "r" in mode else f"writing in {ep.where(_parent(path))}"
        raise TransferError(
            f"permission denied {doing}",
            "check the permissions there, or use a path the login user may "
            + ("read" if "r" in mode else "write"),
        ) from exc


def _makedirs(ep: Endpoint, path: str, shown: str) -> None:
    try:
        ep.transport.makedirs(path)
    except (OSError, CommandFailed) as exc:
        detail = exc.result.stderr.strip() if isinstance(exc, CommandFailed) else _describe(exc)
        raise TransferError(
            f"cannot create a folder in {ep.where(shown)}: {detail}",
            "check that the folder exists and that the login user may write there",
        ) from exc


def _stream(src: Endpoint, src_path: str, dst: Endpoint, tmp: str, item: FileItem,
            on_bytes: ByteCallback | None) -> str:
    """Copy bytes src_path -> tmp; return the sha256 of what was sent."""
    digest = hashlib.sha256()
    with _open(src, src_path, "rb") as fin, _open(dst, tmp, "wb") as fout:
        _set_mode(dst.transport, fout, tmp, 0o600)  # private until complete
        if item.size and callable(getattr(fin, "prefetch", None)):
            fin.prefetch(item.size)  # SFTP: ask for all blocks at once instead of one by one
        while True:
            chunk = fin.read(CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            fout.write(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
        _set_mode(dst.transport, fout, tmp, item.mode)  # after writing: writes clear setuid
    return digest.hexdigest()


def _verify(src: Endpoint, src_path: str, dst: Endpoint, tmp: str, sent: str) -> None:
    written = dst.transport.sha256(tmp)
    if written != sent:
        raise ChecksumMismatch(
            f"sha256 of the copy on {dst.host} ({written[:16]}...) differs from the bytes sent "
            f"from {src.where(src_path)} ({sent[:16]}...); the final path was not touched",
            "run the copy again; if it keeps failing, check the disk of the destination",
        )
    now = src.transport.sha256(src_path)
    if now != sent:
        raise ChecksumMismatch(
            f"{src.where(src_path)} changed while it was being copied (sha256 {now[:16]}... now, "
            f"{sent[:16]}... sent); the final path was not touched",
            "copy it again once nothing writes to it",
        )


def _copy_one(plan: CopyPlan, item: FileItem, tmp: str, on_bytes: ByteCallback | None) -> str:
    src_path = _join(plan.src.path, item.rel)
    sent = _stream(plan.src, src_path, plan.dst, tmp, item, on_bytes)
    _verify(plan.src, src_path, plan.dst, tmp, sent)
    return sent


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PermissionError):
        return f"permission denied ({exc.strerror or exc})"
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder ({exc.filename or exc.strerror or exc})"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "closed" in text.lower() or "dropped" in text.lower():
        return f"connection lost ({text})"
    return f"{type(exc).__name__}: {text}"


def _remove_temp(t: Transport, path: str) -> str | None:
    """Remove a temporary file or folder; return a sentence if it could not be removed.

    A connection that died mid-copy may not look dead yet: after a first failure the
    transport is closed, so the second try opens a fresh connection.
    """
    for attempt in (1, 2):
        try:
            if t.stat(path) is not None:
                t.remove(path)
            return None
        except Exception as exc:  # noqa: BLE001 - retried once, then reported in the error
            if attempt == 2:
                return (f"the temporary {path} on {t.host} could not be removed "
                        f"({_describe(exc)}); remove it by hand")
            t.close()
    return None


def _drop_broken_connections(plan: CopyPlan, exc: BaseException) -> None:
    """After a fault that may have killed a connection, close it: the next use reconnects."""
    if isinstance(exc, OpskitError) and not isinstance(exc, HostError):
        return  # our own verdicts (checksum, usage): the connections are fine
    for ep in (plan.src, plan.dst):
        if not ep.transport.is_local:
            ep.transport.close()


@contextlib.contextmanager
def _removed_on_failure(plan: CopyPlan, temp: str) -> Iterator[None]:
    """Anything raised inside removes ``temp`` and becomes an error that says so."""
    try:
        yield
    except BaseException as exc:
        _drop_broken_connections(plan, exc)
        leftover = _remove_temp(plan.dst.transport, temp)
        if isinstance(exc, Exception):
            raise _fail(plan, exc, leftover) from exc
        raise


def _fail(plan: CopyPlan, exc: BaseException, leftover: str | None) -> OpskitError:
    where = plan.dst.where(plan.final)
    note = f"; {leftover}" if leftover else ""
    if isinstance(exc, OpskitError):
        if leftover:
            exc.message += note
        return exc
    return TransferError(
        f"copy {plan.src.where()} -> {where} failed: {_describe(exc)}; "
        f"nothing was written at {where}{note}",
        "fix the cause and run the same command again (a good copy already there is untouched)",
    )


def _copy_file_atomic(plan: CopyPlan, item: FileItem, final: str,
                      on_bytes: ByteCallback | None) -> CopiedFile:
    tmp = part_name(final)
    with _removed_on_failure(plan, tmp):
        sent = _copy_one(plan, item, tmp, on_bytes)
        plan.dst.transport.rename(tmp, final)
    return CopiedFile(plan.dst.where(final), item.size, sent)


def _set_dir_modes(dst: Endpoint, base: str, dirs: list[tuple[str, int]]) -> None:
    """Folder modes last (a read-only folder would stop the copy), one command per mode."""
    by_mode: dict[int, list[str]] = {}
    for rel, mode in dirs:
        by_mode.setdefault(mode, []).append(_join(base, rel))
    for mode, paths in sorted(by_mode.items()):
        for i in range(0, len(paths), 200):
            dst.transport.run(["chmod", f"{mode:04o}", "--", *paths[i : i + 200]], check=True)


def _copy_tree_staged(plan: CopyPlan, on_bytes: ByteCallback | None) -> list[CopiedFile]:
    """A folder to a new name: build it in a temporary folder, rename when all verified."""
    stage = part_name(plan.final)
    t = plan.dst.transport
    copied: list[CopiedFile] = []
    with _removed_on_failure(plan, stage):
        for rel, _mode in plan.dirs:
            _makedirs(plan.dst, _join(stage, rel), _parent(_join(plan.final, rel)))
        for item in plan.files:
            sent = _copy_one(plan, item, _join(stage, item.rel), on_bytes)
            copied.append(CopiedFile(plan.dst.where(_join(plan.final, item.rel)), item.size, sent))
        _set_dir_modes(plan.dst, stage, plan.dirs)
        t.rename(stage, plan.final)
    return copied


def _copy_tree_merge(plan: CopyPlan, on_bytes: ByteCallback | None) -> list[CopiedFile]:
    """A folder into an existing folder: each file atomically; new folders get their modes."""
    created: list[tuple[str, int]] = []
    for rel, mode in plan.dirs:
        path = _join(plan.final, rel)
        st = _stat(plan.dst, path, "looking at")
        if st is None:
            _makedirs(plan.dst, path, _parent(path))
            created.append((rel, mode))
        elif not st.is_dir:
            raise UsageError(f"{plan.dst.where(path)} is a file; the source has a folder there")
    copied = [
        _copy_file_atomic(plan, item, _join(plan.final, item.rel), on_bytes) for item in plan.files
    ]
    if created:
        _set_dir_modes(plan.dst, plan.final, created)
    return copied


def run_copy(plan: CopyPlan, on_bytes: ByteCallback | None = None) -> CopyResult:
    """Carry out a plan. Raises TransferError/ChecksumMismatch/HostError; nothing half-written."""
    start = time.monotonic()
    if not plan.is_dir:
        files = [_copy_file_atomic(plan, plan.files[0], plan.final, on_bytes)]
    elif plan.merge:
        files = _copy_tree_merge(plan, on_bytes)
    else:
        files = _copy_tree_staged(plan, on_bytes)
    return CopyResult(plan.src.where(), plan.dst.where(plan.final), plan.is_dir, files,
                      dict(plan.skipped), time.monotonic() - start)


def copy(src: Endpoint, dst: Endpoint, *, recursive: bool = False,
         on_bytes: ByteCallback | None = None) -> CopyResult:
    """Plan and run a verified copy (see the module docstring for the guarantees)."""
    return run_copy(plan_copy(src, dst, recursive=recursive), on_bytes)
