"""Bring a run's results home, verified, whatever the container left in its folder.

On the host, ``~/.opskit/runs/RUN`` is the container's ``/out`` (anything may be there, links
included); opskit's own records of the run live in ``~/.opskit/records/RUN`` (see
:mod:`opskit.jobs.hostfs`). Here, ``runs/RUN/`` holds opskit's records (``job.json``,
``manifest.json``, ``logs.txt``) and the results go to ``runs/RUN/results/``, so that no
result name can replace a record.

1. the container's output is saved once on the host as ``records/RUN/logs.txt``;
2. the run folder is listed without following links; regular files within the size limit are
   hashed on the host, each under a time limit of its own. The first hashes are kept in
   ``records/RUN/manifest.json`` as the reference: a file changed since is reported, not
   collected;
3. each file is copied over SFTP to ``runs/RUN/.partial/`` (resuming), hashed here, compared,
   and only then renamed into ``results/`` (no link followed on the way);
4. whatever is not collected (links, fifos, odd names, files over a limit, files changed on
   the host) is listed with the reason; the others are collected all the same;
5. ``remove_remote`` removes exactly the files verified here, nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit import atomic, safefs
from opskit.errors import HostError, JobError, OpskitError, TransferError
from opskit.hosts.transport import Transport
from opskit.jobs import hostfs
from opskit.jobs.launch import find_container, host_run_dir

RESULTS = "results"
PARTIAL = ".partial"
LOGS = hostfs.LOGS
CHUNK = 1 << 20
GIB = 1 << 30


@dataclass(frozen=True)
class Limits:
    """Per-file limits of a collect (``OPSKIT_COLLECT_MAX_FILE_GB``, ``OPSKIT_COLLECT_HASH_TIMEOUT``)."""

    max_file_bytes: int = 256 * GIB
    hash_timeout: float = 600.0

    @classmethod
    def from_env(cls) -> Limits:
        from opskit import settings

        gb = settings.get("collect_max_file_gb")
        secs = settings.get("collect_hash_timeout")
        return cls(int(float(gb) * GIB) if gb else cls.max_file_bytes, float(secs) if secs else cls.hash_timeout)


@dataclass
class CollectResult:
    run_id: str
    host: str
    local_dir: str
    results_dir: str = ""
    files: dict[str, str] = field(default_factory=dict)  # rel path -> sha256 (verified here)
    copied: list[str] = field(default_factory=list)
    already_here: list[str] = field(default_factory=list)
    not_collected: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}
    logs: bool = False
    bytes_copied: int = 0
    removed_remote: bool = False
    kept_on_host: list[str] = field(default_factory=list)
    swept: dict[str, list[str]] = field(default_factory=dict)  # Slurm: node -> leftover containers removed
    sweep_unchecked: dict[str, str] = field(default_factory=dict)  # Slurm: node -> why it was not checked

    @property
    def complete(self) -> bool:
        return not self.not_collected

    def miss(self, path: str, reason: str) -> None:
        self.not_collected.append({"path": path, "reason": reason})

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class FileProblem(Exception):
    """One file could not be collected (the others go on)."""


def odd_name(name: str) -> str | None:
    """Why a remote name cannot become a local file name, or None."""
    if "\ufffd" in name:
        return "its name is not valid UTF-8"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "its name contains a control character (newline, escape, ...)"
    if name.startswith("/") or ".." in name.split("/") or len(name.encode()) > 4000:
        return "its name cannot be a path under results/"
    return None


_KINDS = {"l": "a symbolic link", "p": "a fifo", "s": "a socket", "b": "a block device",
          "c": "a character device"}


def plan_files(entries: list[hostfs.Entry], limits: Limits, res: CollectResult) -> dict[str, int]:
    """The regular files to hash {path: size}; everything else is listed in ``res``."""
    want: dict[str, int] = {}
    for e in sorted(entries, key=lambda e: e.path):
        shown = e.path.encode("unicode_escape").decode() if odd_name(e.path) else e.path
        if e.kind != "f":
            res.miss(shown, f"{_KINDS.get(e.kind, 'not a regular file')}: not collected, kept on the host")
        elif (why := odd_name(e.path)) is not None:
            res.miss(shown, f"{why}: not collected, kept on the host")
        elif e.size > limits.max_file_bytes:
            res.miss(e.path, f"{e.size} bytes, over the limit of {limits.max_file_bytes} "
                     "(OPSKIT_COLLECT_MAX_FILE_GB): not collected, kept on the host")
        else:
            want[e.path] = e.size
    return want


def hash_on_host(transport: Transport, run_dir: str, want: dict[str, int], limits: Limits,
                 res: CollectResult) -> dict[str, str]:
    now: dict[str, str] = {}
    for h in hostfs.hash_files(transport, run_dir, sorted(want), limits.hash_timeout):
        if h.status == 0 and len(h.sha256) == 64:
            now[h.path] = h.sha256
        elif h.status in (124, 137):
            res.miss(h.path, f"hashing it took longer than {limits.hash_timeout:g}s "
                     "(OPSKIT_COLLECT_HASH_TIMEOUT; a huge or sparse file?): not collected, kept on the host")
        elif h.status == 2:
            res.miss(h.path, "no longer a regular file when hashed: not collected, kept on the host")
        else:
            res.miss(h.path, "unreadable on the host: not collected, kept there")
    return now


def reference_manifest(transport: Transport, records: str, now: dict[str, str]) -> dict[str, str]:
    """The hashes kept on the host since the first collect, extended by files new since."""
    path = f"{records}/{hostfs.MANIFEST}"
    before: dict[str, str] = {}
    if transport.stat(path) is not None:
        with transport.open(path, "rb") as fh:
            before = dict(json.loads(fh.read().decode()).get("files") or {})
    merged = {**now, **before}
    if merged != before:
        data = json.dumps({"files": merged}, sort_keys=True).encode()
        hostfs.write_file(transport, records, hostfs.MANIFEST, data)
    return merged


@dataclass
class LocalRun:
    """``runs/RUN/``: records at the top, results in ``results/``, partial copies in ``.partial/``."""

    root: Path

    @property
    def results(self) -> Path:
        return self.root / RESULTS

    def partial_name(self, dest: Path, rel: str) -> str:
        return hashlib.sha256(f"{dest}\0{rel}".encode()).hexdigest()[:32] + ".part"

    def verified(self, dest: Path, rel: str, digest: str) -> bool:
        head, tail = safefs.split(rel)
        try:
            with safefs.open_dir(dest, head, create=False) as dfd:
                return safefs.sha256_at(dfd, tail) == digest
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OpskitError:
            return False


def _copy(transport: Transport, remote: str, fd: int, start: int, progress: Callable[[int], None] | None) -> int:
    copied = 0
    try:
        src = transport.open(remote, "rb")
    except FileNotFoundError as exc:
        raise FileProblem("vanished from the host during the collect") from exc
    with src:
        if start:
            src.seek(start)
        prefetch = getattr(src, "prefetch", None)
        if prefetch is not None:
            _quiet_prefetch_threads()
            prefetch()
        while True:
            chunk = src.read(CHUNK)
            if not chunk:
                break
            try:
                _write_all(fd, chunk)
            except OSError as exc:
                raise TransferError(
                    f"cannot write the copy of {remote} here: {exc.strerror}",
                    "free disk space here (df -h .), then collect again: it resumes",
                ) from exc
            copied += len(chunk)
            if progress:
                progress(len(chunk))
    return copied


def _quiet_prefetch_threads() -> None:
    """A connection lost during a copy is reported once, by the copy (a clear error); paramiko's
    read-ahead thread dies with it and would print its own traceback: that one is dropped."""
    if getattr(threading.excepthook, "opskit_quiet", False):
        return
    previous = threading.excepthook

    def hook(args: Any) -> None:
        name = getattr(args.thread, "name", "") or ""
        if "_prefetch_thread" in name and issubclass(args.exc_type, (EOFError, OSError)):
            return
        previous(args)

    hook.opskit_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def fetch_file(transport: Transport, remote: str, local: LocalRun, dest: Path, rel: str, expected: str,
               progress: Callable[[int], None] | None = None) -> int:
    """Copy one file to ``.partial/`` (resuming), verify, rename to ``dest/rel``. Bytes copied."""
    head, tail = safefs.split(rel)
    pname = local.partial_name(dest, rel)
    with safefs.open_dir(local.root / PARTIAL) as pfd:
        fd = safefs.open_file(pfd, pname, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            start = os.fstat(fd).st_size
            copied = _copy(transport, remote, fd, start, progress)
            os.fsync(fd)
            os.lseek(fd, 0, os.SEEK_SET)
            h = hashlib.sha256()
            for block in iter(lambda: os.read(fd, CHUNK), b""):
                h.update(block)
        finally:
            os.close(fd)
        if h.hexdigest() != expected:
            os.unlink(pname, dir_fd=pfd)
            raise FileProblem(f"changed on the host while copying (the copy hashes to {h.hexdigest()[:16]}..., "
                              f"the host said {expected[:16]}...); collect again")
        with safefs.open_dir(dest, head) as dfd:
            try:
                os.replace(pname, tail, src_dir_fd=pfd, dst_dir_fd=dfd)
            except IsADirectoryError as exc:
                raise FileProblem(f"a folder of that name is in the way here ({dest / rel})") from exc
    return copied


def collect(
    transport: Transport,
    run_id: str,
    home: str,
    local_dir: Path,
    *,
    remove_remote: bool = False,
    progress: Callable[[int], None] | None = None,
    limits: Limits | None = None,
) -> CollectResult:
    limits = limits or Limits.from_env()
    container = find_container(transport, run_id)  # fresh state: containers.get inspects
    if container is not None and container.status == "running":
        raise JobError(
            f"{transport.host}: run {run_id} is still running; its results are not final",
            f"wait for it ('opskit logs {run_id} -f') or stop it ('opskit cancel {run_id}')",
        )
    run_dir = host_run_dir(home, run_id)
    if transport.stat(run_dir) is None:
        raise JobError(
            f"{transport.host}: no results folder {run_dir} for run {run_id}",
            "it was removed (collect --remove-remote), or the run never started on this host",
        )
    records = hostfs.records_dir(home, run_id)
    hostfs.private_dirs(transport, home, [f"{hostfs.RECORDS_DIR}/{run_id}"])
    local = LocalRun(Path(local_dir))
    res = CollectResult(run_id, transport.host, str(local.root), str(local.results))
    res.logs = collect_logs(transport, container, records, local, limits, res)
    want = plan_files(hostfs.list_run(transport, run_dir), limits, res)
    now = hash_on_host(transport, run_dir, want, limits, res)
    reference = reference_manifest(transport, records, now)
    for rel, digest in sorted(now.items()):
        if reference[rel] != digest:
            res.miss(rel, f"changed on the host since the first collect (now {digest[:12]}..., "
                     f"was {reference[rel][:12]}...): not collected, kept on the host")
            continue
        fetch_one(transport, f"{run_dir}/{rel}", local, rel, digest, res, progress)
    for rel in sorted(set(reference) - set(now) - set(want)):
        if rel not in res.files and not any(m["path"] == rel for m in res.not_collected):
            if local.verified(local.results, rel, reference[rel]):
                res.files[rel] = reference[rel]
                res.already_here.append(rel)
            else:
                res.miss(rel, "gone from the host since the first collect, and not here")
    with contextlib.suppress(OSError):  # kept only while it holds partial copies
        os.rmdir(local.root / PARTIAL)
    atomic.write_json(local.root / "manifest.json", {
        "host": transport.host, "files": res.files, "not_collected": res.not_collected,
    })
    if remove_remote:
        remove_remote_copies(transport, container, run_dir, records, local, res)
    return res


def fetch_one(transport: Transport, remote: str, local: LocalRun, rel: str, digest: str,
              res: CollectResult, progress: Callable[[int], None] | None = None, *,
              dest: Path | None = None, host: str = "the host") -> None:
    """One file into ``dest/REL`` (default ``runs/RUN/results/``), verified; one already there
    and matching is kept. A problem with this file alone is a miss (the file stays on ``host``);
    a lost host or transfer raises."""
    dest = local.results if dest is None else dest
    if local.verified(dest, rel, digest):
        res.files[rel] = digest
        res.already_here.append(rel)
        return
    try:
        res.bytes_copied += fetch_file(transport, remote, local, dest, rel, digest, progress)
    except FileProblem as exc:
        res.miss(rel, f"{exc}: not collected, kept on {host}")
        return
    except OpskitError as exc:
        if isinstance(exc, (HostError, TransferError)):
            raise
        res.miss(rel, f"{exc.message}: not collected, kept on {host}")
        return
    res.files[rel] = digest
    res.copied.append(rel)


def collect_logs(transport: Transport, container: object, records: str, local: LocalRun, limits: Limits,
                 res: CollectResult) -> bool:
    """Save the container's output on the host once (records/), and bring it here as logs.txt."""
    path = f"{records}/{LOGS}"
    if transport.stat(path) is None:
        if container is None:
            return False
        hostfs.save_logs(transport, records, container.name)  # type: ignore[attr-defined]
    hashed = hostfs.hash_files(transport, records, [LOGS], limits.hash_timeout)
    if not hashed or hashed[0].status != 0:
        res.miss(f"({LOGS})", "the saved output could not be hashed on the host; kept there")
        return False
    digest = hashed[0].sha256
    if not local.verified(local.root, LOGS, digest):
        try:
            res.bytes_copied += fetch_file(transport, path, local, local.root, LOGS, digest)
        except FileProblem as exc:
            res.miss(f"({LOGS})", f"{exc}; kept on the host")
            return False
    return True


def remove_remote_copies(transport: Transport, container: object, run_dir: str, records: str,
                         local: LocalRun, res: CollectResult) -> None:
    """Remove from the host exactly the files that verify here now; keep (and list) the rest."""
    gone = [rel for rel, digest in sorted(res.files.items()) if local.verified(local.results, rel, digest)]
    bad = sorted(set(res.files) - set(gone))
    for rel in bad:
        res.miss(rel, "the copy here does not verify any more: kept on the host")
    hostfs.remove_files(transport, run_dir, gone)
    res.removed_remote = True
    left = hostfs.list_run(transport, run_dir) if transport.stat(run_dir) is not None else []
    res.kept_on_host = sorted(e.path for e in left)
    if container is not None and res.logs:
        container.remove()  # type: ignore[attr-defined]
    if not left and transport.stat(run_dir) is None:
        hostfs.remove_tree(transport, records)
