"""The host's side of a ship: upload (resumable, verified), ``docker load``, and proof.

After ``docker load`` the image is proven, not assumed: on the containerd image store a failed
unpack still exits 0 (printing ``Error unpacking image …``) and leaves an incomplete image
behind, and image IDs differ by store (the legacy store's ID is the config digest, the
containerd store's the manifest digest). So the host must report an image whose ID is one of
the two digests of what was sent, whose diff IDs are ours, and from which a container can be
created. A :class:`LoadProblem` says why not; the caller removes what was loaded and sends the
full archive.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from opskit.errors import TransferError
from opskit.hosts.transport import Transport
from opskit.images.shiptar import ImageParts

LOAD_TIMEOUT = 3600.0
ProgressFn = Callable[[str, int], None]  # (host, bytes just sent)
UNPACK_ERROR = "Error unpacking"


class LoadProblem(TransferError):
    """``docker load`` did not leave the image that was sent, usable (a partial archive may be
    retried as a full one)."""


def remote_home(transport: Transport) -> str:
    if transport.is_local:
        return os.path.expanduser("~")
    res = transport.run(["sh", "-c", 'printf "%s" "$HOME"']).check()
    return res.stdout.strip() or "."


def _private_file(transport: Transport, fh: Any, path: str) -> None:
    """0600 whatever the host's umask (an SFTP file has ``chmod``; a local one is a path)."""
    if hasattr(fh, "chmod"):
        fh.chmod(0o600)
    elif transport.is_local:
        os.chmod(path, 0o600)


def upload_resumable(transport: Transport, archive: Any, final: str, progress: ProgressFn | None) -> tuple[int, int]:
    """Upload to ``final + '.part'``, resuming what an earlier try left; (resumed_from, sent)."""
    part = final + ".part"
    st = transport.stat(part)
    total = archive.wire_bytes
    start = st.size if st is not None and st.size <= total else 0
    if st is not None and start == 0:
        transport.remove(part)
    sent = 0
    try:
        with transport.open(part, "ab" if start else "wb") as fh:
            _private_file(transport, fh, part)
            for chunk in archive.chunks(start):
                fh.write(chunk)
                sent += len(chunk)
                if progress:
                    progress(transport.host, len(chunk))
    except Exception as exc:  # noqa: BLE001 - OSError, EOFError, paramiko's SSHException, ...
        raise TransferError(
            f"{transport.host}: upload interrupted after {start + sent} of {total} bytes of the "
            f"image archive ({type(exc).__name__}: {exc}); the partial upload is kept at {part}",
            "run the same command again: the upload resumes and is verified before loading",
        ) from exc
    return start, sent


def remove_stale_parts(transport: Transport, final: str) -> None:
    """Partial uploads of the same image for another archive (another layer set) are dead."""
    folder, name = final.rsplit("/", 1)
    prefix = name.split("-", 1)[0] + "-"
    for entry in transport.listdir(folder):
        if entry.startswith(prefix) and entry.endswith(".part") and entry != name + ".part":
            transport.remove(f"{folder}/{entry}")


