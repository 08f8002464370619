"""known_hosts files read the way OpenSSH reads them.

paramiko's own loader gives up on a whole file at one undecodable line and reads
``@revoked`` lines as host names. Here, as in OpenSSH: a line that cannot be read is skipped
(and counted), ``@revoked`` keys are collected so they are refused for every host, and
``@cert-authority`` lines (not supported by opskit) are skipped.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from opskit.errors import HostError, HostKeyError
from opskit.hosts.spec import HostSpec

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


def fingerprint(key: Any) -> str:
    """OpenSSH's SHA256 fingerprint of a paramiko key (``SHA256:...``)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_files(spec: HostSpec) -> list[str]:
    from opskit import settings

    files = spec.known_hosts or (settings.get("known_hosts") or DEFAULT_KNOWN_HOSTS,)
    return [os.path.expanduser(f) for f in files]


def known_hosts_entry_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


def refuse_unknown_policy(spec: HostSpec) -> Any:
    import paramiko

    class RefuseUnknown(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client, hostname, key):  # noqa: ANN001
            raise HostKeyError(
                spec.name,
                f"unknown host key for {known_hosts_entry_name(spec.hostname, spec.port)}: "
                f"{key.get_name()} {fingerprint(key)}",
                f"check the fingerprint with the host's owner, then pin it with "
                f"'opskit hosts trust {spec.name}'",
            )

    return RefuseUnknown()



@dataclass
class KnownHosts:
    """Pinned keys (a paramiko ``HostKeys``), revoked key blobs, and lines skipped."""

    keys: Any
    revoked: set[str] = field(default_factory=set)  # base64 key blobs
    skipped: list[str] = field(default_factory=list)  # "file:line: reason"

    def is_revoked(self, key: Any) -> bool:
        return key.get_base64() in self.revoked


def read_known_hosts(paths: list[str], host: str = "", into: Any = None) -> KnownHosts:
    """Read every existing file of ``paths`` (a missing file is simply empty) into ``into``
    (a paramiko ``HostKeys``, e.g. ``SSHClient.get_host_keys()``) or a new one."""
    import paramiko

    known = KnownHosts(into if into is not None else paramiko.HostKeys())
    for path in paths:
        if not os.path.exists(path):
            continue
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError as exc:
            raise HostError(host or path, f"cannot read known_hosts file {path}: {exc}") from exc
        for lineno, raw in enumerate(lines, 1):
            _read_line(known, raw.strip(), f"{path}:{lineno}")
    return known


def _read_line(known: KnownHosts, line: str, where: str) -> None:
    from paramiko.hostkeys import HostKeyEntry

    if not line or line.startswith("#"):
        return
    if line.startswith("@"):
        marker, _, rest = line.partition(" ")
        fields = rest.split()
        if marker == "@revoked" and len(fields) >= 3:
            known.revoked.add(fields[2])
        else:
            known.skipped.append(f"{where}: {marker} lines are not used by opskit")
        return
    try:
        entry = HostKeyEntry.from_line(line)
    except Exception as exc:  # noqa: BLE001 - a broken line is skipped, as OpenSSH does
        known.skipped.append(f"{where}: unreadable ({type(exc).__name__})")
        return
    if entry is None:
        known.skipped.append(f"{where}: unknown key type or too few fields")
        return
    for name in entry.hostnames:
        known.keys.add(name, entry.key.get_name(), entry.key)


_CACHE: dict[tuple, KnownHosts] = {}
_CACHE_LOCK = threading.Lock()


def cached_known_hosts(paths: list[str], host: str = "") -> KnownHosts:
    """``read_known_hosts`` once per version of the files (path, inode, size, mtime).

    Many connections at once (a fan-out) share one parsed copy; a file that changes (e.g.
    ``opskit hosts trust`` pinned a key) is read again. Treat the result as read-only.
    """
    stamp = []
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            stamp.append((path, None))
            continue
        except OSError as exc:
            raise HostError(host or path, f"cannot read known_hosts file {path}: {exc}") from exc
        stamp.append((path, st.st_ino, st.st_size, st.st_mtime_ns))
    key = tuple(stamp)
    with _CACHE_LOCK:
        known = _CACHE.get(key)
        if known is None:
            known = read_known_hosts(paths, host)
            if len(_CACHE) > 64:
                _CACHE.clear()
            _CACHE[key] = known
    return known
