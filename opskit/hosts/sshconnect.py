"""Opening an SSH connection: the socket (TCP, jump host or ProxyCommand), the identity
keys (parsed once per file version), and connect errors spelled out for people."""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from opskit.errors import HostError, HostKeyError, OpskitError
from opskit.hosts.knownhosts import fingerprint, known_hosts_entry_name, known_hosts_files
from opskit.hosts.spec import HostSpec

_KEYS: dict[tuple, Any] = {}
_KEYS_LOCK = threading.Lock()


def quiet_paramiko_logs() -> None:
    """Keep paramiko's transport thread from printing tracebacks to stderr.

    Without a handler, Python's last-resort handler prints paramiko's ERROR records (e.g. a
    banner that never came); opskit reports those failures itself as HostErrors.
    """
    logger = logging.getLogger("paramiko")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())


def identity_files(spec: HostSpec) -> list[str]:
    """The spec's IdentityFile entries that exist, with ``~`` and ``%`` tokens expanded."""
    from opskit.hosts.sshconfig import expand_path_tokens

    out = []
    for raw in spec.identityfile:
        path = expand_path_tokens(
            raw, host=spec.name, hostname=spec.hostname, port=spec.port, user=spec.user or ""
        )
        if os.path.exists(path):
            out.append(path)
    return out


def load_identities(paths: list[str]) -> tuple[Any, list[str]]:
    """The first identity file as a loaded key (parsed once per file version), and the
    other files for paramiko to try if that one is refused. A key that needs a passphrase
    or does not parse is left to paramiko, which reports it."""
    import paramiko

    for i, path in enumerate(paths):
        try:
            st = os.stat(path)
            stamp = (path, st.st_ino, st.st_size, st.st_mtime_ns)
            with _KEYS_LOCK:
                key = _KEYS.get(stamp)
            if key is None:
                key = paramiko.PKey.from_path(path)
        except (paramiko.SSHException, ValueError, TypeError, OSError):
            continue  # encrypted, unknown or gone: paramiko tries it from key_filename
        else:
            with _KEYS_LOCK:
                _KEYS[stamp] = key
            return key, paths[:i] + paths[i + 1:]
    return None, paths


def proxy_command(spec: HostSpec) -> Any:
    """The user's own ProxyCommand, run as ssh runs it: ``$SHELL -c "exec COMMAND"`` with the
    tokens %h %k %n %p %r %% expanded (sshconnect.c expand_proxy_command)."""
    import shlex

    import paramiko

    from opskit.hosts.sshconfig import expand_tokens

    command = expand_tokens(
        spec.proxycommand or "",
        {"h": spec.hostname, "p": str(spec.port), "r": spec.user or "", "n": spec.name,
         "k": spec.hostkey_alias or spec.name},
        "ProxyCommand",
    )
    shell = os.environ.get("SHELL") or "/bin/sh"
    try:
        return paramiko.ProxyCommand(shlex.join([shell, "-c", f"exec {command}"]))
    except Exception as exc:  # noqa: BLE001 - reported with the command
        raise HostError(spec.name, f"ProxyCommand {command!r} failed to start: {exc}") from exc


def tcp_connect(spec: HostSpec) -> socket.socket:
    """A TCP connection to the host's SSH port within ``connect_timeout``, errors spelled out."""
    where = f"{spec.hostname}:{spec.port}"
    try:
        sock = socket.create_connection((spec.hostname, spec.port), spec.connect_timeout)
    except ConnectionRefusedError as exc:
        raise HostError(
            spec.name, f"connection refused by {where}",
            "is sshd running there, and is the port right (Port in ~/.ssh/config or the inventory)?",
        ) from exc
    except TimeoutError as exc:
        raise HostError(
            spec.name, f"no answer from {where} within {spec.connect_timeout:g}s",
            "is the host up and reachable from here?",
        ) from exc
    except socket.gaierror as exc:
        raise HostError(spec.name, f"cannot resolve host name {spec.hostname!r}: {exc}") from exc
    except OSError as exc:
        raise HostError(spec.name, f"cannot connect to {where}: {exc.strerror or exc}") from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def connect_error(spec: HostSpec, exc: BaseException) -> OpskitError:
    """A paramiko connect failure -> a HostError that says what happened and what to do."""
    import paramiko

    where = f"{spec.hostname}:{spec.port}"
    if isinstance(exc, OpskitError):
        return exc
    if isinstance(exc, paramiko.BadHostKeyException):
        entry = known_hosts_entry_name(spec.hostname, spec.port)
        return HostKeyError(
            spec.name,
            f"HOST KEY CHANGED for {entry}: expected {fingerprint(exc.expected_key)}, got "
            f"{exc.key.get_name()} {fingerprint(exc.key)}. Someone may be intercepting the "
            "connection",
            f"if the host was really reinstalled, remove its old line (ssh-keygen -R '{entry}' "
            f"-f FILE; known_hosts: {' '.join(known_hosts_files(spec))}) "
            f"and run 'opskit hosts trust {spec.name}'",
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return HostError(
            spec.name, f"authentication failed as {spec.user or 'the current user'}: {exc}",
            "check User and IdentityFile for this host in ~/.ssh/config or the inventory",
        )
    text = str(exc)
    silent = ("banner", "no existing session", "negotiation failed", "timed out")
    if isinstance(exc, (TimeoutError, EOFError)) or any(w in text.lower() for w in silent):
        return HostError(
            spec.name,
            f"{where} accepted the connection but did not speak SSH within "
            f"{spec.connect_timeout:g}s",
            "is it an SSH server, and is the port right? (an overloaded host answers late too)",
        )
    if "incompatible" in text.lower():  # paramiko: "Incompatible ssh server (no acceptable ciphers)"
        return HostError(
            spec.name, f"{where} and opskit agree on no algorithm: {text}",
            "see Ciphers, MACs, KexAlgorithms and HostKeyAlgorithms for this host in the ssh config "
            "('ssh -G HOST' prints what ssh would offer; opskit offers the part paramiko implements)")
    return HostError(spec.name, f"cannot connect to {where}: {text or type(exc).__name__}")
