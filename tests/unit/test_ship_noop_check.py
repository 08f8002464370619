"""Is the image already on the host? Asked through the engine's API on a socket channel (a fake
engine behind a socket pair here), judged by our IDs and diff IDs; else by the docker CLI, with
the reason in the event stream. The real sshd and engines of both stores are in
tests/integration/test_ship_noop.py."""

from __future__ import annotations

import json
import socket
import threading
from types import SimpleNamespace

import pytest
from _savearchives import sha

from opskit.hosts.dockerendpoint import PROBE_ARGV
from opskit.hosts.streamlocal import StreamLocalRefused
from opskit.images import ship as shipmod
from opskit.images.shipcheck import VIA_API, VIA_CLI, check_image
from opskit.testing.fake import FakeTransport

DIFF_IDS = [sha(b"a"), sha(b"b")]
CONFIG, MANIFEST = sha(b"config"), sha(b"manifest")
DEFAULT = "/var/run/docker.sock"
BY_TAGS = ("docker", "image", "ls", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}",
           "--filter", "reference=proj:v1")
BY_ID = ("docker", "image", "inspect", "--format", "{{.Id}} {{json .RootFS.Layers}} {{json .RepoTags}}", CONFIG)


def probe(docker_host: str = "") -> str:
    return f"{docker_host}\n\n--opskit-docker-config--\n"


def image(store: str = "legacy") -> SimpleNamespace:
    return SimpleNamespace(image_id=CONFIG, repo_tags=("proj:v1",), diff_ids=DIFF_IDS, store=store,
                           config_digest=CONFIG, ids=lambda: {CONFIG: "config digest", MANIFEST: "manifest digest"})


def inspect(host_id: str, layers=DIFF_IDS, tags=("proj:v1",)) -> tuple[int, dict]:
    return 200, {"Id": host_id, "RootFS": {"Type": "layers", "Layers": list(layers)}, "RepoTags": list(tags)}


class EngineHost(FakeTransport):
    """A FakeTransport whose host has engines behind unix sockets: ``engines`` maps a socket
    path to {API path: (status, JSON body)}; a path not there refuses the channel."""

    def __init__(self, commands: dict, engines: dict[str, dict], headers: str = "Api-Version: 1.45\r\n"):
        super().__init__("h", commands)
        self.engines, self.headers = engines, headers
        self.opened: list[str] = []
        self.asked: list[tuple[str, str]] = []

    def open_unix_socket(self, path: str) -> socket.socket:
        self.opened.append(path)
        if path not in self.engines:
            raise StreamLocalRefused(f"the SSH server refused a channel to {path}")
        near, far = socket.socketpair()
        threading.Thread(target=self._answer_http, args=(far, path), daemon=True).start()
        near.settimeout(5)
        return near

    def _answer_http(self, far: socket.socket, sock: str) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += far.recv(4096) or b"\r\n\r\n"
        api_path = data.split(b" ")[1].decode()
        self.asked.append((sock, api_path))
        status, body = self.engines[sock].get(api_path, (404, {"message": "No such image"}))
        raw = json.dumps(body).encode()
        far.sendall(f"HTTP/1.1 {status} X\r\n{self.headers}Content-Length: {len(raw)}\r\n\r\n".encode() + raw)
        far.close()


def ask(host: FakeTransport, img=None) -> tuple[tuple | None, str, list[str]]:
    events: list[str] = []
    found, via = check_image(host, img or image(), lambda h, m: events.append(m))
    return found, via, events


def test_our_tag_with_our_id_is_one_probe_and_one_request_and_no_docker_process() -> None:
    host = EngineHost({PROBE_ARGV: probe()}, {DEFAULT: {"/images/proj:v1/json": inspect(CONFIG)}})
    assert ask(host) == ((CONFIG, ["proj:v1"], "legacy"), VIA_API, [])
    assert [c[0] for c in host.calls] == [PROBE_ARGV] and host.asked == [(DEFAULT, "/images/proj:v1/json")]


