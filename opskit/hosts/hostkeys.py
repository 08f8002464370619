"""Host keys: look at a host's key without logging in, and pin it in known_hosts.

``scan(spec)`` does an SSH key exchange only (no authentication) and returns the key the
host proves it holds. ``trust(spec, key)`` pins it: the line is added to the known_hosts
file with an atomic write (existing lines kept, ``[host]:port`` for ports other than 22).
A key that differs from a pinned one is always refused: that is for a person to sort out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit import atomic
from opskit.errors import HostError, HostKeyError
from opskit.hosts.knownhosts import (
    KnownHosts,
    fingerprint,
    known_hosts_entry_name,
    known_hosts_files,
    read_known_hosts,
)
from opskit.hosts.spec import HostSpec
from opskit.hosts.sshconnect import quiet_paramiko_logs


@dataclass(frozen=True)
class ScannedKey:
    host: str  # the name the user gave
    entry: str  # the known_hosts name: host or [host]:port
    key: Any  # paramiko PKey

    @property
    def key_type(self) -> str:
        return self.key.get_name()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    @property
    def line(self) -> str:
        return f"{self.entry} {self.key.get_name()} {self.key.get_base64()}"

    def to_dict(self) -> dict:
        return {"host": self.host, "entry": self.entry, "type": self.key_type,
                "fingerprint": self.fingerprint}


def load_known(spec: HostSpec) -> KnownHosts:
    """Every known_hosts file of this spec (missing ones are empty, broken lines skipped)."""
    return read_known_hosts(known_hosts_files(spec), spec.name)


def pinned_keys(spec: HostSpec) -> dict[str, Any]:
    """key type -> pinned key for this host (empty when the host is unknown)."""
    entry = known_hosts_entry_name(spec.hostname, spec.port)
    found = load_known(spec).keys.lookup(entry)
    return dict(found) if found else {}


def _open_socket(spec: HostSpec) -> tuple[Any, Any]:
    """A socket-like object to the host's SSH port, by the route ``SSHTransport`` takes
    (TCP, jump host or ProxyCommand), and the transport to close afterwards."""
    from opskit.hosts.ssh import SSHTransport

    spec.check_jump()
    opener = SSHTransport(spec)
    try:
        return opener.open_socket(), opener
    except BaseException:
        opener.close()
        raise


def scan(spec: HostSpec) -> ScannedKey:
    """The host key the server proves it holds (key exchange only, nobody logs in).

    Key types already pinned for this host are asked for first, so a changed key of a
    pinned type is seen as changed (not as a new key of another type).
    """
    import paramiko

    quiet_paramiko_logs()
    sock, opener = _open_socket(spec)
    transport = paramiko.Transport(sock)
    try:
        pinned = list(pinned_keys(spec))
        if pinned:
            opts = transport.get_security_options()
            opts.key_types = pinned + [k for k in opts.key_types if k not in pinned]
        transport.banner_timeout = spec.connect_timeout
        transport.start_client(timeout=spec.connect_timeout)
        key = transport.get_remote_server_key()
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise HostError(
            spec.name,
            f"no SSH key exchange with {spec.hostname}:{spec.port} within "
            f"{spec.connect_timeout:g}s: {exc or type(exc).__name__}",
        ) from exc
    finally:
        transport.close()
        sock.close()
        opener.close()
    return ScannedKey(spec.name, known_hosts_entry_name(spec.hostname, spec.port), key)


def check_not_changed(spec: HostSpec, scanned: ScannedKey) -> bool:
    """True if this exact key is already pinned; raise HostKeyError if a different one is."""
    if load_known(spec).is_revoked(scanned.key):
        raise HostKeyError(
            spec.name,
            f"{scanned.entry} shows {scanned.key_type} {scanned.fingerprint}, a key marked "
            "@revoked in known_hosts; opskit will not pin it",
            "this key must not be used again: ask the host's owner for its new key",
        )
    pinned = pinned_keys(spec)
    if not pinned:
        return False
    same = pinned.get(scanned.key_type)
    if same is not None and same == scanned.key:
        return True
    old = same or next(iter(pinned.values()))
    files = " ".join(known_hosts_files(spec))
    raise HostKeyError(
        spec.name,
        f"HOST KEY CHANGED for {scanned.entry}: pinned {old.get_name()} {fingerprint(old)}, "
        f"the host now shows {scanned.key_type} {scanned.fingerprint}. Someone may be "
        "intercepting the connection; opskit will not replace a pinned key",
        f"if the host was really reinstalled, remove the old line "
        f"(ssh-keygen -R '{scanned.entry}' -f FILE, known_hosts: {files}) "
        f"and run 'opskit hosts trust {spec.name}' again",
    )


def normalise_fingerprint(text: str) -> str:
    text = text.strip()
    return text if text.startswith("SHA256:") else "SHA256:" + text


def trust(spec: HostSpec, scanned: ScannedKey, path: str | None = None) -> str:
    """Pin ``scanned`` in known_hosts (atomic, existing lines kept). Return the file."""
    if check_not_changed(spec, scanned):
        return path or known_hosts_files(spec)[0]
    target = Path(path or known_hosts_files(spec)[0])
    if not target.parent.exists():
        target.parent.mkdir(parents=True, mode=0o700)
    old = target.read_text() if target.exists() else ""
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o600
    if old and not old.endswith("\n"):
        old += "\n"
    atomic.write_text(target, old + scanned.line + "\n")
    os.chmod(target, mode)
    return str(target)
