"""Bring a run's results home, verified: ``runs/<RUN>/`` mirrors ``~/.opskit/runs/<RUN>/``.

1. the container's output is saved on the host as ``logs.txt`` (once, after the run ended);
2. a sha256 manifest is computed ON the host; the first one is kept there
   (``.opskit/manifest.sha256``) as the reference: a later collect that finds a file changed
   or truncated since reports a checksum mismatch instead of collecting it;
3. each file is copied over SFTP to a temp name beside its final path (resuming a partial
   copy), hashed here, compared with the manifest, and only then renamed into place;
   files already here with the right hash are skipped (idempotent);
4. remote copies are removed only when asked, and only when every file is verified here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from opskit import atomic
from opskit.errors import ChecksumMismatch, JobError
from opskit.hosts.transport import Transport
from opskit.jobs.launch import find_container, host_run_dir
from opskit.safety import check_remote_name

MANIFEST_REMOTE = ".opskit/manifest.sha256"
LOGS = "logs.txt"
CHUNK = 1 << 20
_FIND = (
    'cd "$1" && find . -type f ! -name "*.opskit-part" ! -name "*.tmp" ! -path "./.opskit/*" '
    "-print0 | sort -z | xargs -0 -r sha256sum --"
)


@dataclass
class CollectResult:
    run_id: str
    host: str
    local_dir: str
    files: dict[str, str] = field(default_factory=dict)  # rel path -> sha256 (verified)
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_copied: int = 0
    removed_remote: bool = False

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def parse_sha256sum(text: str) -> dict[str, str]:
    """``sha256sum`` lines (``HASH  ./path``) -> {path: hash}; refuses unsafe names."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or line.startswith("\\"):
            from opskit.errors import ParseError

            raise ParseError("host", "sha256sum", line, "expected 'HASH  PATH'")
        name = name[2:] if name.startswith("./") else name
        out[check_remote_name(name)] = digest
    return out


def host_manifest(transport: Transport, run_dir: str) -> dict[str, str]:
    res = transport.run(["sh", "-c", _FIND, "sh", run_dir], timeout=600)
    res.check("the run's folder on the host must be readable by the login user")
    return parse_sha256sum(res.stdout)


def save_logs_on_host(transport: Transport, run_id: str, run_dir: str) -> None:
    """Write the container's output to ``RUN_DIR/logs.txt`` once (temp name + rename)."""
    if transport.stat(f"{run_dir}/{LOGS}") is not None:
        return
    container = find_container(transport, run_id)
    if container is None:
        return
    script = 'docker logs "$1" > "$2.tmp" 2>&1 && mv -- "$2.tmp" "$2"'
    transport.run(["sh", "-c", script, "sh", container.name, f"{run_dir}/{LOGS}"], timeout=600).check()


def reference_manifest(transport: Transport, run_dir: str, now: dict[str, str]) -> dict[str, str]:
    """The manifest kept on the host since the first collect (written now if there is none)."""
    path = f"{run_dir}/{MANIFEST_REMOTE}"
    if transport.stat(path) is None:
        text = "".join(f"{h}  ./{p}\n" for p, h in sorted(now.items()))
        transport.makedirs(f"{run_dir}/.opskit")
        with transport.open(path + ".tmp", "wb") as fh:
            fh.write(text.encode())
        transport.rename(path + ".tmp", path)
        return dict(now)
    with transport.open(path, "rb") as fh:
        return parse_sha256sum(fh.read().decode())


def fetch_file(transport: Transport, remote: str, final: Path, expected: str, progress: Callable[[int], None] | None) -> int:
    """Copy one file (resuming a partial temp copy); verify; rename into place. Bytes copied."""
    part = atomic.temp_name_for(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    start = part.stat().st_size if part.exists() else 0
    st = transport.stat(remote)
    if st is None:
        raise JobError(f"{transport.host}: {remote} vanished during the collect")
    if start > st.size:
        part.unlink()
        start = 0
    copied = 0
    with transport.open(remote, "rb") as src, open(part, "ab") as dst:
        if start:
            src.seek(start)
        prefetch = getattr(src, "prefetch", None)
        if prefetch is not None:
            prefetch(st.size)
        for chunk in iter(lambda: src.read(CHUNK), b""):
            dst.write(chunk)
            copied += len(chunk)
            if progress:
                progress(len(chunk))
        dst.flush()
        os.fsync(dst.fileno())
    got = atomic.sha256_file(part)
    if got != expected:
        part.unlink()
        raise ChecksumMismatch(
            f"{transport.host}: checksum mismatch for {remote}: the copy hashes to {got[:16]}..., "
            f"the host's manifest says {expected[:16]}...; not collected",
            "the file changed on the host while copying: check it there, then collect again",
        )
    os.replace(part, final)
    return copied


def collect(
    transport: Transport,
    run_id: str,
    home: str,
    local_dir: Path,
    *,
    remove_remote: bool = False,
    progress: Callable[[int], None] | None = None,
) -> CollectResult:
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
    save_logs_on_host(transport, run_id, run_dir)
    now = host_manifest(transport, run_dir)
    reference = reference_manifest(transport, run_dir, now)
    changed = sorted(p for p in reference if now.get(p) != reference[p])
    if changed:
        detail = ", ".join(f"{p} ({'missing' if p not in now else 'now ' + now[p][:12] + '...'}, was {reference[p][:12]}...)" for p in changed)
        raise ChecksumMismatch(
            f"{transport.host}: checksum mismatch in run {run_id}: changed or truncated on the host since "
            f"the manifest was made: {detail}; not collected",
            "these files are not the results the run wrote; nothing was marked collected",
        )
    result = CollectResult(run_id, transport.host, str(local_dir), files=dict(now))
    for rel, digest in sorted(now.items()):
        final = local_dir / rel
        if final.exists() and atomic.sha256_file(final) == digest:
            result.skipped.append(rel)
            continue
        result.bytes_copied += fetch_file(transport, f"{run_dir}/{rel}", final, digest, progress)
        result.copied.append(rel)
    atomic.write_json(local_dir / "manifest.json", {"host": transport.host, "files": now})
    if remove_remote:
        remove_remote_copies(transport, container, run_dir, local_dir, now)
        result.removed_remote = True
    return result


def remove_remote_copies(transport: Transport, container: object, run_dir: str, local_dir: Path, files: dict[str, str]) -> None:
    """Remove the host's folder (and the finished container) after re-verifying every local copy."""
    for rel, digest in files.items():
        if atomic.sha256_file(local_dir / rel) != digest:
            raise ChecksumMismatch(f"local copy {local_dir / rel} does not verify; the host's copy is kept")
    if container is not None:
        container.remove()  # type: ignore[attr-defined]
    transport.run(["rm", "-rf", "--", run_dir], check=True)