def test_a_containerd_host_knows_it_by_the_manifest_digest() -> None:
    host = EngineHost({PROBE_ARGV: probe()}, {DEFAULT: {"/images/proj:v1/json": inspect(MANIFEST)}})
    assert ask(host)[:2] == ((MANIFEST, ["proj:v1"], "containerd"), VIA_API)


def test_our_tag_on_another_image_then_our_id_found_untagged() -> None:
    host = EngineHost({PROBE_ARGV: probe()}, {DEFAULT: {
        "/images/proj:v1/json": inspect(sha(b"older"), [sha(b"z")]),
        f"/images/{CONFIG}/json": inspect(CONFIG, tags=())}})
    assert ask(host)[:2] == ((CONFIG, [], "legacy"), VIA_API)


@pytest.mark.parametrize("answers", [
    {},  # 404 for both: not there
    {"/images/proj:v1/json": inspect(CONFIG, DIFF_IDS[:1])},  # our ID with other layers is not ours
    {"/images/proj:v1/json": inspect(sha(b"other"))},  # our tag names a foreign image
])
def test_not_there_is_answered_by_the_api_too(answers) -> None:
    host = EngineHost({PROBE_ARGV: probe()}, {DEFAULT: answers})
    assert ask(host) == (None, VIA_API, [])
    assert [c[0] for c in host.calls] == [PROBE_ARGV]


def test_a_unix_docker_host_is_followed() -> None:
    rootless = "/run/user/1000/docker.sock"
    host = EngineHost({PROBE_ARGV: probe(f"unix://{rootless}")},
                      {DEFAULT: {"/images/proj:v1/json": inspect(CONFIG)}, rootless: {}})
    assert ask(host) == (None, VIA_API, [])  # the CLI's engine lacks it, whatever the usual socket holds
    assert (rootless, "/images/proj:v1/json") in host.asked


@pytest.mark.parametrize(("host_kwargs", "why"), [
    ({"commands": {PROBE_ARGV: probe("tcp://10.0.0.5:2376")}, "engines": {DEFAULT: {}}},
     "DOCKER_HOST=tcp://10.0.0.5:2376 on the host is not a unix socket path"),
    ({"commands": {PROBE_ARGV: probe()}, "engines": {}}, "refused a channel to /var/run/docker.sock"),
    ({"commands": {PROBE_ARGV: probe()}, "engines": {DEFAULT: {"/images/proj:v1/json": (500, {"message": "boom"})}}},
     "answered HTTP 500 to an image inspect: boom"),
    ({"commands": {PROBE_ARGV: probe()}, "engines": {DEFAULT: {}}, "headers": ""},
     "is not a Docker engine"),
])
def test_the_cli_is_asked_when_the_api_is_not_usable_and_the_event_says_why(host_kwargs, why) -> None:
    host = EngineHost(**host_kwargs)
    host.add(BY_TAGS, f"{CONFIG} proj:v1\n")
    found, via, events = ask(host)
    assert (found, via) == ((CONFIG, ["proj:v1"], "legacy"), VIA_CLI)
    assert len(events) == 1 and why in events[0] and "asking the docker CLI" in events[0], events
    assert BY_TAGS in [c[0] for c in host.calls]


def test_a_transport_without_socket_channels_asks_the_cli() -> None:
    host = FakeTransport("h", {BY_TAGS: "", BY_ID: ("", "Error: No such image", 1)})
    found, via, events = ask(host)
    assert (found, via, events) == (None, VIA_CLI, [])  # no SSH connection: nothing to explain


def test_the_plan_and_the_result_say_how_the_host_was_asked() -> None:
    host = EngineHost({PROBE_ARGV: probe()}, {DEFAULT: {"/images/proj:v1/json": inspect(MANIFEST)}})
    img = image()
    img.layers = ()
    hp = shipmod.plan_host(host, img)
    assert (hp.image_present, hp.store, hp.checked_via, hp.host_image_id) == (True, "containerd", VIA_API, MANIFEST)
    assert hp.reason == "the image is already there (asked the engine API over SSH)"
    assert hp.to_dict()["checked_via"] == VIA_API
    r = shipmod.ship_one(host, img, hp, None, shipmod.ShipOptions())
    assert (r.mode, r.checked_via, r.wire_bytes) == ("none", VIA_API, 0)
