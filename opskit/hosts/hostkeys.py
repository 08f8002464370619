"""Host keys: look at a host's key without logging in, and pin it in known_hosts.

``scan(spec)`` does an SSH key exchange only (no authentication) and returns the key the
host proves it holds. ``trust(spec, key)`` pins it where OpenSSH would add it: the first
``UserKnownHostsFile``, under ``HostKeyAlias`` or ``host``/``[host]:port``. The line is
appended with an atomic write at the file the path leads to: a symlinked known_hosts stays a
symlink (its target gets the line and keeps its mode); a path that is not a regular file
(``UserKnownHostsFile /dev/null``) is refused, nothing written. A key the files refuse
(changed or revoked, as OpenSSH decides) is never pinned: that is for a person to sort out.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit import atomic
from opskit.errors import HostError, HostKeyError
from opskit.hosts import hostkeycheck
from opskit.hosts import knownhosts as kh
from opskit.hosts.knownhosts import fingerprint, known_hosts_files
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


def pinned_keys(spec: HostSpec) -> dict[str, Any]:
    """key type -> the first pinned key blob for this host (empty when the host is unknown)."""
    out: dict[str, Any] = {}
    for e in kh.load_for(spec).for_host(kh.lookup_name(spec)):
        if not e.marker:
            out.setdefault(e.key_type, e.blob)
    return out


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

    The host key algorithms are offered as for a connection (pinned types first), so a
    changed key of a pinned type is seen as changed (not as a new key of another type).
    """
    import paramiko

    quiet_paramiko_logs()
    sock, opener = _open_socket(spec)
    transport = paramiko.Transport(sock)
    try:
        opts = transport.get_security_options()
        opts.key_types = hostkeycheck.offered_algorithms(spec, kh.load_for(spec),
                                                         list(opts.key_types))
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
    return ScannedKey(spec.name, kh.lookup_name(spec), key)


def check_not_changed(spec: HostSpec, scanned: ScannedKey) -> bool:
    """True if the files already accept this key; False if the host is new; HostKeyError
    if they refuse it (revoked, or another key pinned), as OpenSSH decides."""
    known = hostkeycheck.known_for(spec, scanned.key)
    if hostkeycheck.cert_check(spec, scanned.key, known)[0] is not None:
        return True  # a trusted CA vouches for it: nothing to pin
    decision, known = hostkeycheck.judge(spec, scanned.key, known)
    if decision.status == kh.OK:
        return True
    if decision.status == kh.NEW:
        return False
    raise hostkeycheck.refusal(spec, scanned.key, decision, known)


def normalise_fingerprint(text: str) -> str:
    text = text.strip()
    return text if text.startswith("SHA256:") else "SHA256:" + text


def trust_target(spec: HostSpec, path: str | None = None) -> Path:
    """Where the line goes: the file the first UserKnownHostsFile leads to (a symlink is
    followed); refused when that is not a regular file or there is no user file."""
    files = [path] if path else known_hosts_files(spec)
    if not files:
        raise HostKeyError(spec.name, "UserKnownHostsFile is 'none': there is no file to pin in",
                           "set UserKnownHostsFile for this host in the ssh config")
    given = Path(files[0])
    target = Path(os.path.realpath(given))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target
    if not stat.S_ISREG(st.st_mode):
        where = spec.sources.get("known_hosts", "the ssh config")
        raise HostKeyError(
            spec.name,
            f"cannot pin a key in {given}: it is not a regular file "
            f"({'a device' if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else 'not a file'}"
            f"{', via a symlink' if given != target else ''}); nothing was written",
            f"UserKnownHostsFile ({where}) must name a real file for pinning to work "
            "(with /dev/null nothing can be pinned)",
        )
    return target


def trust(spec: HostSpec, scanned: ScannedKey, path: str | None = None) -> str:
    """Pin ``scanned`` (atomic append at the target, mode kept). Return the file named."""
    named = path or (known_hosts_files(spec) or [""])[0]
    if check_not_changed(spec, scanned):
        return named
    target = trust_target(spec, path)
    if not target.parent.exists():
        target.parent.mkdir(parents=True, mode=0o700)
    old = target.read_text() if target.exists() else ""
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o600
    if old and not old.endswith("\n"):
        old += "\n"
    line = scanned.line
    if spec.hash_known_hosts:  # HashKnownHosts yes: ssh writes the name hashed
        line = f"{kh.hash_name(scanned.entry)} {line.split(' ', 1)[1]}"
    atomic.write_text(target, old + line + "\n")
    os.chmod(target, mode)
    return named
