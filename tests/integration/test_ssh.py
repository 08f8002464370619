"""SSHTransport against real sshd containers: commands, stdin, timeouts, popen, SFTP."""

from __future__ import annotations

import time

import pytest

from opskit.errors import CommandFailed, HostError
from opskit.hosts.ssh import SSHTransport


@pytest.fixture
def ssh(ssh_testbed):
    spec = ssh_testbed.specs()[0]
    with SSHTransport(spec) as transport:
        yield transport


def test_testbed_hosts_are_distinct_with_own_keys(ssh_testbed):
    assert len(ssh_testbed.hosts) == 2
    ports = {h.port for h in ssh_testbed.hosts}
    assert len(ports) == 2
    keys = [set(h.host_keys) for h in ssh_testbed.hosts]
    assert keys[0] and keys[1] and not keys[0] & keys[1]
    env = ssh_testbed.env()
    assert set(env) == {"OPSKIT_INVENTORY", "OPSKIT_KNOWN_HOSTS", "OPSKIT_SSH_CONFIG"}
    for host in ssh_testbed.hosts:
        code, out = host.exec(["id", "-un", "opskit"])
        assert (code, out.strip()) == (0, "opskit")
        inspect = host.container.attrs["NetworkSettings"]["Ports"]["22/tcp"]
        assert all(b["HostIp"] == "127.0.0.1" for b in inspect)


def test_run_as_opskit_with_sudo(ssh, ssh_testbed):
    res = ssh.run(["id", "-un"])
    assert res.ok and res.stdout.strip() == "opskit"
    assert res.host == ssh_testbed.hosts[0].name
    assert res.argv == ("id", "-un")
    assert ssh.run(["sudo", "-n", "id", "-u"]).stdout.strip() == "0"
    # the same answer as docker exec in the container
    code, out = ssh_testbed.hosts[0].exec(["hostname"])
    assert ssh.run(["hostname"]).stdout == out


def test_argv_is_quoted_not_shell_parsed(ssh):
    res = ssh.run(["printf", "%s|", "a b", "$HOME", "; echo pwned", "'q'"])
    assert res.stdout == "a b|$HOME|; echo pwned|'q'|"


def test_exit_code_stderr_and_check(ssh):
    res = ssh.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (res.exit_code, res.stdout, res.stderr) == (3, "out\n", "err\n")
    with pytest.raises(CommandFailed) as info:
        ssh.run(["sh", "-c", "echo boom >&2; exit 4"], check=True)
    assert "exited with 4" in str(info.value) and "boom" in str(info.value)


def test_stdin_env_and_large_output(ssh):
    data = bytes(range(256)) * 4096  # 1 MiB
    res = ssh.run(["sha256sum"], stdin=data)
    import hashlib

    assert res.stdout.split()[0] == hashlib.sha256(data).hexdigest()
    assert ssh.run(["sh", "-c", 'echo "$FOO"'], env={"FOO": "bar baz"}).stdout == "bar baz\n"
    big = ssh.run(["head", "-c", "3000000", "/dev/zero"])
    assert len(big.stdout) == 3_000_000


def test_large_stdin_and_output_together_do_not_deadlock(ssh):
    data = bytes(range(256)) * (6 * 4096)  # 6 MiB in, 6 MiB out: more than both windows
    res = ssh.run(["cat"], stdin=data, timeout=60)
    assert res.ok and res.stdout == data.decode("utf-8", "replace")
    assert ssh.run(["wc", "-c"], stdin=data).stdout.strip() == str(len(data))


def test_dropped_connection_is_reported_not_waited_out(ssh, ssh_testbed):
    import threading

    assert ssh.run(["true"]).ok
    host = ssh_testbed.hosts[0]
    # the host's sshd session processes die under a running command (as on a reboot)
    killer = threading.Timer(1.0, host.exec, [["pkill", "-9", "-f", "sshd: opskit"]])
    killer.start()
    start = time.monotonic()
    with pytest.raises(HostError, match="connection lost"):
        ssh.run(["sleep", "23"], timeout=15)
    killer.join()
    assert time.monotonic() - start < 10
    assert ssh.run(["echo", "back"]).stdout == "back\n"  # reconnects on next use
    ssh.run(["pkill", "-f", "sleep 23"])


def test_timeout_does_not_hang_and_connection_survives(ssh):
    start = time.monotonic()
    with pytest.raises(HostError) as info:
        ssh.run(["sleep", "31"], timeout=1)
    assert time.monotonic() - start < 5
    assert "did not finish within 1s" in str(info.value)
    assert ssh.run(["true"]).ok
    # nothing is left running on the host (the command got SIGTERM)
    from opskit.waiting import wait_until

    wait_until(lambda: ssh.run(["pgrep", "-f", "sleep 31"]).exit_code == 1, 5, "sleep 31 gone")


def test_popen_kill_stops_the_remote_process(ssh):
    proc = ssh.popen(["sleep", "41"])
    assert ssh.run(["pgrep", "-f", "sleep 41"]).exit_code == 0
    proc.kill()
    from opskit.waiting import wait_until

    wait_until(lambda: ssh.run(["pgrep", "-f", "sleep 41"]).exit_code == 1, 5, "sleep 41 gone")


def test_popen_streams(ssh):
    proc = ssh.popen(["sh", "-c", "cat; echo done >&2; exit 5"])
    proc.stdin.write(b"hello\n")
    proc.stdin.close()
    assert proc.wait(10) == 5
    assert proc.stdout.read() == b"hello\n"
    assert proc.stderr.read() == b"done\n"


def test_sftp_file_operations(ssh):
    base = "/home/opskit/sftp-test"
    ssh.run(["rm", "-rf", base], check=True)
    ssh.makedirs(base + "/sub")
    assert ssh.stat(base).is_dir
    assert ssh.stat(base + "/missing") is None
    with ssh.open(base + "/f.part", "wb") as fh:
        fh.write(b"x" * 100_000)
    ssh.rename(base + "/f.part", base + "/f")
    st = ssh.stat(base + "/f")
    assert st.size == 100_000 and not st.is_dir
    assert ssh.listdir(base) == ["f", "sub"]
    import hashlib

    assert ssh.sha256(base + "/f") == hashlib.sha256(b"x" * 100_000).hexdigest()
    with ssh.open(base + "/f", "rb") as fh:
        assert fh.read(3) == b"xxx"
    ssh.remove(base + "/f")
    ssh.remove(base + "/sub")
    assert ssh.listdir(base) == []
    ssh.remove(base)
    assert ssh.stat(base) is None


def test_reconnects_after_close(ssh):
    assert ssh.run(["true"]).ok
    ssh.close()
    assert ssh.run(["echo", "again"]).stdout == "again\n"


def test_orphaned_test_hosts_are_removed_live_ones_kept(docker_client, ssh_testbed):
    import subprocess
    import sys

    from opskit.testing.sshd import LABEL, OWNER_LABEL, remove_orphans

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import socket

    orphan = docker_client.containers.create(
        ssh_testbed.hosts[0].container.image.id, name=f"opskit-orphan-{dead}",
        labels={LABEL: "sshd-host", OWNER_LABEL: f"{socket.gethostname()}:{dead}"},
    )
    try:
        removed = remove_orphans(docker_client)
        assert orphan.name in removed
        assert not any(h.container.name in removed for h in ssh_testbed.hosts)
        for h in ssh_testbed.hosts:
            h.container.reload()
            assert h.container.status == "running"
    finally:
        if orphan.name not in removed:
            orphan.remove(force=True)
