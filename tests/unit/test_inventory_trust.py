"""Trust taken from the working folder (issue 11 class 8, field case security/10), where each
value came from, IPv6 jump hosts (field case hosts/07), %C (hosts/08) and control characters."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from opskit.errors import ConfigError, HostError, UsageError
from opskit.hosts.inventory import load_inventory
from opskit.hosts.sshconfig import SSHConfig, expand_path_tokens

USER_CONFIG = "Host gpu7\n  HostName gpu7.corp.example\n  User alice\n  UserKnownHostsFile {d}/kh\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cfg = tmp_path / "ssh_config"
    cfg.write_text(USER_CONFIG.format(d=tmp_path))
    monkeypatch.setenv("OPSKIT_SSH_CONFIG", str(cfg))
    monkeypatch.delenv("OPSKIT_INVENTORY", raising=False)
    monkeypatch.delenv("OPSKIT_KNOWN_HOSTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    proj = tmp_path / "project"
    proj.mkdir()
    monkeypatch.chdir(proj)
    return proj


def test_cwd_inventory_cannot_move_a_known_host_or_pin_keys(project: Path) -> None:
    (project / "hosts.yaml").write_text(
        "hosts:\n  gpu7:\n    hostname: 127.0.0.1\n    port: 2222\n    known_hosts: [.known_hosts]\n"
        "  newbox:\n    hostname: 10.1.2.3\n  pinned:\n    hostname: 10.1.2.4\n"
        "    known_hosts: [.known_hosts]\ngroups:\n  mine: [gpu7, newbox]\n")
    inv = load_inventory()
    assert not inv.trusted
    with pytest.raises(ConfigError) as info:
        inv.resolve("gpu7")
    msg = str(info.value)
    assert "hosts.gpu7.hostname" in msg and "hosts.gpu7.known_hosts" in msg
    assert "--inventory hosts.yaml" in info.value.hint
    assert inv.resolve("newbox").hostname == "10.1.2.3"  # adding hosts is fine
    with pytest.raises(ConfigError, match="hosts.pinned.known_hosts"):
        inv.resolve("pinned")  # no host's key is pinned by a working-folder file
    trusted = load_inventory("hosts.yaml")  # named on purpose: used as written
    spec = trusted.resolve("gpu7")
    assert (spec.hostname, spec.port) == ("127.0.0.1", 2222)
    assert spec.sources["hostname"] == "hosts.yaml (hosts.gpu7)"


def test_sources_name_file_and_line(project: Path, tmp_path: Path) -> None:
    spec = load_inventory().resolve("gpu7")
    cfg = tmp_path / "ssh_config"
    assert spec.sources["hostname"] == f"{cfg}:2" and spec.sources["user"] == f"{cfg}:3"
    assert spec.sources["known_hosts"] == f"{cfg}:4"
    assert spec.known_hosts == (f"{tmp_path}/kh",)


def test_ipv6_jump_host_is_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Field case hosts/07: the jump host [::1]:PORT is contacted (nothing listens there)."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "config"
    cfg.write_text(f"Host inner6\n  HostName 127.0.0.1\n  Port {port}\n"
                   f"  ProxyJump admin@[::1]:{port}\n")
    monkeypatch.setenv("OPSKIT_SSH_CONFIG", str(cfg))
    (tmp_path / "inv.yaml").write_text("")
    spec = load_inventory(str(tmp_path / "inv.yaml")).resolve("inner6")
    assert (spec.jump.hostname, spec.jump.port, spec.jump.user) == ("::1", port, "admin")
    from opskit.hosts.ssh import SSHTransport

    with pytest.raises(HostError) as info, SSHTransport(spec) as t:
        t.run(["true"])
    assert "::1" in str(info.value) and "refused" in str(info.value)


@pytest.mark.skipif(shutil.which("ssh") is None, reason="openssh-client not installed")
def test_token_C_expands_as_ssh_does(tmp_path: Path) -> None:
    """Field case hosts/08: %C in IdentityFile; ssh -G expands the same tokens in
    UserKnownHostsFile, which is the reference here."""
    cfg = tmp_path / "config"
    cfg.write_text("Host tokbox\n  HostName 127.0.0.1\n  Port 2222\n  User deploy\n"
                   "  IdentityFile /srv/keys/%C\n  UserKnownHostsFile /srv/keys/%C\n")
    out = subprocess.run(["ssh", "-F", str(cfg), "-G", "tokbox"], capture_output=True, text=True,
                         check=True, stdin=subprocess.DEVNULL).stdout
    want = next(line.split()[1] for line in out.splitlines() if line.startswith("userknownhostsfile"))
    r = SSHConfig(str(cfg)).resolve("tokbox")
    assert r.identityfile == ("/srv/keys/%C",)  # ssh -G prints it unexpanded
    got = expand_path_tokens(r.identityfile[0], host="tokbox", hostname=r.hostname, port=r.port,
                             user=r.user)
    assert got == want and len(want.rsplit("/", 1)[1]) == 40


def test_control_characters_refused_before_any_connection(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.write_text('Host evil\n  HostName "bad\x01name"\n')
    (tmp_path / "inv.yaml").write_text("")
    inv = load_inventory(str(tmp_path / "inv.yaml"), str(cfg))
    for name in ("gpu\x1b[31m", "a\nb", "x\x00"):
        with pytest.raises(UsageError, match="refusing host name"):
            inv.resolve(name)
    with pytest.raises(UsageError, match=f"refusing host name .*{cfg}:2"):
        inv.resolve("evil")


def test_hosts_show_names_unreadable_known_hosts_lines(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from opskit.cli.main import cli

    kh = tmp_path / "kh"
    kh.write_text("garbage\ngpu ssh-ed25519 %%%\n")
    cfg = tmp_path / "config"
    cfg.write_text(f"Host gpu\n  HostName 10.0.0.1\n  UserKnownHostsFile {kh}\n")
    (tmp_path / "inv.yaml").write_text("")
    res = CliRunner().invoke(cli, ["hosts", "show", "gpu"], env={
        "OPSKIT_SSH_CONFIG": str(cfg), "OPSKIT_INVENTORY": str(tmp_path / "inv.yaml")})
    assert res.exit_code == 0, res.output
    assert f"skipped              {kh}:1: too few fields" in res.output
    assert f"{kh}:2: key is not valid base64" in res.output
