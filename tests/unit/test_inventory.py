"""Inventory files: groups, precedence, ProxyJump chains, and errors that name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from opskit.errors import ConfigError, UnsafeInputError, UsageError
from opskit.hosts.inventory import load_inventory, parse_jump

SSH_CONFIG = """\
Host gpu1
  HostName 10.0.0.5
  User ubuntu
  Port 2201
  IdentityFile ~/.ssh/gpu_key
Host bastion
  HostName bastion.example.org
  User jump
Host inner
  HostName 10.1.0.9
  ProxyJump bastion,gpu1:2202
Host *.cluster
  User clusteruser
"""

INVENTORY = """\
defaults:
  connect_timeout: 3
  command_timeout: 30
hosts:
  gpu1:
    port: 2222
  gpu2:
    hostname: 10.0.0.6
    user: admin
    identityfile: ~/.ssh/gpu2
    known_hosts: [/tmp/kh]
groups:
  gpus: [gpu1, gpu2]
  all: [gpu1, gpu2, inner]
"""


@pytest.fixture
def inv(tmp_path: Path):
    (tmp_path / "ssh_config").write_text(SSH_CONFIG)
    (tmp_path / "hosts.yaml").write_text(INVENTORY)
    return load_inventory(str(tmp_path / "hosts.yaml"), ssh_config=str(tmp_path / "ssh_config"))


def test_precedence_ssh_config_then_defaults_then_host(inv) -> None:
    gpu1 = inv.resolve("gpu1")
    assert (gpu1.hostname, gpu1.user, gpu1.port) == ("10.0.0.5", "ubuntu", 2222)
    assert gpu1.identityfile == ("~/.ssh/gpu_key",)
    assert (gpu1.connect_timeout, gpu1.command_timeout) == (3.0, 30.0)
    gpu2 = inv.resolve("gpu2")
    assert (gpu2.hostname, gpu2.user, gpu2.port) == ("10.0.0.6", "admin", 22)
    assert gpu2.identityfile == ("~/.ssh/gpu2",)
    assert gpu2.known_hosts == ("/tmp/kh",)


def test_groups_expand_in_order_without_duplicates(inv) -> None:
    names = [s.name for s in inv.expand(["@gpus", "gpu1", "@all"])]
    assert names == ["gpu1", "gpu2", "inner"]


def test_user_at_host_overrides_user(inv) -> None:
    assert inv.resolve("root@gpu1").user == "root"


def test_wildcard_host_pattern_and_addresses_are_known(inv) -> None:
    assert inv.resolve("n7.cluster").user == "clusteruser"
    assert inv.resolve("127.0.0.1").hostname == "127.0.0.1"
    assert inv.resolve("localhost").local


def test_proxyjump_chain_first_hop_is_outermost(inv) -> None:
    inner = inv.resolve("inner")
    assert inner.proxyjump == "bastion,gpu1:2202"
    hop = inner.jump
    assert (hop.name, hop.hostname, hop.port) == ("gpu1", "10.0.0.5", 2202)
    assert hop.jump is not None and hop.jump.name == "bastion"
    assert hop.jump.hostname == "bastion.example.org" and hop.jump.user == "jump"
    assert hop.jump.jump is None


def test_proxyjump_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ssh_config").write_text("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n")
    inv = load_inventory(None, ssh_config=str(tmp_path / "ssh_config"))
    spec = inv.resolve("a")  # resolving works (hosts show), connecting does not
    assert spec.proxyjump == "b" and spec.jump is None
    with pytest.raises(ConfigError, match="cannot follow ProxyJump 'b'.*too long"):
        spec.check_jump()
    with pytest.raises(ConfigError, match="too long"):
        from opskit.hosts.ssh import SSHTransport

        SSHTransport(spec).run(["true"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host", (None, "host", None)),
        ("u@host:2222", ("u", "host", 2222)),
        ("[10.0.0.1]:22", (None, "10.0.0.1", 22)),
        ("ssh://u@h:99", ("u", "h", 99)),
    ],
)
def test_parse_jump(text: str, expected: tuple) -> None:
    assert parse_jump(text) == expected


def test_unknown_host_lists_known_hosts_and_groups(inv) -> None:
    with pytest.raises(UsageError) as info:
        inv.expand(["nosuch"])
    hint = info.value.hint
    assert "unknown host 'nosuch'" in info.value.message
    for name in ("gpu1", "gpu2", "bastion", "inner", "@gpus", "@all"):
        assert name in hint
    with pytest.raises(UsageError, match="unknown host group '@nope'") as info:
        inv.expand(["@nope"])
    assert "@gpus" in info.value.hint


@pytest.mark.parametrize(
    "name",
    ["-oProxyCommand=x", "a;b", "a b", "a\nb", "$(id)", "a`b`", "a|b", "", "a&b", "h/../x"],
)
def test_unsafe_host_names_refused_before_anything(inv, name: str) -> None:
    with pytest.raises(UnsafeInputError):
        inv.expand([name])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hosts:\n  a:\n    colour: red\n", "unknown key 'colour' in hosts.a"),
        ("hosts:\n  a:\n    port: '22'\n", "key 'hosts.a.port' must be int, not str"),
        ("hosts:\n  a:\n    port: 70000\n", "key 'hosts.a.port' must be a port number"),
        ("hosts:\n  a:\n    identities_only: 1\n", "key 'hosts.a.identities_only' must be bool"),
        ("hosts:\n  a:\n    connect_timeout: true\n", "key 'hosts.a.connect_timeout' must be int or float"),
        ("hosts:\n  a:\n    identityfile: [1]\n", "key 'hosts.a.identityfile' must be a list of strings"),
        ("hosts:\n  a:\n    hostname: 'x;rm -rf /'\n", "key 'hosts.a.hostname'"),
        ("hosts:\n  a:\n    user: '-oops'\n", "key 'hosts.a.user'"),
        ("defaults:\n  keepalive: -1\n", "key 'defaults.keepalive' must not be negative"),
        ("defaults: [1]\n", "defaults must be a mapping"),
        ("groups:\n  g: gpu1\n", "key 'groups.g' must be a list of host names"),
        ("hostz: {}\n", "unknown top-level key 'hostz'"),
        ("hosts: [a]\n", "'hosts' must be a mapping"),
        ("- a\n", "the top level must be a mapping"),
        ("hosts: {a: [}\n", "not valid YAML"),
    ],
)
def test_inventory_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_inventory(str(path), ssh_config=str(tmp_path / "none"))
    assert str(path) in info.value.message
    assert message in info.value.message


def test_missing_inventory_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        load_inventory(str(tmp_path / "nope.yaml"))
    monkeypatch.setenv("OPSKIT_INVENTORY", str(tmp_path / "env.yaml"))
    with pytest.raises(ConfigError, match=r"env.yaml \(from \$OPSKIT_INVENTORY\)"):
        load_inventory(None)


def test_no_files_anywhere_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSKIT_INVENTORY", raising=False)
    monkeypatch.delenv("OPSKIT_SSH_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    inv = load_inventory(None)
    assert inv.path is None
    assert inv.expand([]) == []
    assert inv.resolve("localhost").local


def test_unknown_host_hint_stays_short(tmp_path: Path) -> None:
    (tmp_path / "ssh_config").write_text("".join(f"Host h{i}\n  Port 22\n" for i in range(100)))
    inv = load_inventory(None, ssh_config=str(tmp_path / "ssh_config"))
    with pytest.raises(UsageError) as info:
        inv.resolve("nosuch")
    assert "h0, h1" in info.value.hint and "(75 more: opskit hosts list)" in info.value.hint
    assert "h99" not in info.value.hint
