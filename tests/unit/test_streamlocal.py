"""The direct-streamlocal channel open and the HTTP/1.1 exchange on it.

The channel open goes through a real paramiko client and server over a socket pair: the server
reads the open message field by field as sshd does (``serverloop.c``: socket path, reserved
string, reserved uint32, then nothing) and answers it; a refusal becomes StreamLocalRefused
and leaves the connection usable. The HTTP side is read by ``http.client`` from a socket pair
served by canned answers (Content-Length, chunked, errors, garbage). The private paramiko
parts the channel open relies on are checked by name, so a paramiko release that changes them
fails here first. The real sshd is in tests/integration/test_ship_noop.py.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable

import paramiko
import pytest
from paramiko.common import MSG_CHANNEL_OPEN, OPEN_FAILED_CONNECT_FAILED, OPEN_SUCCEEDED
from paramiko.message import Message

from opskit.hosts import streamlocal as sl


def test_the_paramiko_parts_used_still_exist() -> None:
    client, server, _ = _pair(accept=True)
    try:
        for name in sl.PARAMIKO_PARTS["Transport"]:
            assert hasattr(client, name), f"paramiko.Transport has no {name} any more: see opskit/hosts/streamlocal.py"
        for name in sl.PARAMIKO_PARTS["Channel"]:
            assert hasattr(paramiko.Channel, name), f"paramiko.Channel has no {name} any more"
    finally:
        client.close()
        server.close()


def test_the_open_message_has_openssh_fields_in_order() -> None:
    m = Message(sl.channel_open_message(7, 2097152, 32768, "/var/run/docker.sock").asbytes())
    assert m.get_byte()[0] == MSG_CHANNEL_OPEN
    assert [m.get_text(), m.get_int(), m.get_int(), m.get_int(), m.get_text(), m.get_text(), m.get_int()] == [
        "direct-streamlocal@openssh.com", 7, 2097152, 32768, "/var/run/docker.sock", "", 0]
    assert m.get_remainder() == b""


def test_a_channel_opens_to_the_path_asked_and_carries_bytes() -> None:
    client, server, seen = _pair(accept=True)
    try:
        chan = sl.open_streamlocal(client, "/run/user/1000/docker.sock", timeout=5)
        far = server.accept(5)
        far.sendall(b"hello")
        assert chan.recv(5) == b"hello"
        chan.close()
        assert seen == [("direct-streamlocal@openssh.com", "/run/user/1000/docker.sock", "", 0, b"")]
    finally:
        client.close()
        server.close()


def test_a_refused_open_is_named_and_the_connection_lives_on() -> None:
    client, server, seen = _pair(accept=False)
    try:
        with pytest.raises(sl.StreamLocalRefused, match="refused a channel to /var/run/docker.sock.*AllowStream"):
            sl.open_streamlocal(client, timeout=5)
        assert client.is_active() and seen
        session = client.open_session(timeout=5)  # the connection still works for commands
        session.close()
    finally:
        client.close()
        server.close()


def test_a_closed_connection_is_refused_before_anything_is_sent() -> None:
    client, server, seen = _pair(accept=True)
    client.close()
    server.close()
    with pytest.raises(sl.StreamLocalRefused, match="closed"):
        sl.open_streamlocal(client, timeout=5)
    assert seen == []


# -- HTTP on the channel ------------------------------------------------------------------------
def _serve(answer: bytes | Callable[[bytes], bytes]) -> tuple[socket.socket, list[bytes]]:
    """One end of a socket pair; the other answers the first request with ``answer``."""
    near, far = socket.socketpair()
    requests: list[bytes] = []

    def run() -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = far.recv(4096)
            if not chunk:
                break
            data += chunk
        requests.append(data)
        far.sendall(answer(data) if callable(answer) else answer)
        far.close()

    threading.Thread(target=run, daemon=True).start()
    near.settimeout(5)
    return near, requests


def _http(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", "Api-Version: 1.45", "Content-Type: application/json", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_a_json_answer_with_its_length() -> None:
    body = json.dumps({"Id": "sha256:" + "a" * 64, "RepoTags": ["p:v1"]}).encode()
    chan, requests = _serve(_http("200 OK", body, f"Content-Length: {len(body)}"))
    status, data, headers = sl.http_get_json(chan, sl.image_path("p:v1"))
    assert (status, data["RepoTags"], headers["api-version"]) == (200, ["p:v1"], "1.45")
    first = requests[0].split(b"\r\n")
    assert first[0] == b"GET /images/p:v1/json HTTP/1.1" and b"Host: docker" in first


def test_a_chunked_answer() -> None:
    body = json.dumps({"message": "No such image: p:v9"}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:5], body[5:])) + b"0\r\n\r\n"
    chan, _ = _serve(_http("404 Not Found", chunks, "Transfer-Encoding: chunked"))
    assert sl.http_get_json(chan, "/images/p:v9/json")[:2] == (404, {"message": "No such image: p:v9"})


@pytest.mark.parametrize(("answer", "match"), [
    (b"SSH-2.0-OpenSSH_9.2\r\n", "no HTTP answer"),  # something else listens there
    (b"", "no HTTP answer"),  # closed at once
    (_http("200 OK", b"<html>", "Content-Length: 6"), "not JSON"),
    (_http("200 OK", b'{"Id": "x"', "Content-Length: 40"), "no HTTP answer"),  # cut short
])
def test_answers_that_are_not_an_engines_are_refused(answer: bytes, match: str) -> None:
    chan, _ = _serve(answer)
    with pytest.raises(sl.StreamLocalRefused, match=match):
        sl.http_get_json(chan, "/images/x/json")


@pytest.mark.parametrize("framing", ["length", "chunked", "until close"])
def test_an_oversized_answer_is_refused(monkeypatch: pytest.MonkeyPatch, framing: str) -> None:
    monkeypatch.setattr(sl, "MAX_BODY", 10)
    body = b'{"a": "' + b"x" * 20 + b'"}'
    answer = {"length": _http("200 OK", body, f"Content-Length: {len(body)}"),
              "chunked": _http("200 OK", b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body), "Transfer-Encoding: chunked"),
              "until close": _http("200 OK", body, "Connection: close")}[framing]
    chan, _ = _serve(answer)
    with pytest.raises(sl.StreamLocalRefused, match="larger than 10 bytes"):
        sl.http_get_json(chan, "/images/x/json")


@pytest.mark.parametrize(("ref", "path"), [
    ("p:v1", "/images/p:v1/json"),
    ("registry.example:5000/team/p:v1", "/images/registry.example:5000/team/p:v1/json"),
    ("sha256:" + "b" * 64, "/images/sha256:" + "b" * 64 + "/json"),
    ("a b?c#d", "/images/a%20b%3Fc%23d/json"),
])
def test_image_paths_are_quoted_as_docker_py_quotes_them(ref: str, path: str) -> None:
    from docker import APIClient

    assert sl.image_path(ref) == path
    assert APIClient(base_url="tcp://127.0.0.1:1", version="1.41")._url("/images/{0}/json", ref).endswith(path)


# -- a paramiko client and server over a socket pair ------------------------------------------
class _Server(paramiko.ServerInterface):
    def __init__(self, accept: bool):
        self.accept = accept

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session" or (kind == sl.CHANNEL_KIND and self.accept):
            return OPEN_SUCCEEDED
        return OPEN_FAILED_CONNECT_FAILED  # what sshd answers to every refusal


def _pair(accept: bool) -> tuple[paramiko.Transport, paramiko.Transport, list]:
    """(client, server) transports, authenticated; ``seen`` gets the fields of every
    direct-streamlocal open as sshd parses them: (kind, path, reserved, reserved, rest)."""
    a, b = socket.socketpair()
    server = paramiko.Transport(b)
    server.add_server_key(paramiko.ECDSAKey.generate())
    seen: list = []
    parse = server._handler_table[MSG_CHANNEL_OPEN]

    def peek(m: Message) -> None:
        copy = Message(m.asbytes())
        kind = copy.get_text()
        if kind == sl.CHANNEL_KIND:
            copy.get_int(), copy.get_int(), copy.get_int()
            seen.append((kind, copy.get_text(), copy.get_text(), copy.get_int(), copy.get_remainder()))
        parse(m)

    server._handler_table[MSG_CHANNEL_OPEN] = peek
    server.start_server(threading.Event(), server=_Server(accept))  # an event: do not block
    client = paramiko.Transport(a)
    client.connect(username="u", password="p")
    return client, server, seen
