"""A loopback SSH server for host-key tests: presents the host keys it is given, records
every authentication attempt, and lets nobody in.

A client that gets as far as authenticating accepted the host key; one that stops before
(an unknown, changed or revoked key) never shows up in ``auth_attempts``. Runs in a thread
of the test process (paramiko's server side), on 127.0.0.1 and a free port, until
``close()``. Host keys are OpenSSH private key files (``make_host_key`` uses ssh-keygen).
"""

from __future__ import annotations

import logging
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any


def make_host_key(path: Path, key_type: str = "ed25519") -> str:
    """A new key pair at ``path`` (ssh-keygen); returns the public key ``type base64``."""
    # PEM for ECDSA: paramiko misreads some OpenSSH-format ECDSA private keys
    pem = ["-m", "PEM"] if key_type == "ecdsa" else []
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, *pem, "-N", "", "-C", "", "-f", str(path)],
                   check=True, capture_output=True)
    return " ".join(Path(f"{path}.pub").read_text().split()[:2])


def _load(path: Path) -> Any:
    import paramiko

    kind = Path(f"{path}.pub").read_text().split()[0]
    cls = {"ssh-ed25519": paramiko.Ed25519Key, "ssh-rsa": paramiko.RSAKey}.get(kind, paramiko.ECDSAKey)
    return cls.from_private_key_file(str(path))


class KeyServer:
    def __init__(self, host_key_files: list[Path]):

        logging.getLogger("paramiko").addHandler(logging.NullHandler())
        self.keys = [_load(p) for p in host_key_files]
        self.auth_attempts: list[str] = []
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.5)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        import paramiko

        server = self

        class Iface(paramiko.ServerInterface):
            def get_allowed_auths(self, username: str) -> str:
                return "publickey"

            def check_auth_publickey(self, username: str, key: Any) -> int:
                with server._lock:
                    server.auth_attempts.append(f"{username} {key.get_name()}")
                return paramiko.AUTH_FAILED

            def check_auth_none(self, username: str) -> int:
                with server._lock:
                    server.auth_attempts.append(f"{username} none")
                return paramiko.AUTH_FAILED

        transport = paramiko.Transport(conn)
        for key in self.keys:
            transport.add_server_key(key)
        try:
            transport.start_server(server=Iface())
            transport.accept(10)
        except Exception:  # noqa: BLE001 - a client that hangs up is the normal end
            pass
        finally:
            transport.close()

    def attempts(self) -> list[str]:
        with self._lock:
            return list(self.auth_attempts)

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=5)
