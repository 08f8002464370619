"""opskit chmod against real sshd containers, compared with ``stat -c %a`` inside them."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

from opskit.files.modes import apply_mode, parse_mode

HOME = "/home/opskit"


def opskit(bed, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opskit", *args], capture_output=True, text=True,
                          env={**os.environ, **bed.env()}, timeout=120)


def sh(host, script: str) -> str:
    code, out = host.exec(["sh", "-c", script], user="opskit")
    assert code == 0, f"{script}: {out}"
    return out


def modes(host, *paths: str) -> list[str]:
    return sh(host, "stat -c %a " + " ".join(f"{HOME}/{p}" for p in paths)).split()


@pytest.fixture
def work(ssh_testbed):
    """On every host: NAME/f (644), NAME/d (755) with NAME/d/inner (600)."""
    name = f"chmod-{secrets.token_hex(4)}"
    for h in ssh_testbed.hosts:
        sh(h, f"cd {HOME} && mkdir -p {name}/d && touch {name}/f {name}/d/inner "
              f"&& chmod 644 {name}/f && chmod 755 {name}/d && chmod 600 {name}/d/inner")
    yield name
    for h in ssh_testbed.hosts:
        h.exec(["rm", "-rf", f"{HOME}/{name}"])


def test_octal_on_two_hosts_matches_stat(ssh_testbed, work):
    res = opskit(ssh_testbed, "chmod", "--json", "750", f"{work}/f", f"~/{work}/d",
                 "--host", "@testbed")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["errors"] == {} and sorted(data["hosts"]) == sorted(ssh_testbed.names)
    for h in ssh_testbed.hosts:
        assert modes(h, f"{work}/f", f"{work}/d") == ["750", "750"]
        shown = {p["path"]: (p["mode"], p["ls"]) for p in data["hosts"][h.name]["paths"]}
        assert shown == {f"{work}/f": ("750", "-rwxr-x---"), f"{work}/d": ("750", "drwxr-x---")}
        assert modes(h, f"{work}/d/inner") == ["600"]  # not recursive


def test_symbolic_recursive_and_explain(ssh_testbed, work):
    h1 = ssh_testbed.hosts[0]
    before = [int(m, 8) for m in modes(h1, f"{work}/d", f"{work}/d/inner")]
    res = opskit(ssh_testbed, "chmod", "-R", "--explain", "u+x,go-w,o+r", f"{work}/d",
                 "--host", h1.name)
    assert res.returncode == 0, res.stderr
    assert "u+x: adds x (execute; for a folder: enter it) for user" in res.stdout
    assert "go-w: removes w (write) for group and other" in res.stdout
    after = modes(h1, f"{work}/d", f"{work}/d/inner")
    changes = parse_mode("u+x,go-w,o+r")
    assert after == [f"{apply_mode(changes, before[0], is_dir=True):o}",
                     f"{apply_mode(changes, before[1]):o}"] == ["755", "704"]
    assert "drwxr-xr-x" in res.stdout  # the resulting mode, ls -l form


def test_one_host_failing_does_not_hide_the_other(ssh_testbed, work):
    h1, h2 = ssh_testbed.hosts
    sh(h2, f"rm {HOME}/{work}/f")
    res = opskit(ssh_testbed, "chmod", "--json", "600", f"{work}/f", "--host", "@testbed")
    assert res.returncode == 1
    data = json.loads(res.stdout)
    assert list(data["hosts"]) == [h1.name] and list(data["errors"]) == [h2.name]
    assert "No such file or directory" in data["errors"][h2.name]["message"]
    assert modes(h1, f"{work}/f") == ["600"]
    text = opskit(ssh_testbed, "chmod", "600", f"{work}/f", "--host", "@testbed")
    assert text.returncode == 1 and f"error: {h2.name}:" in text.stderr
    assert h1.name in text.stdout


def test_unsafe_input_refused_before_connecting(ssh_testbed, work):
    h1 = ssh_testbed.hosts[0]
    for args in (["7;7", "x"], ["755", "-rf"], ["755", "a\x1b]0;x"], ["u+x\n", "x"],
                 ["u=755", "x"]):
        res = opskit(ssh_testbed, "chmod", "--host", h1.name, "--", *args)
        assert res.returncode == 2 and "refusing" in res.stderr, (args, res.stderr)
    odd = f"{work}/a;reboot $(id) &"  # a file name, not a command: it reaches chmod as one argv
    assert h1.exec(["touch", f"{HOME}/{odd}"], user="opskit")[0] == 0
    res = opskit(ssh_testbed, "chmod", "--host", h1.name, "--", "-6000,u=rw,go=", odd)
    assert res.returncode == 0, res.stderr
    code, out = h1.exec(["stat", "-c", "%a", f"{HOME}/{odd}"], user="opskit")
    assert (code, out.strip()) == (0, "600")
    res = opskit(ssh_testbed, "chmod", "755", "x", "--host", "nosuchhost")
    assert res.returncode == 2 and "unknown host 'nosuchhost'" in res.stderr
