"""known_hosts files read, and host keys judged, the way OpenSSH 9.2 does it (hostfile.c,
sshconnect.c check_host_key with ``StrictHostKeyChecking yes``).

- Every file OpenSSH reads: the host's ``UserKnownHostsFile`` list and its
  ``GlobalKnownHostsFile`` list (defaults ``~/.ssh/known_hosts``, ``~/.ssh/known_hosts2``,
  ``/etc/ssh/ssh_known_hosts``, ``/etc/ssh/ssh_known_hosts2``), all of them together. A file
  that is missing or cannot be opened is empty, as for ssh.
- The host field is a pattern list (``*``, ``?``, ``!`` negation, case-insensitive) or a
  hashed name (``|1|salt|hash``); the name looked up is ``HostKeyAlias`` or ``host`` /
  ``[host]:port``.
- A key matching any line for the host is accepted; a key the host's lines do not hold is
  refused (``changed`` when a line of the same key type holds another key); a key on a
  matching ``@revoked`` line (or in ``RevokedHostKeys``) is refused whatever else says.
  ``@cert-authority`` lines vouch for host certificates (``hostcert``, ``hostkeycheck``).
- A line that cannot be read is skipped and named, as OpenSSH skips it.
Pure Python: keys are compared as their wire blobs, so no paramiko is needed to read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

from opskit.hosts.spec import HostSpec
from opskit.hosts.sshsyntax import match_hostname

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
OK, NEW, CHANGED, REVOKED = "ok", "new", "changed", "revoked"


def fingerprint(key: Any) -> str:
    """OpenSSH's SHA256 fingerprint of a paramiko key or a key blob (``SHA256:...``)."""
    blob = key if isinstance(key, bytes) else key.asbytes()
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def known_hosts_files(spec: HostSpec) -> list[str]:
    """The user files: where ``hosts trust`` writes (the first) and the ones read first."""
    from opskit import settings

    if spec.no_user_known_hosts:
        return []
    files = spec.known_hosts or (settings.get("known_hosts") or DEFAULT_KNOWN_HOSTS,)
    return [os.path.expanduser(f) for f in files]


def all_known_hosts_files(spec: HostSpec) -> list[str]:
    """Every file OpenSSH reads for this host: user files, then global files."""
    return known_hosts_files(spec) + [os.path.expanduser(f) for f in spec.global_known_hosts]


def known_hosts_entry_name(hostname: str, port: int) -> str:
    return hostname if port in (22, 0) else f"[{hostname}]:{port}"


def lookup_name(spec: HostSpec) -> str:
    """The name OpenSSH looks up: HostKeyAlias (as is) or host / [host]:port."""
    return spec.hostkey_alias or known_hosts_entry_name(spec.hostname, spec.port)


def hash_name(name: str, salt: bytes | None = None) -> str:
    """``|1|salt|hash``: how ssh writes a name with HashKnownHosts yes (HMAC-SHA1)."""
    salt = os.urandom(20) if salt is None else salt
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def blob_type(blob: bytes) -> str:
    """The key type named at the start of a key blob."""
    if len(blob) < 4:
        raise ValueError("key blob too short")
    (n,) = struct.unpack(">I", blob[:4])
    if n > 64 or len(blob) < 4 + n:
        raise ValueError("bad key type length")
    return blob[4:4 + n].decode("ascii")


@dataclass(frozen=True)
class Entry:
    where: str  # file:line
    marker: str  # "", "@revoked" or "@cert-authority"
    hosts: str  # the pattern list, or "|1|salt|hash"
    key_type: str
    blob: bytes

    def matches(self, name: str) -> bool:
        if self.hosts.startswith("|1|"):
            try:
                _, _, salt, digest = self.hosts.split("|", 3)
                want = base64.b64decode(digest)
                got = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
            except (ValueError, binascii.Error):
                return False
            return hmac.compare_digest(want, got)
        return match_hostname(name, self.hosts) == 1


