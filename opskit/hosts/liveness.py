"""Notice a host that stopped answering while the TCP connection stays open.

A frozen machine (or a path that drops packets) leaves a connection open and silent: a read
waits for ever, and paramiko's own keepalives ask for no reply. Here, as OpenSSH's
``ServerAliveInterval``/``ServerAliveCountMax`` do: every byte received is timed
(:class:`RxClock` wraps the socket); after ``interval`` seconds of silence a keepalive that
asks for a reply is sent; after ``interval x count`` seconds of silence the connection is
closed, which ends every read and write waiting on it, and :attr:`Liveness.dead` says why.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class RxClock:
    """A socket (or ProxyCommand, or channel) that remembers when it last received a byte."""

    def __init__(self, sock: Any):
        self._sock = sock
        self.last_rx = time.monotonic()
        # paramiko calls these for every packet: bound here, not looked up by __getattr__
        for name in ("send", "sendall", "settimeout"):
            if hasattr(sock, name):
                setattr(self, name, getattr(sock, name))

    def recv(self, n: int) -> bytes:
        data = self._sock.recv(n)
        if data:
            self.last_rx = time.monotonic()
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def send_keepalive(transport: Any) -> None:
    """A global request that asks for a reply (any reply proves the host is alive)."""
    from paramiko.common import cMSG_GLOBAL_REQUEST
    from paramiko.message import Message

    msg = Message()
    msg.add_byte(cMSG_GLOBAL_REQUEST)
    msg.add_string("keepalive@openssh.com")
    msg.add_boolean(True)
    try:
        transport._send_user_message(msg)
    except (OSError, EOFError, AttributeError):
        return  # the connection is gone; the watch notices


class Liveness:
    """Watch one paramiko transport; close it when its host is silent past the bound."""

    def __init__(self, host: str, clock: RxClock, interval: float, count: int):
        self.host = host
        self.clock = clock
        self.interval = max(0.2, float(interval))
        self.count = max(1, int(count))
        self.dead: str | None = None
        self.pings = 0
        self._stop = threading.Event()
        self._pinging = threading.Lock()

    @property
    def bound(self) -> float:
        return self.interval * self.count

    def start(self, transport: Any) -> Liveness:
        threading.Thread(target=self._watch, args=(transport,), name=f"liveness-{self.host}", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _ping(self, transport: Any) -> None:
        if not self._pinging.acquire(blocking=False):
            return  # one still waits to be sent (a full send buffer): the silence check goes on
        try:
            send_keepalive(transport)
        finally:
            self._pinging.release()

    def _watch(self, transport: Any) -> None:
        step = min(1.0, self.interval / 2)
        while not self._stop.wait(step) and transport.is_active():
            silent = time.monotonic() - self.clock.last_rx
            if silent >= self.bound and self.pings:  # never given up without having asked
                self.dead = (f"the host stopped answering (nothing received for {silent:.0f}s; "
                             f"keepalive every {self.interval:g}s, {self.count} missed)")
                transport.close()
                return
            if silent >= self.interval:
                self.pings += 1
                threading.Thread(target=self._ping, args=(transport,), daemon=True).start()
