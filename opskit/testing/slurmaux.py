"""The Slurm test cluster's files (known_hosts, ssh config, inventory) and its clean-up
(containers, network, shared volume; clusters a killed session left). See
:mod:`opskit.testing.slurm`."""

from __future__ import annotations

from typing import Any

from opskit import atomic
from opskit.testing.sshd import LABEL, LOGIN_USER, OWNER_LABEL

# The cluster object (opskit.testing.slurm.SlurmCluster) is typed Any here: naming it would make the
# two modules import each other (tests/unit/test_architecture.py forbids cycles, type hints included).
SlurmCluster = Any


def remove_network_and_volume(client: Any, network: str, volume: str) -> list[str]:
    from docker.errors import NotFound

    errors = []
    for kind, name in (("network", network), ("volume", volume)):
        if not name:
            continue
        try:
            getattr(client, kind + "s").get(name).remove()
        except NotFound:
            continue
        except Exception as exc:  # noqa: BLE001 - collected by close()
            errors.append(f"{kind} {name}: {exc}")
    return errors


def write_cluster_files(cluster: SlurmCluster) -> None:
    login = cluster.hosts[cluster.login]
    lines = login.known_hosts_lines()
    for node in cluster.nodes:
        lines += [f"{node} {key}" for key in cluster.hosts[node].host_keys]
    atomic.write_text(cluster.known_hosts_path, "\n".join(lines) + "\n")
    common = (f"    User {LOGIN_USER}\n"
              f"    IdentityFile {cluster.key_path}\n"
              f"    IdentitiesOnly yes\n"
              f"    UserKnownHostsFile {cluster.known_hosts_path}\n"
              f"    StrictHostKeyChecking yes\n")
    blocks = [f"Host {cluster.login}\n    HostName 127.0.0.1\n    Port {login.port}\n{common}"]
    blocks += [f"Host {node}\n    HostName {node}\n    Port 22\n    ProxyJump {cluster.login}\n{common}"
               for node in cluster.nodes]
    atomic.write_text(cluster.ssh_config_path, "\n".join(blocks))
    _write_inventory(cluster)


def _write_inventory(cluster: SlurmCluster) -> None:
    import yaml

    def entry(hostname: str, port: int, jump: str | None = None) -> dict:
        e: dict[str, Any] = {"hostname": hostname, "port": port, "user": LOGIN_USER,
                             "identityfile": [str(cluster.key_path)], "identities_only": True,
                             "known_hosts": [str(cluster.known_hosts_path)]}
        if jump:
            e["proxyjump"] = jump
        return e

    hosts = {cluster.login: entry("127.0.0.1", cluster.login_port)}
    hosts.update({n: entry(n, 22, cluster.login) for n in cluster.nodes})
    data = {
        "defaults": {"connect_timeout": 10, "command_timeout": 60},
        "hosts": hosts,
        "groups": {cluster.group: [cluster.login], f"{cluster.group}-nodes": list(cluster.nodes)},
    }
    atomic.write_text(cluster.inventory_path, yaml.safe_dump(data, sort_keys=False))


def remove_orphan_clusters(client: Any) -> list[str]:
    """Remove clusters whose starting process (on this machine) is gone: containers, then
    networks and volumes (left by a killed session). Clusters of live processes stay."""
    from opskit.testing.sshd import _remove_gone, orphans, owner_gone

    removed = [c["Name"] for c in orphans(client, OWNER_LABEL)
               if c["Labels"].get(LABEL, "").startswith("slurm") and _remove_gone(client, c["Id"])]
    for net in client.networks.list(filters={"label": f"{LABEL}=slurm"}):
        if owner_gone(net.attrs.get("Labels") or {}):
            removed += [net.name, *remove_network_and_volume(client, net.name, "")]
    for vol in client.volumes.list(filters={"label": f"{LABEL}=slurm"}):
        if owner_gone(vol.attrs.get("Labels") or {}):
            removed += [vol.name, *remove_network_and_volume(client, "", vol.name)]
    return removed
