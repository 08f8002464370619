"""``opskit hosts list/show`` print what ``ssh -G`` resolves (compared with the real ssh)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_inventory_sshconfig import CONFIG_MAIN, KEYS, ssh_G

needs_ssh = pytest.mark.skipif(shutil.which("ssh") is None, reason="openssh-client not installed")


def opskit(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("OPSKIT_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "opskit", *args], capture_output=True,
                          text=True, env=full, cwd=cwd, timeout=60)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    cfg = tmp_path / "ssh_config"
    cfg.write_text(CONFIG_MAIN)
    inv = tmp_path / "hosts.yaml"
    inv.write_text("hosts:\n  extra:\n    hostname: 10.9.9.9\n    port: 2022\n"
                   "groups:\n  webs: [web1, eq]\n")
    env = {"OPSKIT_SSH_CONFIG": str(cfg), "OPSKIT_INVENTORY": str(inv), "HOME": str(tmp_path)}
    return cfg, env


@needs_ssh
@pytest.mark.parametrize("host", ["web1", "web2", "eq", "pc", "nojump", "ax"])
def test_show_json_equals_ssh_G(setup, tmp_path: Path, host: str) -> None:
    cfg, env = setup
    res = opskit(["hosts", "show", host, "--json"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert {k: got[k] for k in KEYS} == ssh_G(cfg, host)
    assert got["name"] == host


@needs_ssh
def test_list_json_equals_ssh_G_for_every_host(setup, tmp_path: Path) -> None:
    cfg, env = setup
    res = opskit(["hosts", "list", "--json"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    names = [h["name"] for h in data["hosts"]]
    assert names == ["extra", "web1", "nojump", "eq", "pc"]
    assert data["groups"] == {"webs": ["web1", "eq"]}
    for host in data["hosts"][1:]:
        assert {k: host[k] for k in KEYS} == ssh_G(cfg, host["name"])
    assert data["hosts"][0]["hostname"] == "10.9.9.9" and data["hosts"][0]["port"] == 2022
    assert next(h for h in data["hosts"] if h["name"] == "web1")["groups"] == ["webs"]


def test_list_table(setup, tmp_path: Path) -> None:
    _, env = setup
    res = opskit(["hosts", "list"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "HOSTNAME", "PORT", "USER"]
    web1 = next(line for line in lines if line.startswith("web1 "))
    assert "web1.example.com" in web1 and "2200" in web1 and "@webs" in web1


def test_show_unknown_host_lists_hosts_and_groups(setup, tmp_path: Path) -> None:
    _, env = setup
    res = opskit(["hosts", "show", "nosuch"], env, tmp_path)
    assert res.returncode == 2
    assert "unknown host 'nosuch'" in res.stderr
    assert "web1" in res.stderr and "extra" in res.stderr and "@webs" in res.stderr


@pytest.mark.parametrize("bad", ["-oProxyCommand=sh", "a;id", "a\nb", "$(id)"])
def test_show_unsafe_name_refused(setup, tmp_path: Path, bad: str) -> None:
    _, env = setup
    res = opskit(["hosts", "show", "--", bad], env, tmp_path)
    assert res.returncode == 2
    assert "refusing host name" in res.stderr


def test_bad_inventory_names_file_and_key(setup, tmp_path: Path) -> None:
    _, env = setup
    Path(env["OPSKIT_INVENTORY"]).write_text("hosts:\n  a:\n    prot: 22\n")
    res = opskit(["hosts", "list"], env, tmp_path)
    assert res.returncode == 2
    assert env["OPSKIT_INVENTORY"] in res.stderr and "unknown key 'prot' in hosts.a" in res.stderr


def test_list_reports_group_members_nobody_defines(setup, tmp_path: Path) -> None:
    _, env = setup
    Path(env["OPSKIT_INVENTORY"]).write_text("groups:\n  g: [web1, ghost]\n")
    res = opskit(["hosts", "list", "--json"], env, tmp_path)
    assert res.returncode == 1
    data = json.loads(res.stdout)
    assert "ghost" in data["errors"] and "unknown host 'ghost'" in data["errors"]["ghost"]["message"]
    assert "web1" in [h["name"] for h in data["hosts"]]
