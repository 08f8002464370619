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
- What goes where is worked out first (:mod:`opskit.files.copyplan`): names listed on a host
  with ``..``, ``/`` or control characters are refused before anything is written.

Both ends are transports, so local -> host, host -> local, local -> local and host -> host
(relayed through this machine: bytes flow host A -> here -> host B) all take the same path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import secrets
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
from opskit.files.copyplan import (
    PART_SUFFIX,
    CopyPlan,
    Endpoint,
    FileItem,
    describe,
    join_rel,
    parent_of,
    plan_copy,
    stat_path,
)
from opskit.hosts.transport import Transport

__all__ = ["PART_SUFFIX", "CopiedFile", "CopyPlan", "CopyResult", "Endpoint", "copy", "plan_copy",
           "run_copy"]

CHUNK = 256 * 1024
ByteCallback = Callable[[int], None]


@dataclass(frozen=True)
class CopiedFile:
    path: str
    size: int
    sha256: str
    mode: int = 0o644  # the mode the copy was given

    @property
    def special_bits(self) -> bool:
        return bool(self.mode & 0o7000)

    def to_dict(self) -> dict:
        return {"path": self.path, "size": self.size, "sha256": self.sha256,
                "mode": f"{self.mode:04o}"}


@dataclass
class CopyResult:
    source: str
    destination: str
    is_dir: bool
    files: list[CopiedFile]
    skipped: dict[str, str]  # path below the source -> why it was left out
    seconds: float
    refused: dict[str, str] = field(default_factory=dict)  # names that could not travel

    @property
    def ok(self) -> bool:
        """False when a name was refused (the rest was copied): the copy exits 1."""
        return not self.refused

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
            "refused": [{"path": p, "reason": r} for p, r in self.refused.items()],
            "seconds": round(self.seconds, 3),
            "verified": "sha256",
        }


# -- copying ----------------------------------------------------------------------------------
def part_name(final: str) -> str:
    """A fresh hidden temporary name beside ``final``."""
    return join_rel(parent_of(final), f".{posixpath.basename(final)}.{secrets.token_hex(4)}{PART_SUFFIX}")


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
        doing = f"reading {ep.where(path)}" if "r" in mode else f"writing in {ep.where(parent_of(path))}"
        raise TransferError(
            f"permission denied {doing}",
            "check the permissions there, or use a path the login user may "
            + ("read" if "r" in mode else "write"),
        ) from exc


def _makedirs(ep: Endpoint, path: str, shown: str) -> None:
    try:
        ep.transport.makedirs(path)
    except (OSError, CommandFailed) as exc:
        detail = exc.result.stderr.strip() if isinstance(exc, CommandFailed) else describe(exc)
        raise TransferError(
            f"cannot create a folder in {ep.where(shown)}: {detail}",
            "check that the folder exists and that the login user may write there",
        ) from exc


def _stream(src: Endpoint, src_path: str, dst: Endpoint, tmp: str, item: FileItem,
            on_bytes: ByteCallback | None, mode: int) -> str:
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
        _set_mode(dst.transport, fout, tmp, mode)  # after writing: writes clear setuid
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
    src_path = join_rel(plan.src.path, item.rel)
    sent = _stream(plan.src, src_path, plan.dst, tmp, item, on_bytes, plan.mode_for(item.mode))
    _verify(plan.src, src_path, plan.dst, tmp, sent)
    return sent



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
                        f"({describe(exc)}); remove it by hand")
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
        f"copy {plan.src.where()} -> {where} failed: {describe(exc)}; "
        f"nothing was written at {where}{note}",
        "fix the cause and run the same command again (a good copy already there is untouched)",
    )


def _copy_file_atomic(plan: CopyPlan, item: FileItem, final: str,
                      on_bytes: ByteCallback | None) -> CopiedFile:
    tmp = part_name(final)
    with _removed_on_failure(plan, tmp):
        sent = _copy_one(plan, item, tmp, on_bytes)
        plan.dst.transport.rename(tmp, final)
    return CopiedFile(plan.dst.where(final), item.size, sent, plan.mode_for(item.mode))


def _set_dir_modes(plan: CopyPlan, base: str, dirs: list[tuple[str, int]]) -> None:
    """Folder modes last (a read-only folder would stop the copy), one command per mode."""
    dst = plan.dst
    by_mode: dict[int, list[str]] = {}
    for rel, mode in dirs:
        by_mode.setdefault(plan.mode_for(mode), []).append(join_rel(base, rel))
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
            _makedirs(plan.dst, join_rel(stage, rel), parent_of(join_rel(plan.final, rel)))
        for item in plan.files:
            sent = _copy_one(plan, item, join_rel(stage, item.rel), on_bytes)
            copied.append(CopiedFile(plan.dst.where(join_rel(plan.final, item.rel)), item.size,
                                     sent, plan.mode_for(item.mode)))
        _set_dir_modes(plan, stage, plan.dirs)
        t.rename(stage, plan.final)
    return copied


def _copy_tree_merge(plan: CopyPlan, on_bytes: ByteCallback | None) -> list[CopiedFile]:
    """A folder into an existing folder: each file atomically; new folders get their modes."""
    created: list[tuple[str, int]] = []
    for rel, mode in plan.dirs:
        path = join_rel(plan.final, rel)
        st = stat_path(plan.dst, path, "looking at")
        if st is None:
            _makedirs(plan.dst, path, parent_of(path))
            created.append((rel, mode))
        elif not st.is_dir:
            raise UsageError(f"{plan.dst.where(path)} is a file; the source has a folder there")
    copied = [
        _copy_file_atomic(plan, item, join_rel(plan.final, item.rel), on_bytes) for item in plan.files
    ]
    if created:
        _set_dir_modes(plan, plan.final, created)
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
                      dict(plan.skipped), time.monotonic() - start, dict(plan.refused))


def copy(src: Endpoint, dst: Endpoint, *, recursive: bool = False,
         on_bytes: ByteCallback | None = None, preserve_mode: bool = False,
         umask: int | None = None) -> CopyResult:
    """Plan and run a verified copy (see the module docstring for the guarantees). Modes:
    the user's umask (this process's by default) and no setuid/setgid/sticky, unless
    ``preserve_mode``."""
    from opskit.files.chmod import current_umask

    plan = plan_copy(src, dst, recursive=recursive, preserve_mode=preserve_mode,
                     umask=current_umask() if umask is None else umask)
    return run_copy(plan, on_bytes)
