"""The host's Docker engine API over the SSH connection already open, with no process started
on the host: an OpenSSH ``direct-streamlocal@openssh.com`` channel to the engine's unix socket
and one plain HTTP/1.1 request on it.

**The channel.** OpenSSH's PROTOCOL file (section 2.4, "Unix domain socket forwarding")
defines the channel open as RFC 4254's ``SSH_MSG_CHANNEL_OPEN`` (type, sender channel,
initial window, maximum packet) followed by ``string socket path``, ``string reserved``,
``uint32 reserved``. sshd (``serverloop.c``) parses exactly those fields and ends the whole
connection when they are missing, and paramiko's ``Transport.open_channel`` adds extra fields
only for the TCP and X11 kinds; so :func:`open_streamlocal` sends that message itself. It
mirrors ``open_channel`` and is the one place that touches paramiko's private parts
(:data:`PARAMIKO_PARTS`); ``tests/unit/test_streamlocal.py`` fails loudly when one changes.

sshd answers a refused open with reason 2 ("connect failed") and the text "open failed"
whatever the cause: ``AllowStreamLocalForwarding no`` (or ``local`` missing),
``DisableForwarding``, ``no-port-forwarding``/``restrict`` in authorized_keys, no socket at
that path, or a socket the login user may not open. :class:`StreamLocalRefused` says so.

**The request.** ``http.client`` speaks HTTP/1.1 on the channel (status line, headers,
Content-Length or chunked body). The path is unversioned: every Docker engine answers it at its
own current API version (moby's version middleware), so no ``/version`` round trip is needed
and no engine is ever asked for a version below its minimum (Docker 29: 1.44).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any
from urllib.parse import quote

DOCKER_SOCKET = "/var/run/docker.sock"
CHANNEL_KIND = "direct-streamlocal@openssh.com"
MAX_BODY = 4 << 20  # an image inspect is a few KiB; anything near this is not what was asked
# paramiko Transport / Channel internals used by open_streamlocal (checked by the unit tests).
PARAMIKO_PARTS = {
    "Transport": ("lock", "_channels", "channel_events", "channels_seen", "_next_channel",
                  "_sanitize_window_size", "_sanitize_packet_size", "_send_user_message",
                  "get_exception", "active"),
    "Channel": ("_set_transport", "_set_window"),
}


class StreamLocalRefused(Exception):
    """The channel, the socket or the HTTP answer was not usable; ``reason`` says why in words
    a user can act on."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def channel_open_message(chanid: int, window: int, max_packet: int, path: str) -> Any:
    """The ``SSH_MSG_CHANNEL_OPEN`` of a ``direct-streamlocal@openssh.com`` channel."""
    from paramiko.common import cMSG_CHANNEL_OPEN
    from paramiko.message import Message

    m = Message()
    m.add_byte(cMSG_CHANNEL_OPEN)
    m.add_string(CHANNEL_KIND)
    m.add_int(chanid)
    m.add_int(window)
    m.add_int(max_packet)
    m.add_string(path)
    m.add_string("")  # reserved
    m.add_int(0)  # reserved
    return m


def open_streamlocal(transport: Any, path: str = DOCKER_SOCKET, timeout: float = 10.0) -> Any:
    """A paramiko ``Channel`` connected to the unix socket ``path`` on the SSH server's side
    (raises StreamLocalRefused). ``transport`` is a connected, authenticated
    ``paramiko.Transport``; this mirrors its ``open_channel`` with the extra fields."""
    from paramiko.channel import Channel

    if not transport.active:
        raise StreamLocalRefused("the SSH connection is closed")
    with transport.lock:
        window = transport._sanitize_window_size(None)
        max_packet = transport._sanitize_packet_size(None)
        chanid = transport._next_channel()
        chan = Channel(chanid)
        transport._channels.put(chanid, chan)
        transport.channel_events[chanid] = event = threading.Event()
        transport.channels_seen[chanid] = True
        chan._set_transport(transport)
        chan._set_window(window, max_packet)
    transport._send_user_message(channel_open_message(chanid, window, max_packet, path))
    deadline = time.monotonic() + timeout
    while not event.wait(0.05):
        if not transport.active:
            raise StreamLocalRefused(f"the SSH connection closed while opening a channel to {path}")
        if time.monotonic() > deadline:
            transport._channels.delete(chanid)
            transport.channel_events.pop(chanid, None)
            raise StreamLocalRefused(f"the SSH server did not answer a channel open to {path} "
                                     f"within {timeout:g}s")
    opened = transport._channels.get(chanid)
    if opened is None:
        raise StreamLocalRefused(
            f"the SSH server refused a channel to {path} (sshd says only 'open failed': "
            "AllowStreamLocalForwarding or DisableForwarding in its sshd_config, no-port-forwarding "
            "or restrict on the key, no socket there, or one this user may not open)")
    opened.settimeout(timeout)
    return opened


class _ChannelHTTP(http.client.HTTPConnection):
    """``http.client`` on an already open channel (never dials)."""

    def __init__(self, chan: Any, timeout: float):
        super().__init__("docker", timeout=timeout)
        self._chan = chan

    def connect(self) -> None:
        self.sock = self._chan


def http_get_json(chan: Any, path: str, timeout: float = 10.0) -> tuple[int, Any, dict[str, str]]:
    """GET ``path`` on an open channel: (status, decoded JSON body, headers). Raises
    StreamLocalRefused when the answer is not HTTP with a JSON body (e.g. the socket is not an
    engine's) or is larger than :data:`MAX_BODY`."""
    conn = _ChannelHTTP(chan, timeout)
    try:
        conn.request("GET", path, headers={"Accept": "application/json"})
        resp = conn.getresponse()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        if resp.length is not None and resp.length > MAX_BODY:
            raise StreamLocalRefused(f"the answer to GET {path} is larger than {MAX_BODY} bytes")
        # a known length is read whole (short: IncompleteRead); chunked or until-close, bounded
        body = resp.read() if resp.length is not None else resp.read(MAX_BODY + 1)
    except (http.client.HTTPException, OSError, EOFError) as exc:
        raise StreamLocalRefused(f"no HTTP answer on the socket ({type(exc).__name__}: {exc})") from exc
    finally:
        conn.close()
    if len(body) > MAX_BODY:
        raise StreamLocalRefused(f"the answer to GET {path} is larger than {MAX_BODY} bytes")
    try:
        data = json.loads(body) if body else None
    except ValueError as exc:
        raise StreamLocalRefused(f"the answer to GET {path} is not JSON (HTTP {resp.status}: "
                                 f"{body[:80]!r})") from exc
    return resp.status, data, headers


def image_path(ref: str) -> str:
    """The engine API path of ``GET /images/{ref}/json`` (unversioned: see the module doc);
    quoted as docker-py quotes it (``/`` and ``:`` kept: the engine's route takes both)."""
    return f"/images/{quote(ref, safe='/:')}/json"

