"""API version negotiation, and the private docker-py parts opskit's SSH client relies on.

If docker-py changes one of those parts (SSHHTTPAdapter's fields, SSHConnectionPool, how
APIClient builds URLs from ``_version``), these tests fail loudly, naming what changed, before
any user meets it. The SSH path is driven end to end through docker-py's own code with a fake
paramiko client whose exec channel is one end of a socket pair, answered by a tiny engine.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from pathlib import Path

import pytest

from opskit.errors import DockerUnavailable
from opskit.hosts import engine
from opskit.hosts.engine import TESTED_DOCKER_PY, negotiate_api_version, ssh_docker_client

ROOT = Path(__file__).resolve().parents[2]


def _v(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def test_docker_py_is_in_the_tested_range_and_pyproject_pins_it() -> None:
    import docker

    low, high = (_v(bound) for bound in TESTED_DOCKER_PY)
    assert low <= _v(docker.__version__) < high, (
        f"docker-py {docker.__version__} is outside the range opskit's SSH client was tested "
        f"with ({','.join(TESTED_DOCKER_PY)}): re-check opskit/hosts/engine.py, then the pin")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"docker{",".join(TESTED_DOCKER_PY)}"' in pyproject


def test_private_parts_still_exist() -> None:
    import inspect

    from docker import APIClient, constants
    from docker.transport.sshconn import SSHConnection, SSHConnectionPool, SSHHTTPAdapter

    assert {"ssh_client", "timeout", "maxsize", "host"} <= set(
        inspect.signature(SSHConnectionPool.__init__).parameters)
    assert {"ssh_transport", "timeout", "host"} <= set(
        inspect.signature(SSHConnection.__init__).parameters)
    assert {"pools", "timeout", "ssh_client", "ssh_params", "max_pool_size"} <= set(
        SSHHTTPAdapter.__attrs__)
    assert hasattr(SSHHTTPAdapter, "get_connection") and hasattr(SSHHTTPAdapter, "_connect")
    pool = SSHConnectionPool(ssh_client=_FakeEngine({}), timeout=7, host="gpu1")
    assert isinstance(pool.ssh_transport, _FakeEngine) and (pool.timeout, pool.ssh_host) == (7, "gpu1")
    assert type(pool._new_conn()) is SSHConnection  # what opskit's pool makes instead
    for name in ("DEFAULT_DOCKER_API_VERSION", "MINIMUM_DOCKER_API_VERSION",
                 "DEFAULT_MAX_POOL_SIZE", "DEFAULT_NUM_POOLS_SSH"):
        assert hasattr(constants, name), name
    api = APIClient(base_url="tcp://127.0.0.1:1", version="1.41")
    api._version = "1.43"
    assert "/v1.43/info" in api._url("/info"), "APIClient no longer builds URLs from _version"
    assert api.api_version == "1.43"


@pytest.mark.parametrize(("server", "chosen"), [
    ({"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10.24"}, "1.41"),
    ({"ApiVersion": "1.45", "MinAPIVersion": "1.24", "Version": "26.1.5"}, "1.45"),
    ({"ApiVersion": "1.52", "MinAPIVersion": "1.44", "Version": "29.0.0"}, "1.45"),
    ({"ApiVersion": "1.9"}, None),  # never compared as text ("1.9" > "1.45")
])
def test_negotiation(server: dict, chosen: str | None) -> None:
    if chosen is None:
        with pytest.raises(DockerUnavailable, match="too old"):
            negotiate_api_version(server, "1.45", "1.24", "h")
        return
    assert negotiate_api_version(server, "1.45", "1.24", "h") == chosen


def test_engine_newer_than_the_client_is_named() -> None:
    with pytest.raises(DockerUnavailable, match=r"newer than this client: Docker 31.0 "
                       r"\(API 1.50 to 1.55\) refuses API 1.45") as err:
        negotiate_api_version({"ApiVersion": "1.55", "MinAPIVersion": "1.50", "Version": "31.0"},
                              "1.45", "1.24", "h")
    assert "upgrade docker-py" in (err.value.hint or "")


class _Channel(socket.socket):
    """What paramiko's transport.open_session() gives: a socket with exec_command."""

    command: str | None = None
    cut = False  # the SSH connection under it was cut: paramiko's close raises EOFError

    def exec_command(self, command: str) -> None:
        self.command = command

    def close(self) -> None:
        super().close()
        if self.cut:
            raise EOFError()


class _FakeEngine:
    def __init__(self, version: dict):
        self.version = version
        self.paths: list[str] = []
        self.channels: list[_Channel] = []

    def get_transport(self) -> _FakeEngine:  # the paramiko SSHClient's method
        return self

    def open_session(self) -> _Channel:
        ours, theirs = socket.socketpair()
        channel = _Channel(fileno=ours.detach())
        self.channels.append(channel)
        threading.Thread(target=self._serve, args=(theirs,), daemon=True).start()
        return channel

    def _serve(self, sock: socket.socket) -> None:
        with sock, sock.makefile("rb") as rfile:
            while True:
                line = rfile.readline()
                if not line:
                    return
                path = line.split()[1].decode()
                while rfile.readline() not in (b"\r\n", b""):
                    pass
                self.paths.append(path)
                body = (json.dumps(self.version) if path == "/version" else "OK").encode()
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


def test_ssh_client_speaks_the_negotiated_version_over_our_channel() -> None:
    fake = _FakeEngine({"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10.24"})
    client = ssh_docker_client("gpu1", fake, timeout=10)
    assert client.api.api_version == "1.41"
    assert client.ping() is True
    assert fake.paths == ["/version", "/v1.41/_ping"]
    assert fake.channels and fake.channels[0].command == "docker system dial-stdio"
    client.api.close()


def test_a_client_whose_ssh_connection_was_cut_closes_quietly() -> None:
    # paramiko raises EOFError closing a channel whose connection was cut before it noticed;
    # raised from urllib3's pool finalizer, that is a traceback on stderr at the CLI's exit.
    fake = _FakeEngine({"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10.24"})
    client = ssh_docker_client("gpu1", fake, timeout=10)
    assert client.ping() is True
    for channel in fake.channels:
        channel.cut = True
    client.api.close()  # closes every pooled connection (raised EOFError before)
    assert fake.channels and all(ch.fileno() == -1 for ch in fake.channels)


def test_ssh_client_refuses_an_engine_too_new_before_any_other_request() -> None:
    fake = _FakeEngine({"ApiVersion": "1.60", "MinAPIVersion": "1.50", "Version": "40.0"})
    with pytest.raises(DockerUnavailable, match="gpu1: the engine is newer than this client"):
        ssh_docker_client("gpu1", fake, timeout=10)
    assert fake.paths == ["/version"]


def test_local_client_negotiates_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    with pytest.raises(DockerUnavailable, match="no usable Docker engine"):
        engine.local_docker_client()
