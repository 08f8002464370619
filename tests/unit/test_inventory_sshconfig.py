"""opskit's ssh config reading compared with the real ``ssh -F FILE -G HOST``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _sshg import ssh_G

from opskit.errors import ConfigError
from opskit.hosts.sshconfig import SSHConfig, expand_path_tokens, local_user

KEYS = ("hostname", "port", "user", "identityfile", "proxyjump")

needs_ssh = pytest.mark.skipif(shutil.which("ssh") is None, reason="openssh-client not installed")


CONFIG_MAIN = """\
# comment
Host web* !web9
  HostName %h.Example.COM
  User alice
  IdentityFile ~/.ssh/k_%h_%r_%p
  IdentityFile "/with space/%%/x"
Host web1
  Port 2200
  User bob
  IdentityFile extra
  IdentityFile ~/.ssh/k_%h_%r_%p
  ProxyJump jump@bastion:2222,%h
Host nojump
  ProxyJump none
Host=eq
  port=33
  user = "u sp"
  IDENTITYFILE eqkey
Host ?x
  HostName question.example
Host pc
  ProxyCommand nc %h %p
  ProxyJump ignored
Host *
  Port 22
  IdentityFile last
  ProxyJump j1
"""

HOSTS_MAIN = ["web1", "WEB1", "web2", "web9", "nojump", "eq", "ax", "abx", "pc", "10.0.0.1",
              "Other.Example.org"]


@needs_ssh
@pytest.mark.parametrize("host", HOSTS_MAIN)
def test_matches_ssh_G(tmp_path: Path, host: str) -> None:
    cfg = tmp_path / "config"
    cfg.write_text(CONFIG_MAIN)
    assert SSHConfig(str(cfg)).resolve(host).to_dict() == ssh_G(cfg, host)


CONFIG_MATCH = """\
Include {inc}/*.conf
Match host real.example.com
  User matched
Host m1
  HostName REAL.example.com
Match originalhost m2 user {me}
  Port 4444
Match !host m3*,x*
  IdentityFile notm3
Match all
  IdentityFile allf
Host f1
  HostName F1.final.example
Match final host f1.final.example
  User finaluser
Host f1.final.example
  Port 5555
Match canonical
  IdentityFile canon
"""


@needs_ssh
@pytest.mark.parametrize("host", ["a1", "m1", "m2", "m3x", "f1", "F1", "zz"])
def test_match_include_final_like_ssh_G(tmp_path: Path, host: str) -> None:
    inc = tmp_path / "inc"
    inc.mkdir()
    (inc / "a.conf").write_text("Host a1\n  User fromInclude\n  IdentityFile inc_a\n")
    (inc / "b.conf").write_text("Host a1\n  Port 1234\n  User second\n")
    cfg = tmp_path / "config"
    cfg.write_text(CONFIG_MATCH.format(inc=inc, me=local_user()))
    assert SSHConfig(str(cfg)).resolve(host).to_dict() == ssh_G(cfg, host)


@needs_ssh
def test_defaults_with_empty_config(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.write_text("")
    assert SSHConfig(str(cfg)).resolve("plain").to_dict() == ssh_G(cfg, "plain")


def test_literal_hosts_and_specific_match(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.write_text(CONFIG_MAIN)
    conf = SSHConfig(str(cfg))
    assert conf.literal_hosts() == ["web1", "nojump", "eq", "pc"]
    assert conf.resolve("web5").matched_specific
    assert not conf.resolve("unrelated").matched_specific


def test_match_exec_runs_only_when_earlier_criteria_match(tmp_path: Path) -> None:
    """OpenSSH's short-circuit: an exec after a failed criterion is never run; when it runs,
    it runs through the shell with % tokens expanded (here it leaves a file behind)."""
    mark = tmp_path / "ran"
    cfg = tmp_path / "config"
    cfg.write_text(f"Host a b\n  User x\nMatch originalhost b exec \"touch {mark}_%n; true\"\n"
                   "  Port 2022\nMatch exec false\n  User never\n")
    assert SSHConfig(str(cfg)).resolve("a").port == 22
    assert not list(tmp_path.glob("ran*"))
    got = SSHConfig(str(cfg)).resolve("b")
    assert (got.port, got.user) == (2022, "x") and (tmp_path / "ran_b").exists()


def test_bad_port_names_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.write_text("Host a\n  Port nosuchservice\n")
    with pytest.raises(ConfigError, match=r"config:2: bad Port 'nosuchservice'"):
        SSHConfig(str(cfg)).resolve("a")


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        SSHConfig(str(tmp_path / "nope")).resolve("a")


def test_expand_path_tokens(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    got = expand_path_tokens("~/.ssh/k_%h_%r_%p_%n_%%", host="web1", hostname="web1.ex",
                             port=2200, user="bob")
    assert got == f"{tmp_path}/.ssh/k_web1.ex_bob_2200_web1_%"
    with pytest.raises(ConfigError, match="unknown token %z"):
        expand_path_tokens("a%z", host="h", hostname="h", port=22, user="u")


CONFIG_USERS = """\
Match user admin
  Port 2022
Host "quoted" other
  User fromquoted
Host db?
  IdentityFile ~/.ssh/db_%r
Match host *.internal,!bad.internal
  ProxyJump gate
Host *.internal
  HostName %h
"""


@needs_ssh
@pytest.mark.parametrize(
    ("host", "user"),
    [("db1", "admin"), ("db1", None), ("quoted", None), ("other", "me"), ("a.internal", None),
     ("bad.internal", None), ("db12", "admin")],
)
def test_user_and_lists_like_ssh_G(tmp_path: Path, host: str, user: str | None) -> None:
    cfg = tmp_path / "config"
    cfg.write_text(CONFIG_USERS)
    expected = ssh_G(cfg, host, *(["-l", user] if user else []))
    assert SSHConfig(str(cfg)).resolve(host, user=user).to_dict() == expected


def test_proxycommand_keeps_quoted_arguments(tmp_path: Path) -> None:
    """The command paramiko runs (it shlex-splits ProxyCommand) gets the arguments as written."""
    import shlex

    cfg = tmp_path / "config"
    cfg.write_text('Host pq\n  ProxyCommand /usr/bin/relay --name "a b" \'%h:%p\'\n')
    got = SSHConfig(str(cfg)).resolve("pq").proxycommand
    assert got is not None and shlex.split(got) == ["/usr/bin/relay", "--name", "a b", "%h:%p"]


def test_keywords_of_newer_openssh(tmp_path: Path) -> None:
    """A config written for a newer ssh still works: its keywords are kept (Tag, Match tagged,
    RefuseConnection) or ignored; Match criteria opskit cannot evaluate refuse only the hosts
    that reach them."""
    from opskit.hosts.inventory import load_inventory

    cfg = tmp_path / "config"
    cfg.write_text("Host t1 t2 r1 v1\n  ChannelTimeout session=5m\n  WarnWeakCrypto no\n"
                   "Host t1\n  Tag gpu\nMatch tagged gpu\n  User tagged\n"
                   "Match originalhost t2 localnetwork 10.0.0.0/8\n  Port 2222\n"
                   "Match originalhost v1 version OpenSSH_9.8*\n  Port 2223\n"
                   "Host r1\n  RefuseConnection yes\n")
    conf = SSHConfig(str(cfg))
    assert conf.resolve("t1").user == "tagged" and conf.resolve("r1").user != "tagged"
    with pytest.raises(ConfigError, match=r"config:8: Match localnetwork .*'t2'"):
        conf.resolve("t2")
    with pytest.raises(ConfigError, match=r"config:10: Match version"):
        conf.resolve("v1")
    (tmp_path / "inv.yaml").write_text("")
    with pytest.raises(ConfigError, match=r"RefuseConnection yes \(.*config:13\)"):
        load_inventory(str(tmp_path / "inv.yaml"), str(cfg)).resolve("r1")


def test_canonical_domains_and_permitted_cnames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control flow of ssh.c's canonicalisation with a stand-in resolver (no DNS here; the
    conformance corpus checks the paths that need none against ssh -G): the first domain that
    resolves wins, its CNAME replaces it only where CanonicalizePermittedCNAMEs allows, and
    the second pass then matches Host lines against the new name."""
    from opskit.hosts import sshcanon

    answers = {"db.corp.": "db-7.internal.corp", "web.corp.": "web.cdn.example"}
    monkeypatch.setattr(sshcanon, "_lookup", lambda name: (name in answers, answers.get(name, "")))
    cfg = tmp_path / "config"
    cfg.write_text("CanonicalizeHostname yes\nCanonicalDomains nope corp\n"
                   "CanonicalizePermittedCNAMEs *.corp:*.internal.corp\n"
                   "Host db-7.internal.corp\n  User fromcname\nHost web.corp\n  User fromdomain\n")
    conf = SSHConfig(str(cfg))
    assert (conf.resolve("db").hostname, conf.resolve("db").user) == ("db-7.internal.corp", "fromcname")
    assert (conf.resolve("web").hostname, conf.resolve("web").user) == ("web.corp", "fromdomain")
    with pytest.raises(ConfigError, match="could not resolve host name 'other'"):
        conf.resolve("other")  # as ssh: with permitted CNAMEs a direct name must resolve
