"""Bad input is refused before any connection: names, paths, modes; dead hosts time out."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from opskit.errors import HostError, UnsafeInputError, UsageError
from opskit.hosts.group import run_on_hosts
from opskit.hosts.inventory import Inventory
from opskit.hosts.spec import HostSpec, local_spec
from opskit.safety import (
    check_host_name,
    check_mode,
    check_path,
    check_remote_name,
    check_user_name,
)

BAD_NAMES = ["-oProxyCommand=id", "a;id", "a b", "gpu1\n", "a\nb", "$(id)", "`id`", "a|b",
             "a&b", "a>b", "", "a'b", 'a"b', "a\tb", "a\x00b", "h/x", "~root", "*"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_host_names(name: str) -> None:
    with pytest.raises(UnsafeInputError) as info:
        check_host_name(name)
    assert repr(name) in info.value.message


@pytest.mark.parametrize("name", ["gpu1", "gpu-1.example.org", "10.0.0.5", "node_7"])
def test_good_host_names(name: str) -> None:
    assert check_host_name(name) == name


@pytest.mark.parametrize("name", ["-l", "a;b", "root\n", "a b", ""])
def test_bad_user_names(name: str) -> None:
    with pytest.raises(UnsafeInputError):
        check_user_name(name)


@pytest.mark.parametrize(
    "path", ["-rf", "--help", "a\nb", "a\rb", "x\x00", "a\x1b[31m", "a\x7f", ""],
)
def test_bad_paths(path: str) -> None:
    with pytest.raises(UnsafeInputError) as info:
        check_path(path)
    assert "refusing" in info.value.message


@pytest.mark.parametrize("path", ["/data/run 1/x.pt", "./-rf", "~/x", "a*b", "relative/p",
                                  "R&D notes.txt", "price $5.txt", 'say "hi".txt', "a;b", "a|b",
                                  "$(id)", "`id`", "a>b", "a<b", "a\\b", "it's"])
def test_good_paths(path: str) -> None:
    assert check_path(path) == path


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "a\nb", "", "x\x1b[31m"])
def test_bad_remote_names(name: str) -> None:
    with pytest.raises(UnsafeInputError):
        check_remote_name(name, "dest")


@pytest.mark.parametrize("mode", ["755\n", "7777 ", "8", "u+x;id", "-R", "+x\n", "rwx", "u+q",
                                  "0755;", "$(id)", "", "12345"])
def test_bad_modes(mode: str) -> None:
    with pytest.raises(UnsafeInputError) as info:
        check_mode(mode)
    assert repr(mode) in info.value.message


@pytest.mark.parametrize("mode", ["755", "0644", "u+x", "go-w", "a=rX,u+s", "g=u"])
def test_good_modes(mode: str) -> None:
    assert check_mode(mode) == mode


@pytest.mark.parametrize("name", ["-oProxyCommand=id", "a;b", "x\n", "@g;x"])
def test_bad_names_refused_before_any_transport(name: str) -> None:
    made: list[HostSpec] = []
    inv = Inventory(hosts={"good": {"hostname": "127.0.0.1"}}, groups={"g": ["good"]})
    group = name.startswith("@")
    with pytest.raises(UsageError if group else UnsafeInputError) as info:
        specs = inv.expand(["good", name])
        run_on_hosts(specs, lambda t: None, transport_factory=made.append)
    assert ("unknown host group" if group else "refusing") in str(info.value)
    assert made == []


# -- dead hosts -------------------------------------------------------------------------------
@pytest.fixture
def silent_port() -> Iterator[int]:
    """A 127.0.0.1 listener that accepts connections and never says a word."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield srv.getsockname()[1]
    stop.set()
    thread.join()
    for s in held:
        s.close()
    srv.close()


@pytest.fixture
def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    return port


def ssh_spec(name: str, port: int, timeout: float = 1.0) -> HostSpec:
    return HostSpec(name=name, hostname="127.0.0.1", port=port, user="nobody",
                    identityfile=(), connect_timeout=timeout, identities_only=True)


def test_unreachable_and_silent_hosts_fail_in_time_others_reported(
    silent_port: int, closed_port: int
) -> None:
    specs = [ssh_spec("closed", closed_port), local_spec("localhost"),
             ssh_spec("silent", silent_port)]
    start = time.monotonic()
    result = run_on_hosts(specs, lambda t: t.run(["echo", "ok"], timeout=5).stdout)
    elapsed = time.monotonic() - start
    assert elapsed < 8, elapsed  # nothing hangs: 1 s connect timeouts (bound generous for CI)
    assert [o.host for o in result] == ["closed", "localhost", "silent"]
    assert result.succeeded == {"localhost": "ok\n"}
    closed, silent = result.failed["closed"], result.failed["silent"]
    assert isinstance(closed, HostError) and isinstance(silent, HostError)
    assert f"127.0.0.1:{closed_port}" in str(closed) and "refused" in str(closed).lower()
    assert f"127.0.0.1:{silent_port}" in str(silent) and "1s" in str(silent)
