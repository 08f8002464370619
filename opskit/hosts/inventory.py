"""Host names and groups -> HostSpec, through ~/.ssh/config and an optional inventory file.

Inventory file (YAML; the first found of ``--inventory``/``$OPSKIT_INVENTORY``,
``./opskit.yaml``, ``./hosts.yaml``, ``~/.config/opskit/hosts.yaml``)::

    defaults:            # applied to every host (any host key below)
      connect_timeout: 10
    hosts:
      gpu1:
        hostname: 10.0.0.5
        port: 22
        user: ubuntu
        identityfile: [~/.ssh/id_ed25519]
        proxyjump: bastion
        known_hosts: [~/.ssh/known_hosts]
    groups:
      gpus: [gpu1, gpu2]

Precedence for each key: ssh config < inventory ``defaults`` < the host's inventory entry.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.errors import ConfigError, UsageError
from opskit.hosts.spec import LOCAL_NAMES, HostSpec, local_spec
from opskit.safety import check_host_name

INVENTORY_CANDIDATES = ("opskit.yaml", "hosts.yaml")
USER_INVENTORY = "~/.config/opskit/hosts.yaml"
SSH_CONFIG = "~/.ssh/config"

HOST_KEYS: dict[str, type | tuple[type, ...]] = {
    "hostname": str,
    "port": int,
    "user": str,
    "identityfile": (list, str),
    "proxyjump": str,
    "known_hosts": (list, str),
    "connect_timeout": (int, float),
    "command_timeout": (int, float),
    "keepalive": int,
    "identities_only": bool,
    "vars": dict,
}
TOP_KEYS = {"defaults", "hosts", "groups"}
DEFAULT_IDENTITY_FILES = (
    "~/.ssh/id_rsa",
    "~/.ssh/id_ecdsa",
    "~/.ssh/id_ecdsa_sk",
    "~/.ssh/id_ed25519",
    "~/.ssh/id_ed25519_sk",
)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _check_entry(path: str, where: str, entry: Any) -> dict:
    if entry is None:
        return {}
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: {where} must be a mapping, not {type(entry).__name__}")
    for key, value in entry.items():
        if key not in HOST_KEYS:
            raise ConfigError(
                f"{path}: unknown key {key!r} in {where}",
                f"known keys: {', '.join(sorted(HOST_KEYS))}",
            )
        expected = HOST_KEYS[key]
        if isinstance(value, bool) and expected in (int, (int, float)):
            ok = False
        else:
            ok = isinstance(value, expected)
        if not ok:
            names = expected if isinstance(expected, tuple) else (expected,)
            raise ConfigError(
                f"{path}: key {key!r} in {where} must be "
                f"{' or '.join(t.__name__ for t in names)}, not {type(value).__name__} ({value!r})"
            )
    return dict(entry)


@dataclass
class Inventory:
    path: str | None = None
    defaults: dict = field(default_factory=dict)
    hosts: dict[str, dict] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    ssh_config_path: str = SSH_CONFIG
    _ssh_config: Any = None

    # -- names ------------------------------------------------------------------------------
    def known_names(self) -> list[str]:
        names = set(self.hosts)
        names.update(self._ssh_config_hosts())
        return sorted(names)

    def expand(self, names: list[str]) -> list[HostSpec]:
        """Names and ``@group`` references -> specs, duplicates removed, order kept."""
        seen: dict[str, HostSpec] = {}
        for name in names:
            if name.startswith("@"):
                group = name[1:]
                if group not in self.groups:
                    raise UsageError(
                        f"unknown host group {name!r}",
                        f"known groups: {', '.join('@' + g for g in sorted(self.groups)) or 'none'}"
                        + (f" (inventory: {self.path})" if self.path else " (no inventory file found)"),
                    )
                members = self.groups[group]
            else:
                members = [name]
            for member in members:
                if member not in seen:
                    seen[member] = self.resolve(member)
        return list(seen.values())

    def resolve(self, name: str) -> HostSpec:
        """One name -> HostSpec. ``localhost`` is this machine through the local transport."""
        user_at = None
        if "@" in name and not name.startswith("@"):
            user_at, name = name.split("@", 1)
        check_host_name(name)
        if name in LOCAL_NAMES and name not in self.hosts:
            return local_spec(name)
        in_inventory = name in self.hosts
        ssh = self._ssh_lookup(name)
        in_ssh_config = name in self._ssh_config_hosts() or "hostname" in ssh and ssh["hostname"] != name
        if not in_inventory and not in_ssh_config:
            known = self.known_names()
            groups = ", ".join("@" + g for g in sorted(self.groups))
            raise UsageError(
                f"unknown host {name!r}",
                f"known hosts: {', '.join(known) or 'none'}"
                + (f"; groups: {groups}" if groups else "")
                + "; add it to ~/.ssh/config or the inventory file",
            )
        merged: dict[str, Any] = {}
        merged.update(self._from_ssh(name, ssh))
        merged.update({k: v for k, v in self.defaults.items()})
        merged.update(self.hosts.get(name, {}))
        if user_at:
            merged["user"] = user_at
        return self._spec(name, merged)

    def _spec(self, name: str, cfg: dict, depth: int = 0) -> HostSpec:
        jump = None
        proxyjump = cfg.get("proxyjump")
        if proxyjump and proxyjump.lower() != "none":
            if depth > 5:
                raise ConfigError(f"ProxyJump chain for {name!r} is too long (a loop?)")
            first = proxyjump.split(",")[0]
            jump = self._jump_spec(first, depth + 1)
        else:
            proxyjump = None
        return HostSpec(
            name=name,
            hostname=str(cfg.get("hostname") or name),
            port=int(cfg.get("port") or 22),
            user=cfg.get("user") or getpass.getuser(),
            identityfile=tuple(_as_list(cfg.get("identityfile")) or DEFAULT_IDENTITY_FILES),
            proxyjump=proxyjump,
            jump=jump,
            known_hosts=tuple(_as_list(cfg.get("known_hosts"))),
            connect_timeout=float(cfg.get("connect_timeout", 10.0)),
            command_timeout=float(cfg.get("command_timeout", 120.0)),
            keepalive=int(cfg.get("keepalive", 15)),
            identities_only=bool(cfg.get("identities_only", False)),
            vars=dict(cfg.get("vars") or {}),
        )

    def _jump_spec(self, text: str, depth: int) -> HostSpec:
        user = None
        port = None
        if "@" in text:
            user, text = text.split("@", 1)
        if text.startswith("[") and "]:" in text:
            host, port_s = text[1:].split("]:", 1)
            port = int(port_s)
        elif text.count(":") == 1:
            host, port_s = text.split(":")
            port = int(port_s)
        else:
            host = text
        cfg: dict[str, Any] = dict(self._from_ssh(host, self._ssh_lookup(host)))
        cfg.update(self.defaults)
        cfg.update(self.hosts.get(host, {}))
        if user:
            cfg["user"] = user
        if port:
            cfg["port"] = port
        return self._spec(host, cfg, depth)

    # -- ssh config -------------------------------------------------------------------------
    def _load_ssh_config(self) -> Any:
        if self._ssh_config is None:
            import paramiko

            conf = paramiko.SSHConfig()
            path = os.path.expanduser(self.ssh_config_path)
            if os.path.exists(path):
                with open(path) as fh:
                    conf.parse(fh)
            self._ssh_config = conf
        return self._ssh_config

    def _ssh_config_hosts(self) -> set[str]:
        path = os.path.expanduser(self.ssh_config_path)
        if not os.path.exists(path):
            return set()
        conf = self._load_ssh_config()
        return {h for h in conf.get_hostnames() if not any(c in h for c in "*?!")}

    def _ssh_lookup(self, name: str) -> dict:
        path = os.path.expanduser(self.ssh_config_path)
        if not os.path.exists(path):
            return {}
        return dict(self._load_ssh_config().lookup(name))

    @staticmethod
    def _from_ssh(name: str, ssh: dict) -> dict:
        out: dict[str, Any] = {}
        if "hostname" in ssh:
            out["hostname"] = ssh["hostname"]
        if "port" in ssh:
            out["port"] = int(ssh["port"])
        if "user" in ssh:
            out["user"] = ssh["user"]
        if "identityfile" in ssh:
            out["identityfile"] = list(ssh["identityfile"])
        if "proxyjump" in ssh:
            out["proxyjump"] = ssh["proxyjump"]
        if "userknownhostsfile" in ssh:
            out["known_hosts"] = ssh["userknownhostsfile"].split()
        if "connecttimeout" in ssh:
            out["connect_timeout"] = float(ssh["connecttimeout"])
        if "serveraliveinterval" in ssh:
            out["keepalive"] = int(ssh["serveraliveinterval"])
        if ssh.get("identitiesonly", "no").lower() == "yes":
            out["identities_only"] = True
        return out


def find_inventory(explicit: str | None = None) -> str | None:
    if explicit:
        if not os.path.exists(explicit):
            raise ConfigError(f"inventory file {explicit} does not exist")
        return explicit
    env = os.environ.get("OPSKIT_INVENTORY")
    if env:
        if not os.path.exists(env):
            raise ConfigError(f"inventory file {env} (from $OPSKIT_INVENTORY) does not exist")
        return env
    for name in INVENTORY_CANDIDATES:
        if os.path.exists(name):
            return name
    user = os.path.expanduser(USER_INVENTORY)
    return user if os.path.exists(user) else None


def load_inventory(path: str | None = None, ssh_config: str | None = None) -> Inventory:
    """Read the inventory file (if any). Never touches the network."""
    found = find_inventory(path)
    ssh_config = ssh_config or os.environ.get("OPSKIT_SSH_CONFIG") or SSH_CONFIG
    if found is None:
        return Inventory(ssh_config_path=ssh_config)
    import yaml

    try:
        data = yaml.safe_load(Path(found).read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{found}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{found}: the top level must be a mapping with {sorted(TOP_KEYS)}")
    for key in data:
        if key not in TOP_KEYS:
            raise ConfigError(
                f"{found}: unknown top-level key {key!r}", f"known keys: {', '.join(sorted(TOP_KEYS))}"
            )
    defaults = _check_entry(found, "defaults", data.get("defaults"))
    hosts_raw = data.get("hosts") or {}
    if not isinstance(hosts_raw, dict):
        raise ConfigError(f"{found}: 'hosts' must be a mapping of host name -> settings")
    hosts = {}
    for name, entry in hosts_raw.items():
        check_host_name(str(name), f"host name in {found}")
        hosts[str(name)] = _check_entry(found, f"hosts.{name}", entry)
    groups_raw = data.get("groups") or {}
    if not isinstance(groups_raw, dict):
        raise ConfigError(f"{found}: 'groups' must be a mapping of group name -> list of hosts")
    groups: dict[str, list[str]] = {}
    for gname, members in groups_raw.items():
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ConfigError(f"{found}: key 'groups.{gname}' must be a list of host names")
        for m in members:
            check_host_name(m, f"member of group {gname!r} in {found}")
        groups[str(gname)] = list(members)
    return Inventory(path=found, defaults=defaults, hosts=hosts, groups=groups, ssh_config_path=ssh_config)
