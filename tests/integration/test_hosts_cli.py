"""`opskit hosts` against the sshd test bed, compared with what OpenSSH resolves."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from opskit.testing.engine import require_tool


def opskit(bed, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSKIT_")}
    env.update(bed.env())
    return subprocess.run([sys.executable, "-m", "opskit", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_list_and_show(ssh_testbed) -> None:
    res = opskit(ssh_testbed, "hosts", "list", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert [h["name"] for h in data["hosts"]] == ssh_testbed.names
    assert data["groups"] == {"testbed": ssh_testbed.names}
    for entry, host in zip(data["hosts"], ssh_testbed.hosts, strict=True):
        assert (entry["hostname"], entry["port"], entry["user"]) == ("127.0.0.1", host.port, "opskit")
        assert entry["identityfile"] == [str(ssh_testbed.key_path)]
        assert entry["groups"] == ["testbed"]


def test_show_matches_ssh_G_and_ssh_connects(ssh_testbed) -> None:
    require_tool("ssh", "openssh-client")
    name = ssh_testbed.names[1]
    res = opskit(ssh_testbed, "hosts", "show", name, "--json")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    out = subprocess.run(["ssh", "-F", str(ssh_testbed.ssh_config_path), "-G", name],
                         capture_output=True, text=True, check=True).stdout
    g = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    assert got["hostname"] == g["hostname"] and str(got["port"]) == g["port"]
    assert got["user"] == g["user"] and got["identityfile"] == [g["identityfile"]]
    # the same files let the real OpenSSH client in, with strict host key checking
    ok = subprocess.run(["ssh", "-F", str(ssh_testbed.ssh_config_path), "-o", "BatchMode=yes",
                         name, "hostname"], capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == ssh_testbed.host(name).exec(["hostname"])[1]


def test_trust_on_pinned_host_is_a_no_op(ssh_testbed) -> None:
    before = ssh_testbed.known_hosts_path.read_bytes()
    res = opskit(ssh_testbed, "hosts", "trust", ssh_testbed.names[0], "--yes")
    assert res.returncode == 0, res.stderr
    assert "already pinned" in res.stdout
    assert ssh_testbed.known_hosts_path.read_bytes() == before


def test_trust_with_no_terminal_pins_nothing(ssh_testbed, tmp_path) -> None:
    """An unpinned host, stdin at its end: exit 2 with the --fingerprint to use, nothing written
    (was click's bare "Aborted.", exit 130)."""
    import yaml

    empty = tmp_path / "known_hosts"
    empty.write_text("")
    inv = yaml.safe_load(ssh_testbed.inventory_path.read_text())
    for host in inv["hosts"].values():
        host["known_hosts"] = [str(empty)]
    (tmp_path / "inv.yaml").write_text(yaml.safe_dump(inv))
    name = ssh_testbed.names[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSKIT_")}
    env.update(ssh_testbed.env(), OPSKIT_INVENTORY=str(tmp_path / "inv.yaml"),
               OPSKIT_KNOWN_HOSTS=str(empty))
    res = subprocess.run([sys.executable, "-m", "opskit", "hosts", "trust", name],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                         timeout=60)
    assert res.returncode == 2, res.stderr
    assert "stdin is not a terminal" in res.stderr and "Aborted." not in res.stderr
    fp = res.stderr.split("fingerprint: ", 1)[1].split()[0]
    assert f"--fingerprint {fp}" in res.stderr
    assert empty.read_text() == ""
