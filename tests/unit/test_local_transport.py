"""LocalTransport: the same CommandResult shape and errors as SSH, on this machine."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from opskit.errors import CommandFailed, HostError
from opskit.hosts.local import LocalTransport
from opskit.hosts.transport import command_argv, env_argv, shell_command


def test_run_results_like_a_shell() -> None:
    t = LocalTransport()
    res = t.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (res.stdout, res.stderr, res.exit_code, res.host) == ("out\n", "err\n", 3, "localhost")
    assert t.run(["no-such-command-xyz"]).exit_code == 127
    assert t.run(["cat"], stdin=b"abc").stdout == "abc"
    assert t.run(["sh", "-c", 'echo "$X"'], env={"X": "y z"}).stdout == "y z\n"
    with pytest.raises(CommandFailed, match="exited with 1"):
        t.run(["false"], check=True)
    with pytest.raises(ValueError, match="empty command"):
        t.run([])


def test_argv_and_env_as_every_transport_builds_them() -> None:
    assert command_argv(["ls", 1, Path("/tmp")]) == ("ls", "1", "/tmp")
    assert env_argv(["sh", "-c", "echo $X"], None) == ("sh", "-c", "echo $X")
    argv = env_argv(["sh", "-c", "echo $X"], {"X": "y z", "Y": "$(reboot)"})
    assert argv == ("env", "X=y z", "Y=$(reboot)", "sh", "-c", "echo $X")
    assert shell_command(argv) == "env 'X=y z' 'Y=$(reboot)' sh -c 'echo $X'"
    for bad in ([], ()):
        with pytest.raises(ValueError, match="empty command"):
            env_argv(bad, {"X": "1"})  # never a bare `env` that prints the environment
    with pytest.raises(ValueError, match="empty command"):
        LocalTransport().popen([])


def test_not_executable_is_126(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    assert LocalTransport().run([str(script)]).exit_code == 126


def test_timeout() -> None:
    start = time.monotonic()
    with pytest.raises(HostError, match="did not finish within 0.5s"):
        LocalTransport().run(["sleep", "10"], timeout=0.5)
    assert time.monotonic() - start < 5


def test_timeout_stops_the_commands_children_too(tmp_path: Path) -> None:
    """A hung grandchild (sh -> sleep, as sh -> df) is not left running after the limit."""
    pids = tmp_path / "pids"
    with pytest.raises(HostError, match="stopped, with the processes it started"):
        LocalTransport().run(["sh", "-c", f"sleep 300 & echo $! > {pids}; wait"], timeout=1)
    pid = int(pids.read_text())
    for _ in range(50):  # the kill is sent before run() returns; reaping is init's job
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            break
        if state == "Z":
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the child {pid} of the timed-out command is still running")


def test_files(tmp_path: Path) -> None:
    t = LocalTransport()
    t.makedirs(str(tmp_path / "a" / "b"))
    with t.open(str(tmp_path / "a" / "f.part"), "wb") as fh:
        fh.write(b"data")
    t.rename(str(tmp_path / "a" / "f.part"), str(tmp_path / "a" / "f"))
    assert t.listdir(str(tmp_path / "a")) == ["b", "f"]
    st = t.stat(str(tmp_path / "a" / "f"))
    assert (st.size, st.is_dir) == (4, False)
    assert t.stat(str(tmp_path / "a")).is_dir
    assert t.stat(str(tmp_path / "nope")) is None
    assert t.sha256(str(tmp_path / "a" / "f")) == (
        "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7"
    )
    t.remove(str(tmp_path / "a"))
    assert t.stat(str(tmp_path / "a")) is None