def load_archive(transport: Transport, part: str, final: str, expected_sha: str, codec: str) -> str:
    """Check the upload's sha256 on the host, ``docker load`` it, remove it; the load's output.

    Raises TransferError for a corrupt upload or a full disk, LoadProblem for a load that
    failed otherwise or printed an unpack error with exit 0."""
    got = transport.sha256(part)
    if got != expected_sha:
        transport.remove(part)
        raise TransferError(
            f"{transport.host}: the uploaded archive does not match (sha256 {got[:16]}..., "
            f"expected {expected_sha[:16]}...); removed it",
            "run the same command again to send it afresh",
        )
    transport.rename(part, final)
    decompress = "zstd -dc -- \"$1\"" if codec == "zstd" else "gzip -dc -- \"$1\""
    try:
        res = transport.run(["sh", "-c", decompress + " | docker load", "sh", final], timeout=LOAD_TIMEOUT)
    finally:
        transport.remove(final)
    output = f"{res.stdout}\n{res.stderr}"
    tail = " / ".join(line for line in output.strip().splitlines()[-5:] if line.strip())
    if not res.ok:
        if "space" in tail:
            raise TransferError(
                f"{transport.host}: docker load failed (exit {res.exit_code}): {tail}",
                "free disk space where the host's Docker engine keeps images (docker info: Docker Root Dir)",
            )
        raise LoadProblem(f"{transport.host}: docker load failed (exit {res.exit_code}): {tail}",
                          "check the host's engine with 'docker info'")
    unpack = [line.strip() for line in output.splitlines() if UNPACK_ERROR in line]
    if unpack:
        raise LoadProblem(f"{transport.host}: docker load exited 0 but the engine could not unpack the "
                          f"image: {unpack[0]}", "check the host's engine with 'docker info'")
    return output


def verify_loaded(transport: Transport, parts: ImageParts, ref: str) -> str:
    """Prove the host's ``ref`` is the image sent and usable; its ID on the host."""
    fmt = "{{.Id}} {{json .RootFS.Layers}}"
    res = transport.run(["docker", "image", "inspect", "--format", fmt, ref])
    if not res.ok:
        raise LoadProblem(f"{transport.host}: after loading, the engine has no image {ref}: "
                          f"{(res.stderr or res.stdout).strip()[-300:]}")
    host_id, _, layers = res.stdout.strip().partition(" ")
    expected = {parts.config_digest: "config digest", parts.manifest_digest: "manifest digest"}
    if host_id not in expected:
        raise LoadProblem(
            f"{transport.host}: after loading, {ref} is {host_id[:19]} on the host, neither the config "
            f"digest {parts.config_digest[:19]} nor the manifest digest {parts.manifest_digest[:19]} of the "
            "image that was sent", "ship again; if it repeats, compare 'docker image inspect' on both sides",
        )
    try:
        got = json.loads(layers)
    except ValueError:
        got = None
    if got != parts.diff_ids:
        raise LoadProblem(f"{transport.host}: after loading, {ref} has other layers (diff IDs) than the "
                          "image that was sent")
    prove_usable(transport, host_id)
    return host_id


def prove_usable(transport: Transport, image_id: str) -> None:
    """Create (never start) a container from the image, then remove it: the engine has every
    layer unpacked (the containerd store keeps an image whose unpack failed)."""
    res = transport.run(["docker", "create", "--pull", "never", "--network", "none", "--entrypoint", "/bin/true",
                         "--label", "opskit.ship-check=1", image_id])
    if not res.ok:
        raise LoadProblem(f"{transport.host}: the loaded image cannot make a container: "
                          f"{(res.stderr or res.stdout).strip()[-300:]}")
    container = res.stdout.strip().splitlines()[-1]
    transport.run(["docker", "rm", "-f", container])


def remove_incomplete(transport: Transport, parts: ImageParts, tags: list[str]) -> None:
    """Remove what a failed load left: the image under either ID it may have got (it was not
    on the host before this ship), and our tags only where they name that image (a tag still
    on an older image stays)."""
    ours = {parts.manifest_digest, parts.config_digest}
    for tag in tags:
        res = transport.run(["docker", "image", "inspect", "--format", "{{.Id}} {{json .RootFS.Layers}}", tag])
        if res.ok and res.stdout.strip().split(" ", 1)[0] in ours:
            transport.run(["docker", "image", "rm", "-f", tag])
    for ident in sorted(ours):
        transport.run(["docker", "image", "rm", "-f", ident])


def tag_remote(transport: Transport, image_ref: str, tags: list[str]) -> None:
    api = transport.docker().api
    for tag in tags:
        repo, _, name = tag.rpartition(":")
        api.tag(image_ref, repo, name)