@dataclass
class KnownHosts:
    entries: list[Entry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "file:line: why"
    _by_name: dict = field(default_factory=dict, repr=False)  # name -> entries (a fan-out
    # shares one KnownHosts: each name is matched against the lines once)

    def add_lines(self, data: bytes, source: str) -> None:
        """Every line of ``data`` (known_hosts text from ``source``): an entry, or a reason in
        ``skipped`` as ``source:line: why``. Before any lookup: ``for_host`` caches."""
        for lineno, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            where = f"{source}:{lineno}"
            got = parse_line(raw, where)
            if isinstance(got, Entry):
                self.entries.append(got)
            elif got is not None:
                self.skipped.append(f"{where}: {got}; line skipped")

    def for_host(self, name: str) -> list[Entry]:
        found = self._by_name.get(name)
        if found is None:
            found = [e for e in self.entries if e.matches(name)]
            if len(self._by_name) < 4096:
                self._by_name[name] = found
        return found

    def is_revoked(self, key: Any, name: str = "*") -> bool:
        blob = key if isinstance(key, bytes) else key.asbytes()
        return any(e.marker == "@revoked" and e.blob == blob for e in self.for_host(name))


def parse_line(line: str, where: str) -> Entry | str | None:
    """An Entry, None for blanks/comments, or why the line is skipped."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    fields = line.split()
    marker = ""
    if fields[0].startswith("@"):
        marker = fields.pop(0)
        if marker not in ("@revoked", "@cert-authority"):
            return f"unknown marker {marker}"
    if len(fields) < 3:
        return "too few fields (want: hosts key-type base64-key)"
    hosts, key_type, b64 = fields[:3]
    try:
        blob = base64.b64decode(b64, validate=True)
        inner = blob_type(blob)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return f"key is not valid base64 key data ({key_type})"
    if inner != key_type:
        return f"key type {key_type} does not match the key data ({inner})"
    if hosts.startswith("|") and not hosts.startswith("|1|"):
        return "unknown hashed host name format"
    return Entry(where, marker, hosts, key_type, blob)


def read_known_hosts(paths: list[str], host: str = "") -> KnownHosts:
    """Every line of every file in ``paths`` (missing or unreadable files are empty)."""
    known = KnownHosts()
    for path in paths:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            continue
        except OSError as exc:
            known.skipped.append(f"{path}: cannot read ({exc.strerror}); treated as empty")
            continue
        known.add_lines(data, path)
    return known


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
        except OSError:
            stamp.append((path, None))
            continue
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


def load_for(spec: HostSpec) -> KnownHosts:
    return cached_known_hosts(all_known_hosts_files(spec), spec.name)


@dataclass(frozen=True)
class Decision:
    status: str  # ok, new, changed, revoked
    entry: Entry | None = None  # the line that accepted, or one holding another key
    others: tuple[str, ...] = ()  # key types pinned for the host (new/changed)
    ca_lines: tuple[str, ...] = ()  # @cert-authority lines that name the host


def decide(known: KnownHosts, name: str, blob: bytes) -> Decision:
    """check_key_in_hostkeys: revoked first, then any plain line holding this key."""
    mine = known.for_host(name)
    if any(e.marker == "@revoked" and e.blob == blob for e in mine):
        return Decision(REVOKED, next(e for e in mine if e.marker == "@revoked" and e.blob == blob))
    plain = [e for e in mine if not e.marker]
    for e in plain:
        if e.blob == blob:
            return Decision(OK, e)
    cas = tuple(e.where for e in mine if e.marker == "@cert-authority")
    types = tuple(dict.fromkeys(e.key_type for e in plain))
    if plain:
        return Decision(CHANGED, plain[0], types, cas)
    return Decision(NEW, None, (), cas)


def pinned_types(known: KnownHosts, name: str) -> list[str]:
    """Key types pinned for ``name`` (file order): ssh asks for these algorithms first."""
    return list(dict.fromkeys(e.key_type for e in known.for_host(name) if not e.marker))
