"""FakeTransport: keyed by command, unexpected commands are loud, files live in a dict."""

from __future__ import annotations

import hashlib

import pytest

from opskit.errors import CommandFailed, HostError
from opskit.hosts.group import run_on_hosts
from opskit.hosts.spec import HostSpec
from opskit.hosts.transport import Transport
from opskit.testing.fake import FakeReply, FakeTransport, UnexpectedCommand, command_key


def test_is_a_transport() -> None:
    assert isinstance(FakeTransport(), Transport)


def test_keys_as_argv_or_command_line() -> None:
    fake = FakeTransport("h", {
        ("echo", "a b"): "tuple key\n",
        "printf '%s' 'x y'": ("out", "err", 3),
        ("false",): FakeReply(stderr="nope\n", exit_code=1),
    })
    assert fake.run(["echo", "a b"]).stdout == "tuple key\n"
    res = fake.run(["printf", "%s", "x y"])
    assert (res.stdout, res.stderr, res.exit_code, res.host) == ("out", "err", 3, "h")
    assert command_key("echo 'a b'") == command_key(("echo", "a b"))
    with pytest.raises(CommandFailed, match="exited with 1"):
        fake.run(["false"], check=True)
    assert [c[0] for c in fake.calls] == [("echo", "a b"), ("printf", "%s", "x y"), ("false",)]


def test_unexpected_command_names_it_and_the_known_ones() -> None:
    fake = FakeTransport("h", {("uname", "-a"): "Linux\n"})
    with pytest.raises(UnexpectedCommand) as info:
        fake.run(["rm", "-rf", "/"])
    assert "'rm -rf /'" in str(info.value) and "uname -a" in str(info.value)


def test_callable_answers_see_stdin_and_raises() -> None:
    fake = FakeTransport("h", {
        ("wc", "-c"): lambda argv, stdin: f"{len(stdin or b'')}\n",
        ("sleep", "9"): FakeReply(raises=HostError("h", "did not finish within 1s")),
    })
    assert fake.run(["wc", "-c"], stdin=b"12345").stdout == "5\n"
    assert fake.calls[-1][1] == b"12345"
    with pytest.raises(HostError, match="did not finish"):
        fake.run(["sleep", "9"])


def test_popen_reads_stdin_and_gives_output() -> None:
    fake = FakeTransport("h", {("cat",): lambda argv, stdin: (stdin or b"", b"", 0)})
    proc = fake.popen(["cat"])
    out = proc.stdout
    proc.stdin.write(b"data")
    proc.stdin.close()
    assert out.read() == b"data"
    assert proc.wait() == 0
    proc2 = FakeTransport("h", {("docker", "save", "x"): b"tar"}).popen(["docker", "save", "x"])
    assert proc2.stdout.read() == b"tar" and proc2.wait(1) == 0


def test_files() -> None:
    fake = FakeTransport("h", files={"/data/a.txt": b"hello"})
    assert fake.stat("/data").is_dir and fake.stat("/data/a.txt").size == 5
    assert fake.stat("/nope") is None
    fake.makedirs("/data/sub/deeper")
    assert fake.listdir("/data") == ["a.txt", "sub"]
    with fake.open("/data/sub/b.part", "wb") as fh:
        fh.write(b"xyz")
        assert fake.stat("/data/sub/b.part") is None  # nothing until closed
    fake.rename("/data/sub/b.part", "/data/sub/b")
    assert fake.sha256("/data/sub/b") == hashlib.sha256(b"xyz").hexdigest()
    with fake.open("/data/sub/b", "ab") as fh:
        fh.write(b"!")
    assert fake.open("/data/sub/b").read() == b"xyz!"
    with pytest.raises(FileNotFoundError):
        fake.open("/missing/dir/f", "wb")
    fake.remove("/data/sub")
    assert fake.listdir("/data") == ["a.txt"]
    with pytest.raises(FileNotFoundError):
        fake.listdir("/data/sub")
    with pytest.raises(UnexpectedCommand, match="docker_client"):
        fake.docker()


def test_fan_out_with_fakes_reports_every_host() -> None:
    fakes = {
        "a": FakeTransport("a", {("hostname",): "a\n"}),
        "b": FakeTransport("b", {("hostname",): FakeReply(raises=HostError("b", "unreachable"))}),
        "c": FakeTransport("c", {("hostname",): "c\n"}),
    }
    specs = [HostSpec(name=n) for n in fakes]
    result = run_on_hosts(specs, lambda t: t.run(["hostname"]).stdout.strip(),
                          transport_factory=lambda s: fakes[s.name])
    assert result.succeeded == {"a": "a", "c": "c"}
    assert list(result.failed) == ["b"] and "unreachable" in str(result.failed["b"])
    assert all(f.closed for f in fakes.values())
