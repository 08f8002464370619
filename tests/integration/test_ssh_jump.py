"""ProxyJump against real sshd: host 2 reached through host 1 (container address, port 22)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from opskit.errors import HostKeyError
from opskit.hosts import hostkeys
from opskit.hosts.inventory import load_inventory
from opskit.hosts.ssh import SSHTransport


@pytest.fixture
def jump_config(ssh_testbed, tmp_path):
    jump, inner = ssh_testbed.hosts
    inner.container.reload()
    address = inner.container.attrs["NetworkSettings"]["IPAddress"]
    assert address, "the inner host has no address on the default bridge"
    known = tmp_path / "known_hosts"
    known.write_text(ssh_testbed.known_hosts_path.read_text())
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        ssh_testbed.ssh_config_path.read_text().replace(str(ssh_testbed.known_hosts_path), str(known))
        + f"\nHost via-jump\n    HostName {address}\n    User opskit\n"
        f"    IdentityFile {ssh_testbed.key_path}\n    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {known}\n    ProxyJump {jump.name}\n"
    )
    return cfg, known, address, inner


def test_proxyjump_run_trust_and_openssh_agree(jump_config) -> None:
    cfg, known, address, inner = jump_config
    spec = load_inventory(None, ssh_config=str(cfg)).resolve("via-jump")
    assert spec.jump is not None and spec.jump.port != 22
    # not pinned yet: refused, even through a trusted jump host
    with pytest.raises(HostKeyError, match=f"unknown host key for {address}"), SSHTransport(spec) as t:
        t.run(["true"])
    scanned = hostkeys.scan(spec)  # key exchange only, through the jump host
    assert f"{scanned.key_type} {scanned.key.get_base64()}" in inner.host_keys
    hostkeys.trust(spec, scanned)
    assert known.read_text().splitlines()[-1].startswith(f"{address} ")
    with SSHTransport(spec) as t:
        assert t.run(["hostname"]).stdout == inner.exec(["hostname"])[1]
    if shutil.which("ssh"):  # OpenSSH reads the same config and the line opskit pinned
        res = subprocess.run(["ssh", "-F", str(cfg), "-o", "BatchMode=yes", "via-jump", "hostname"],
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        assert res.stdout == inner.exec(["hostname"])[1]


RELAY = """import os, socket, sys, threading
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def up():
    while True:
        b = os.read(0, 65536)
        if not b:
            s.shutdown(socket.SHUT_WR)
            return
        s.sendall(b)
threading.Thread(target=up, daemon=True).start()
while True:
    b = s.recv(65536)
    if not b:
        break
    os.write(1, b)
"""


def test_proxycommand_scan_trust_and_run_take_the_same_route(ssh_testbed, tmp_path) -> None:
    """HostName does not resolve: only the ProxyCommand reaches the host. `hosts trust`
    (scan) must go through it too, never straight to HostName:Port."""
    import sys

    host = ssh_testbed.hosts[0]
    relay = tmp_path / "relay.py"
    relay.write_text(RELAY)
    known = tmp_path / "known_hosts"
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        "Host via-proxy\n    HostName opskit-proxied.invalid\n    User opskit\n"
        f"    IdentityFile {ssh_testbed.key_path}\n    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {known}\n"
        f"    ProxyCommand {sys.executable} {relay} 127.0.0.1 {host.port}\n"
    )
    spec = load_inventory(None, ssh_config=str(cfg)).resolve("via-proxy")
    assert spec.proxycommand and spec.jump is None
    with pytest.raises(HostKeyError, match="unknown host key for opskit-proxied.invalid"), \
            SSHTransport(spec) as t:
        t.run(["true"])
    scanned = hostkeys.scan(spec)
    assert f"{scanned.key_type} {scanned.key.get_base64()}" in host.host_keys
    hostkeys.trust(spec, scanned)
    assert known.read_text().splitlines()[-1].startswith("opskit-proxied.invalid ")
    assert known.stat().st_mode & 0o777 == 0o600  # a new known_hosts file is private
    with SSHTransport(spec) as t:
        assert t.run(["hostname"]).stdout == host.exec(["hostname"])[1]
