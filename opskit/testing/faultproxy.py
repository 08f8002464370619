"""A TCP proxy on 127.0.0.1 in front of a real sshd, for injecting connection faults.

opskit connects to the proxy's port; every byte goes on to the real server. The proxy can, at
any moment or after a given number of bytes: cut every connection (an SSH connection killed),
stop accepting (sshd stopped: connections are refused until :meth:`start` again), or stop
forwarding while keeping the connections open (a frozen path). Loopback only.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._frozen = threading.Event()
        self._trigger: tuple[int, Any] | None = None  # (at byte count, action) run once
        self.fired = 0
        self.bytes = 0

    # -- control ----------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind(("127.0.0.1", self.port))
        lst.listen(16)
        self.port = lst.getsockname()[1]
        self._listener = lst
        threading.Thread(target=self._accept, args=(lst,), daemon=True).start()
        return self

    def stop_listening(self) -> None:
        """sshd stopped: new connections are refused (existing ones are cut too)."""
        lst, self._listener = self._listener, None
        if lst is not None:
            with contextlib.suppress(OSError):
                lst.shutdown(socket.SHUT_RDWR)
            lst.close()
        self.kill_all()

    def kill_all(self) -> None:
        """Every connection cut at once (RST where the kernel sends one)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                with contextlib.suppress(OSError):
                    s.close()

    def after(self, nbytes: int, action: Any) -> None:
        """Run ``action()`` (e.g. :meth:`kill_all`, :meth:`stop_listening`) once ``nbytes``
        more bytes have passed; ``fired`` counts the actions run."""
        with self._lock:
            self._trigger = (self.bytes + max(0, nbytes), action)

    def disarm(self) -> bool:
        """Cancel a pending action; True if one was pending (it never fired)."""
        with self._lock:
            pending, self._trigger = self._trigger is not None, None
        return pending

    def freeze(self, on: bool = True) -> None:
        if on:
            self._frozen.set()
        else:
            self._frozen.clear()

    def close(self) -> None:
        self.stop_listening()

    # -- forwarding -------------------------------------------------------------------------
    def _accept(self, lst: socket.socket) -> None:
        while True:
            try:
                client, _ = lst.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            while self._frozen.is_set():
                if self._frozen.wait(0.05) and not self._alive(src):
                    return
            if not self._count(len(data), src):
                return
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def _alive(self, sock: socket.socket) -> bool:
        with self._lock:
            return any(sock in pair for pair in self._pairs)

    def _count(self, n: int, src: socket.socket) -> bool:
        with self._lock:
            self.bytes += n
            action = None
            if self._trigger is not None and self.bytes >= self._trigger[0]:
                action, self._trigger = self._trigger[1], None
                self.fired += 1
        if action is not None:
            action()
            return self._alive(src)
        return True

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()
