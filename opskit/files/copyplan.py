"""Planning a verified copy: look at both ends, decide what goes where, before a byte moves.

scp's rules: copying into an existing folder keeps the source's name; a folder needs ``-r``;
the destination's folder must exist. Names listed inside a folder are checked with
``opskit.safety.check_remote_name``: one that cannot travel safely (a newline or other control
character, ``..``, ``/``) is left out and listed in ``refused`` (the copy exits 1) while the
rest of the folder is copied; special files, dangling links and unfinished opskit temporaries
are skipped and said.

Modes: as ``cp`` without ``-p``, a copy gets the source's permission bits without setuid,
setgid and sticky, masked by the user's umask; ``preserve_mode`` keeps every bit (``cp -p``). Symlink loops end in an error (ELOOP, a depth cap, an entry cap), never a hang.
"""

from __future__ import annotations

import errno
import posixpath
import stat as stat_mod
from dataclasses import dataclass, field

from opskit.errors import OpskitError, TransferError, UnsafeInputError, UsageError
from opskit.hosts.transport import FileStat, Transport
from opskit.safety import check_remote_name

MAX_DEPTH = 64
MAX_ENTRIES = 100_000  # with MAX_DEPTH, ends symlink loops (stat follows links) in an error
PART_SUFFIX = ".opskit-part"


@dataclass(frozen=True)
class Endpoint:
    """One side of a copy: a transport and a path on it (as that transport reads it)."""

    transport: Transport
    path: str

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
    refused: dict[str, str] = field(default_factory=dict)  # rel -> why its name cannot travel
    preserve_mode: bool = False  # keep setuid/setgid/sticky and ignore the umask (cp -p)
    umask: int = 0o022

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def mode_for(self, source_mode: int) -> int:
        """The mode a copy gets: ``cp`` without ``-p`` unless preserve_mode."""
        if self.preserve_mode:
            return source_mode & 0o7777
        return source_mode & 0o777 & ~self.umask


def join_rel(base: str, rel: str) -> str:
    """``base/rel``; ``rel`` alone under ``.`` (the login folder or the working folder)."""
    if not rel:
        return base
    return rel if base in (".", "./") else posixpath.join(base, rel)


def parent_of(path: str) -> str:
    """The folder that holds ``path`` (``.`` for a bare name)."""
    return posixpath.dirname(path.rstrip("/")) or ("/" if path.startswith("/") else ".")


def _base_name(path: str) -> str:
    name = posixpath.basename(posixpath.normpath(path))
    return "" if name in ("", ".", "..", "/") else name


def stat_path(ep: Endpoint, path: str, doing: str) -> FileStat | None:
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
            f"cannot look at {ep.where(path)}: {'a symlink loop' if loop else describe(exc)}",
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
        raise TransferError(f"cannot list {ep.where(folder)}: {describe(exc)}") from exc


def _final_path(plan_src: FileStat, src: Endpoint, dst: Endpoint) -> tuple[str, bool]:
    """Where the copy lands, scp-style, and whether it merges into an existing folder."""
    dst_st = stat_path(dst, dst.path, "looking at")
    if dst_st is not None and dst_st.is_dir:
        name = _base_name(src.path)
        if not name:
            raise UsageError(
                f"cannot tell which name {src.where()} should get inside {dst.where()}",
                "give the destination's full name, e.g. DEST/NAME",
            )
        final = join_rel(dst.path, name)
        final_st = stat_path(dst, final, "looking at")
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
        parent = parent_of(dst.path)
        parent_st = stat_path(dst, parent, "looking at")
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
    folder = join_rel(root, rel)
    names = _listdir(src, folder)
    if len(plan.files) + len(plan.dirs) + len(plan.skipped) + len(names) > MAX_ENTRIES:
        raise TransferError(
            f"{src.where(root)} holds more than {MAX_ENTRIES} files and folders "
            "(or a symlink loop)", "copy its parts one by one, or archive it first (tar)",
        )
    for name in names:
        child_rel = join_rel(rel, name) if rel else name
        try:
            check_remote_name(name)
            if "/" in name:
                raise UnsafeInputError(f"refusing file name {name!r}: it contains '/'")
        except UnsafeInputError as exc:
            plan.refused[child_rel] = (f"{exc.message.split(': ', 1)[-1]}; "
                                       "rename it there to copy it")
            continue
        if name.endswith(PART_SUFFIX):
            plan.skipped[child_rel] = "an unfinished opskit copy (temporary file)"
            continue
        st = stat_path(src, join_rel(root, child_rel), "reading")
        if st is None:
            plan.skipped[child_rel] = "vanished, or a symlink to nothing"
        elif st.is_dir:
            plan.dirs.append((child_rel, stat_mod.S_IMODE(st.mode)))
            _walk(src, root, plan, child_rel, depth + 1)
        elif stat_mod.S_ISREG(st.mode):
            plan.files.append(FileItem(child_rel, st.size, stat_mod.S_IMODE(st.mode)))
        else:
            plan.skipped[child_rel] = "not a regular file or folder"


def plan_copy(src: Endpoint, dst: Endpoint, *, recursive: bool = False,
              preserve_mode: bool = False, umask: int = 0o022) -> CopyPlan:
    """Look at both ends (no bytes copied yet) and decide what goes where."""
    src_st = stat_path(src, src.path, "reading")
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
    plan = CopyPlan(src, dst, final, src_st.is_dir, merge, preserve_mode=preserve_mode,
                    umask=umask)
    if src_st.is_dir:
        plan.dirs.append(("", stat_mod.S_IMODE(src_st.mode)))
        _walk(src, src.path, plan)
    else:
        plan.files.append(FileItem("", src_st.size, stat_mod.S_IMODE(src_st.mode)))
    return plan


def describe(exc: BaseException) -> str:
    if isinstance(exc, PermissionError):
        return f"permission denied ({exc.strerror or exc})"
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder ({exc.filename or exc.strerror or exc})"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "closed" in text.lower() or "dropped" in text.lower():
        return f"connection lost ({text})"
    return f"{type(exc).__name__}: {text}"
