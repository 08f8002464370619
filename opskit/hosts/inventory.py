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

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.errors import ConfigError, UnsafeInputError, UsageError
from opskit.hosts.spec import LOCAL_NAMES, HostSpec, local_spec
from opskit.hosts.sshconfig import DEFAULT_IDENTITY_FILES, Resolved, SSHConfig, local_user
from opskit.hosts.sshjump import parse_hop
from opskit.hosts.sshsyntax import DEFAULT_CIPHERS, DEFAULT_KEX, DEFAULT_MACS
from opskit.safety import check_host_name, check_user_name

INVENTORY_CANDIDATES = ("opskit.yaml", "hosts.yaml")
USER_INVENTORY = "~/.config/opskit/hosts.yaml"

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
TOP_KEYS = {"defaults", "hosts", "groups", "project"}  # project: the project card (opskit/project)
MAX_NAMES_IN_HINT = 25


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
        _check_value(path, f"{where}.{key}", HOST_KEYS[key], value)
        if key in ("hostname", "user"):
            _check_name(path, f"{where}.{key}", key, value)
    return dict(entry)


def _check_name(path: str, where: str, key: str, value: str) -> None:
    try:
        if key == "user":
            check_user_name(value)
        elif not _is_address(value):
            check_host_name(value)
    except UsageError as exc:
        raise ConfigError(f"{path}: key {where!r}: {exc.message}", exc.hint) from exc


