"""HostSpec: everything needed to reach one host, resolved once, never touching the network."""

from __future__ import annotations

from dataclasses import dataclass, field

from opskit.hosts.sshsyntax import DEFAULT_CIPHERS, DEFAULT_KEX, DEFAULT_MACS

LOCAL_NAMES = frozenset({"localhost", "local"})


@dataclass(frozen=True)
class HostSpec:
    """A resolved host. ``name`` is what the user typed; the rest is how to reach it."""

    name: str
    hostname: str = ""
    port: int = 22
    user: str | None = None
    identityfile: tuple[str, ...] = ()
    proxyjump: str | None = None
    jump: HostSpec | None = None
    proxycommand: str | None = None
    jump_error: str | None = None  # why ProxyJump cannot be followed (reported on connect)
    known_hosts: tuple[str, ...] = ()  # UserKnownHostsFile (expanded); trust writes the first
    no_user_known_hosts: bool = False  # 'UserKnownHostsFile none': no user file at all
    global_known_hosts: tuple[str, ...] = ()  # GlobalKnownHostsFile (read, never written)
    hostkey_algorithms: tuple[str, ...] = ()  # as ssh -G prints them
    hostkey_algorithms_set: bool = False  # the config named them (ssh then keeps their order)
    # Ciphers / MACs / KexAlgorithms as ssh -G prints them (OpenSSH's defaults when unset), and
    # which of the three keywords the config set (opskit.hosts.hostkeycheck offers them)
    ciphers: tuple[str, ...] = DEFAULT_CIPHERS
    macs: tuple[str, ...] = DEFAULT_MACS
    kex_algorithms: tuple[str, ...] = DEFAULT_KEX
    algorithms_set: tuple[str, ...] = ()
    hostkey_alias: str | None = None
    check_host_ip: bool = False
    hash_known_hosts: bool = False  # HashKnownHosts: trust writes a hashed name
    revoked_host_keys: str | None = None
    known_hosts_command: str | None = None  # KnownHostsCommand: more known_hosts lines
    connect_timeout: float = 10.0
    command_timeout: float = 120.0
    keepalive: int = 15
    local: bool = False
    identities_only: bool = False
    vars: dict = field(default_factory=dict, compare=False, hash=False)
    sources: dict = field(default_factory=dict, compare=False, hash=False)  # key -> file:line

    @property
    def display(self) -> str:
        return self.name

    def check_jump(self) -> None:
        """Raise the ProxyJump problem found while resolving, before any connection."""
        if self.jump_error:
            from opskit.errors import ConfigError

            raise ConfigError(
                f"{self.name}: cannot follow ProxyJump {self.proxyjump!r}: {self.jump_error}",
                "fix ProxyJump for this host in the ssh config or the inventory",
            )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "local": self.local,
            "hostname": self.hostname,
            "port": self.port,
            "user": self.user,
            "identityfile": list(self.identityfile),
            "proxyjump": self.proxyjump,
            "known_hosts": list(self.known_hosts),
            "userknownhostsfile": list(self.known_hosts),
            "globalknownhostsfile": list(self.global_known_hosts),
            "hostkeyalgorithms": list(self.hostkey_algorithms),
            "ciphers": list(self.ciphers),
            "macs": list(self.macs),
            "kexalgorithms": list(self.kex_algorithms),
            "hostkeyalias": self.hostkey_alias,
            "checkhostip": self.check_host_ip,
            "sources": dict(self.sources),
        }


def local_spec(name: str = "localhost") -> HostSpec:
    return HostSpec(name=name, hostname="localhost", local=True)
