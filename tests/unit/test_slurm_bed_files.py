"""The Slurm test cluster's ssh config, inventory and known_hosts (opskit.testing.slurmaux), read
by opskit and by OpenSSH's ``ssh -G``: both must send a node through the login host."""

from __future__ import annotations

from pathlib import Path

import pytest
from _sshg import ssh_G

from opskit.hosts.inventory import load_inventory
from opskit.testing.engine import require_tool
from opskit.testing.slurm import LOGIN, NODES, SlurmCluster
from opskit.testing.sshd import SSHTestHost

KEYS = {LOGIN: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILOGIN",
        NODES[0]: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINODE1",
        NODES[1]: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINODE2"}


@pytest.fixture
def cluster(tmp_path: Path) -> SlurmCluster:
    hosts = {name: SSHTestHost(name, None, 40022 if name == LOGIN else 22, [key])
             for name, key in KEYS.items()}
    c = SlurmCluster(hosts=hosts, network="n", volume="v", workdir=tmp_path,
                     key_path=tmp_path / "id_ed25519")
    c.write_files()
    return c


@pytest.mark.parametrize("name", [LOGIN, *NODES])
def test_opskit_and_ssh_G_resolve_each_host_alike(cluster: SlurmCluster, name: str) -> None:
    require_tool("ssh", "openssh-client")
    want = ssh_G(cluster.ssh_config_path, name)
    for inv in (load_inventory(str(cluster.inventory_path), ssh_config=str(cluster.ssh_config_path)),
                load_inventory(None, ssh_config=str(cluster.ssh_config_path))):
        spec = inv.resolve(name)
        got = {"hostname": spec.hostname, "port": spec.port, "user": spec.user,
               "identityfile": list(spec.identityfile), "proxyjump": spec.proxyjump}
        assert got == want
        if name == LOGIN:
            assert spec.jump is None and (spec.hostname, spec.port) == ("127.0.0.1", 40022)
        else:
            assert (spec.hostname, spec.port, spec.proxyjump) == (name, 22, LOGIN)
            assert (spec.jump.hostname, spec.jump.port) == ("127.0.0.1", 40022)


def test_known_hosts_pin_the_login_port_and_the_nodes_by_name(cluster: SlurmCluster) -> None:
    lines = cluster.known_hosts_path.read_text().splitlines()
    assert lines == [f"[127.0.0.1]:40022 {KEYS[LOGIN]}",
                     f"{NODES[0]} {KEYS[NODES[0]]}", f"{NODES[1]} {KEYS[NODES[1]]}"]
    inv = load_inventory(str(cluster.inventory_path), ssh_config=str(cluster.ssh_config_path))
    assert [s.name for s in inv.expand(["@slurm"])] == [LOGIN]
    assert [s.name for s in inv.expand(["@slurm-nodes"])] == list(NODES)
    assert cluster.env()["OPSKIT_SSH_CONFIG"] == str(cluster.ssh_config_path)