def _check_value(path: str, where: str, expected: type | tuple[type, ...], value: Any) -> None:
    names = expected if isinstance(expected, tuple) else (expected,)
    ok = isinstance(value, expected) and not (isinstance(value, bool) and bool not in names)
    if ok and isinstance(value, list):
        ok = all(isinstance(v, str) for v in value)
        names = (list,)
        if not ok:
            raise ConfigError(f"{path}: key {where!r} must be a list of strings, not {value!r}")
    if not ok:
        raise ConfigError(
            f"{path}: key {where!r} must be "
            f"{' or '.join(t.__name__ for t in names)}, not {type(value).__name__} ({value!r})"
        )
    if where.endswith(".port") and not 0 < value < 65536:
        raise ConfigError(f"{path}: key {where!r} must be a port number 1-65535, not {value}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise ConfigError(f"{path}: key {where!r} must not be negative, not {value}")


@dataclass
class Inventory:
    path: str | None = None
    defaults: dict = field(default_factory=dict)
    hosts: dict[str, dict] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    ssh_config_path: str | None = None  # like ``ssh -F``; None: ~/.ssh/config + system config
    trusted: bool = True  # False: found in the current folder (see trustcheck)
    _ssh_config: SSHConfig | None = None

    # -- names ------------------------------------------------------------------------------
    def known_names(self) -> list[str]:
        """Inventory hosts, then the ssh config's literal Host names (each once)."""
        return list(dict.fromkeys([*self.hosts, *self.ssh_config().literal_hosts()]))

    def unknown_host_hint(self) -> str:
        known = self.known_names()
        if len(known) > MAX_NAMES_IN_HINT:
            more = len(known) - MAX_NAMES_IN_HINT
            known = [*known[:MAX_NAMES_IN_HINT], f"... ({more} more: opskit hosts list)"]
        groups = ", ".join("@" + g for g in sorted(self.groups))
        where = f"inventory {self.path}" if self.path else "no inventory file found"
        config = self.ssh_config_path or "~/.ssh/config"
        return (
            f"known hosts: {', '.join(known) or 'none'}; groups: {groups or 'none'} "
            f"({where}; ssh config {config}); add the host to the ssh config or the inventory"
        )

    def expand(self, names: list[str]) -> list[HostSpec]:
        """Names and ``@group`` references -> specs, duplicates removed, order kept."""
        seen: dict[str, HostSpec] = {}
        for name in names:
            if name.startswith("@"):
                group = name[1:]
                if group not in self.groups:
                    raise UsageError(f"unknown host group {name!r}", self.unknown_host_hint())
                members = self.groups[group]
            else:
                members = [name]
            for member in members:
                if member not in seen:
                    seen[member] = self.resolve(member)
        return list(seen.values())

    def resolve(self, name: str) -> HostSpec:
        """One name (or ``user@name``) -> HostSpec. ``localhost`` is this machine, no SSH.

        A name the ssh config does not name is still a destination, as for ``ssh NAME``
        (``Host *`` applies); "unknown host" is for a name neither the config, the
        inventory nor DNS knows.
        """
        user_at = None
        if "@" in name and not name.startswith("@"):
            user_at, name = name.rsplit("@", 1)
            check_user_name(user_at)
        check_host_name(name)
        if name in LOCAL_NAMES and name not in self.hosts and not user_at:
            return local_spec(name)
        resolved = self.ssh_config().resolve(name, user=user_at)
        self._check_untrusted(name, resolved)
        if resolved.refuseconnection:
            where = resolved.sources.get("refuseconnection", "the ssh config")
            raise ConfigError(f"{name}: RefuseConnection yes ({where}): ssh refuses to connect "
                              "to this host, and so does opskit", "remove that line to allow it")
        known = name in self.hosts or resolved.matched_specific or _is_address(name)
        if not (known or _in_dns(resolved.hostname)):
            raise UsageError(f"unknown host {name!r}: not in the ssh config, the inventory "
                             "or DNS", self.unknown_host_hint())
        return self._spec(name, self._settings(name, resolved, user_at))

    def _settings(self, name: str, resolved: Resolved, user: str | None = None) -> dict:
        """ssh config < inventory defaults < the host's inventory entry < ``user@``; the
        ``sources`` key says where each value came from."""
        merged = _from_ssh(resolved)
        sources = merged.pop("sources")
        merged.update(self.defaults)
        sources.update({k: f"{self.path} (defaults)" for k in self.defaults})
        entry = self.hosts.get(name, {})
        merged.update(entry)
        sources.update({k: f"{self.path} (hosts.{name})" for k in entry})
        if user:
            merged["user"] = user
            sources["user"] = "command line (user@host)"
        merged["sources"] = sources
        return merged

    def _check_untrusted(self, name: str, resolved: Resolved) -> None:
        """An inventory found in the working folder may add hosts and groups; it may not move
        a host the ssh config names, nor say which keys pin any host."""
        if self.trusted or self.path is None:
            return
        from opskit.hosts.trustcheck import check_untrusted

        check_untrusted(self, name, resolved)

    def _spec(self, name: str, cfg: dict, jump_chain: str | None = None, depth: int = 0) -> HostSpec:
        proxyjump = jump_chain if jump_chain is not None else cfg.get("proxyjump")
        if proxyjump is not None and proxyjump.lower() == "none":
            proxyjump = None
        jump = None
        jump_error = None
        if proxyjump:
            if depth > 8:
                raise ConfigError(f"ProxyJump chain for {name!r} is too long (a loop?)")
            hops = [h.strip() for h in proxyjump.split(",") if h.strip()]
            try:
                jump = self._jump_spec(hops, depth + 1)
            except UsageError as exc:
                if depth:
                    raise
                jump_error = exc.message  # `hosts show` still works; connecting says why not
        hostname = str(cfg.get("hostname") or name)
        check_destination(hostname, (cfg.get("sources") or {}).get("hostname", "the name given"))
        return HostSpec(
            name=name,
            hostname=hostname,
            port=int(cfg.get("port") or 22),
            user=cfg.get("user") or local_user(),
            identityfile=tuple(_as_list(cfg.get("identityfile")) or DEFAULT_IDENTITY_FILES),
            proxyjump=proxyjump,
            jump=jump,
            proxycommand=None if proxyjump else cfg.get("proxycommand"),
            jump_error=jump_error,
            known_hosts=tuple(os.path.expanduser(f) for f in _as_list(cfg.get("known_hosts"))),
            global_known_hosts=tuple(cfg.get("global_known_hosts") or ()),
            no_user_known_hosts=cfg.get("known_hosts") == [],
            hostkey_algorithms=tuple(cfg.get("hostkey_algorithms") or ()),
            hostkey_algorithms_set=bool(cfg.get("hostkey_algorithms_set")),
            ciphers=tuple(cfg.get("ciphers", DEFAULT_CIPHERS)),
            macs=tuple(cfg.get("macs", DEFAULT_MACS)),
            kex_algorithms=tuple(cfg.get("kex_algorithms", DEFAULT_KEX)),
            algorithms_set=tuple(cfg.get("algorithms_set") or ()),
            hostkey_alias=cfg.get("hostkey_alias"),
            check_host_ip=bool(cfg.get("check_host_ip")),
            hash_known_hosts=bool(cfg.get("hash_known_hosts")),
            known_hosts_command=cfg.get("known_hosts_command"),
            revoked_host_keys=cfg.get("revoked_host_keys"),
            connect_timeout=float(cfg.get("connect_timeout", 10.0)),
            command_timeout=float(cfg.get("command_timeout", 120.0)),
            keepalive=int(cfg.get("keepalive", 15)),
            identities_only=bool(cfg.get("identities_only", False)),
            vars=dict(cfg.get("vars") or {}),
            sources=dict(cfg.get("sources") or {}),
        )

    def _jump_spec(self, hops: list[str], depth: int) -> HostSpec:
        """``ProxyJump A,B``: B is reached through A; A with its own settings (as ssh -J)."""
        user, host, port = parse_jump(hops[-1])
        if not _is_address(host):
            check_host_name(host, "ProxyJump host")
        resolved = self.ssh_config().resolve(host, user=user, port=port)
        cfg = self._settings(host, resolved, user)
        if port:
            cfg["port"] = port
        chain = ",".join(hops[:-1]) if len(hops) > 1 else None
        return self._spec(host, cfg, chain, depth)

    # -- ssh config -------------------------------------------------------------------------
    def ssh_config(self) -> SSHConfig:
        if self._ssh_config is None:
            self._ssh_config = SSHConfig(self.ssh_config_path)
        return self._ssh_config


def parse_jump(text: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]``, ``[user@][host]:port`` or ``ssh://[user@]host[:port]``."""
    try:
        hop = parse_hop(text)
    except ValueError as exc:
        raise ConfigError(f"ProxyJump {text!r}: {exc}") from exc
    return hop.user, hop.host, hop.port


def _in_dns(name: str) -> bool:
    import socket

    try:
        return bool(socket.getaddrinfo(name, None, type=socket.SOCK_STREAM))
    except (socket.gaierror, UnicodeError, OSError):
        return False


def check_destination(hostname: str, source: str) -> None:
    """A host name that will be connected to: no control characters, spaces or leading '-'."""
    if not hostname or any(ord(c) < 32 or c in " \x7f" for c in hostname) or hostname[0] == "-":
        raise UnsafeInputError(
            f"refusing host name {hostname!r} (from {source}): it is empty, starts with '-' "
            "or holds a control character or space", "fix HostName there",
        )


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


SSH_SOURCE_KEYS = {
    "hostname": "hostname", "port": "port", "user": "user", "identityfile": "identityfile",
    "proxyjump": "proxyjump", "proxycommand": "proxycommand",
    "userknownhostsfile": "known_hosts", "globalknownhostsfile": "global_known_hosts",
    "hostkeyalgorithms": "hostkey_algorithms", "hostkeyalias": "hostkey_alias",
    "ciphers": "ciphers", "macs": "macs", "kexalgorithms": "kex_algorithms",
    "checkhostip": "check_host_ip", "connecttimeout": "connect_timeout",
    "knownhostscommand": "known_hosts_command",
    "serveraliveinterval": "keepalive", "identitiesonly": "identities_only",
}


def _from_ssh(r: Resolved) -> dict[str, Any]:
    out: dict[str, Any] = {
        "hostname": r.hostname, "port": r.port, "user": r.user,
        "identityfile": list(r.identityfile), "proxyjump": r.proxyjump,
        "proxycommand": r.proxycommand, "identities_only": r.identitiesonly,
        "known_hosts": list(r.userknownhostsfile),
        "global_known_hosts": list(r.globalknownhostsfile),
        "hostkey_algorithms": list(r.hostkeyalgorithms),
        "hostkey_algorithms_set": r.hostkeyalgorithms_set,
        "ciphers": list(r.ciphers), "macs": list(r.macs), "kex_algorithms": list(r.kexalgorithms),
        "algorithms_set": sorted(r.algorithms_set),
        "hostkey_alias": r.hostkeyalias, "check_host_ip": r.checkhostip,
        "hash_known_hosts": r.hashknownhosts, "known_hosts_command": r.knownhostscommand,
        "revoked_host_keys": r.revokedhostkeys,
    }
    sources = {SSH_SOURCE_KEYS[k]: w for k, w in r.sources.items() if k in SSH_SOURCE_KEYS}
    from opskit import settings

    setting = settings.resolve("known_hosts")  # $OPSKIT_KNOWN_HOSTS or the settings file
    if setting.value and "userknownhostsfile" not in r.sources:
        out["known_hosts"] = [setting.value]
        sources["known_hosts"] = str(setting.source)
    if r.connecttimeout is not None:
        out["connect_timeout"] = r.connecttimeout
    if r.serveraliveinterval is not None:
        out["keepalive"] = int(r.serveraliveinterval)
    out["sources"] = sources
    return out


def find_inventory(explicit: str | None = None) -> str | None:
    return find_inventory_trust(explicit)[0]


def find_inventory_trust(explicit: str | None = None) -> tuple[str | None, bool]:
    """(inventory file, trusted). A file named on purpose or the user's own file is trusted;
    one found in the current folder is not (see ``trustcheck``)."""
    if explicit:
        if not os.path.exists(explicit):
            raise ConfigError(f"inventory file {explicit} does not exist")
        return explicit, True
    from opskit import settings

    setting = settings.resolve("inventory")  # $OPSKIT_INVENTORY, or the settings file
    if setting.value:
        if not os.path.exists(setting.value):
            raise ConfigError(f"inventory file {setting.value} (from {setting.source}) does not exist")
        return setting.value, True
    for name in INVENTORY_CANDIDATES:
        if os.path.exists(name):
            return name, False
    user = os.path.expanduser(USER_INVENTORY)
    return (user, True) if os.path.exists(user) else (None, True)


def load_inventory(path: str | None = None, ssh_config: str | None = None) -> Inventory:
    """Read the inventory file (if any). Never touches the network."""
    found, trusted = find_inventory_trust(path)
    from opskit import settings

    ssh_config = settings.get("ssh_config", ssh_config or None)
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
        check_host_name(str(gname), f"group name in {found}")
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ConfigError(f"{found}: key 'groups.{gname}' must be a list of host names")
        for m in members:
            check_host_name(m, f"member of group {gname!r} in {found}")
        groups[str(gname)] = list(members)
    return Inventory(path=found, defaults=defaults, hosts=hosts, groups=groups,
                     ssh_config_path=ssh_config, trusted=trusted)
