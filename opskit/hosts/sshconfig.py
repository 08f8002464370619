"""Read OpenSSH client config files the way ``ssh -G HOST`` (OpenSSH 9.2) does.

Pure Python, no paramiko (``opskit hosts list`` stays light). Follows readconf.c and ssh.c:
- lines split as OpenSSH splits them (``sshsyntax``): ``#`` starting a word ends the line,
  quotes, backslash escapes, ``Keyword=value``, case-insensitive keywords; a keyword OpenSSH
  does not know is an error naming file and line (unless ``IgnoreUnknown`` names it);
- the first value obtained wins; ``IdentityFile`` accumulates; known-hosts lists are taken
  from the first line that gives them;
- ``Host`` patterns match the name as typed (case-sensitive); ``Match`` criteria are
  evaluated left to right and stop at the first that fails, so an ``exec`` after a failed
  criterion is never run; when it must be run, it runs through ``$SHELL -c`` with ``%``
  tokens expanded, as ssh does;
- ``Include`` inside a ``Host``/``Match`` block is read only when the block applies, and the
  included file cannot change the including block's state;
- ``CanonicalizeHostname``/``CanonicalDomains`` (the system resolver) and the second pass
  over the files they cause (``Match canonical``, ``Match final``), where ``Host`` lines
  match the canonical name;
- ``UserKnownHostsFile`` is expanded (``~``, ``%`` tokens, ``${VAR}``) as ``ssh -G`` prints
  it; ``IdentityFile`` and ``ProxyJump`` are kept as written (``expand_path_tokens`` expands
  an identity file for use); ``HostKeyAlgorithms`` is assembled (``+``/``-``/``^``).
"""

from __future__ import annotations

import functools
import glob
import os
import pwd
import socket
from dataclasses import dataclass, field

from opskit.errors import ConfigError
from opskit.hosts import sshjump
from opskit.hosts import sshkeywords as kw
from opskit.hosts.sshsyntax import (
    ALGORITHM_LISTS,
    DEFAULT_CIPHERS,
    DEFAULT_KEX,
    DEFAULT_MACS,
    assemble_algorithms,
    connection_hash,
    match_pattern,
    match_pattern_list,
    percent_expand,
    split_config_line,
)

USER_CONFIG = "~/.ssh/config"
SYSTEM_CONFIG = "/etc/ssh/ssh_config"
# What OpenSSH 9.2 (Debian 12) prints for ``identityfile`` when none is configured.
DEFAULT_IDENTITY_FILES = (
    "~/.ssh/id_rsa",
    "~/.ssh/id_ecdsa",
    "~/.ssh/id_ecdsa_sk",
    "~/.ssh/id_ed25519",
    "~/.ssh/id_ed25519_sk",
    "~/.ssh/id_xmss",
    "~/.ssh/id_dsa",
)
DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
MAX_INCLUDE_DEPTH = 16


def local_user() -> str:
    return _local_identity(os.getuid())[0]


def pattern_match(name: str, pattern: str) -> bool:
    return match_pattern(name, pattern)


def pattern_list_match(name: str, patterns: str, *, lower: bool = False) -> bool:
    return match_pattern_list(name.lower() if lower else name, patterns, lower) == 1


@dataclass
class SSHOptions:
    """Options obtained so far for one host (first value wins), and where each came from."""

    values: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)
    identityfile: list[str] = field(default_factory=list)
    where: dict[str, str] = field(default_factory=dict)  # key -> "file:line"
    want_final: bool = False
    matched_specific: bool = False  # a Host/Match pattern other than '*' matched

    def set(self, key: str, value: str, where: str) -> None:
        if key not in self.values:
            self.values[key] = value
            self.where[key] = where

    def set_list(self, key: str, value: list[str], where: str) -> None:
        if key not in self.lists:
            self.lists[key] = value
            self.where[key] = where


@dataclass(frozen=True)
class Resolved:
    """What ``ssh -G`` prints for a host (for the keys opskit uses)."""

    host: str
    hostname: str
    port: int
    user: str
    identityfile: tuple[str, ...]
    proxyjump: str | None
    proxycommand: str | None = None
    userknownhostsfile: tuple[str, ...] = ()
    globalknownhostsfile: tuple[str, ...] = DEFAULT_GLOBAL_KNOWN_HOSTS
    hostkeyalgorithms: tuple[str, ...] = ()
    hostkeyalgorithms_set: bool = False
    ciphers: tuple[str, ...] = DEFAULT_CIPHERS
    macs: tuple[str, ...] = DEFAULT_MACS
    kexalgorithms: tuple[str, ...] = DEFAULT_KEX
    algorithms_set: frozenset[str] = frozenset()  # which of ciphers, macs, kexalgorithms were set
    hostkeyalias: str | None = None
    checkhostip: bool = False
    hashknownhosts: bool = False
    refuseconnection: bool = False
    knownhostscommand: str | None = None
    stricthostkeychecking: str = "ask"
    revokedhostkeys: str | None = None
    connecttimeout: float | None = None
    serveraliveinterval: int | None = None
    identitiesonly: bool = False
    matched_specific: bool = False
    sources: dict = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict:
        return {
            "hostname": self.hostname, "port": self.port, "user": self.user,
            "identityfile": list(self.identityfile), "proxyjump": self.proxyjump,
        }


@dataclass
class _Context:
    host: str  # matched by Host lines (the name as typed; the canonical name in the final pass)
    original: str
    final: bool
    opts: SSHOptions
    first_host: str = ""  # pass 1: the name as typed; what Match host compares in pass 1


class SSHConfig:
    """The config files to read: one explicit file (like ``ssh -F``) or user + system."""

    def __init__(self, path: str | None = None):
        self.explicit = path
        if path is not None:
            self.files = [os.path.expanduser(path)]
        else:
            self.files = [os.path.expanduser(USER_CONFIG), SYSTEM_CONFIG]
        self._parsed: dict[str, list] = {}

    def literal_hosts(self) -> list[str]:
        """Names written literally on Host lines (no wildcards, no negation), file order."""
        names: list[str] = []
        for path, user_cfg in self._existing():
            for line in self._file_lines(path, user_cfg):
                if line.keyword == "host":
                    names += [a for a in line.args if not any(c in a for c in "*?!")]
                elif line.keyword == "include":
                    for inc, inc_user in _include_files(line, user_cfg):
                        for sub in self._file_lines(inc, inc_user):
                            if sub.keyword == "host":
                                names += [a for a in sub.args if not any(c in a for c in "*?!")]
        return list(dict.fromkeys(names))

    def resolve(self, host: str, user: str | None = None, port: int | None = None) -> Resolved:
        """``ssh [-l user] [-p port] -G host`` for opskit's keys."""
        from opskit.hosts.sshcanon import canonical_host

        opts = SSHOptions()
        if user:
            opts.set("user", user, "command line")
        if port:
            opts.set("port", str(port), "command line")
        self._pass(_Context(host, host, False, opts, host))
        name = host
        if "hostname" in opts.values:
            name = percent_expand(opts.values["hostname"], {"h": host}, "HostName")
        name = canonical_host(name, opts)
        if opts.values.get("canonicalizehostname", "no") != "no":
            opts.want_final = True
        opts.values["hostname"] = name
        if opts.want_final:
            self._pass(_Context(name, host, True, opts, host))
        return _finish(host, opts)

    # -- reading -----------------------------------------------------------------------------
    def _existing(self) -> list[tuple[str, bool]]:
        out = []
        for i, path in enumerate(self.files):
            if os.path.exists(path):
                out.append((path, self.explicit is not None or i == 0))
            elif self.explicit is not None:
                raise ConfigError(f"ssh config file {path} does not exist")
        return out

    def _file_lines(self, path: str, user_cfg: bool, check_perm: bool = False) -> list[kw.Line]:
        """The parsed lines of one file, read once per SSHConfig (one command's run)."""
        if path not in self._parsed:
            self._parsed[path] = _read_lines(path, check_perm)
        return self._parsed[path]

    def _pass(self, ctx: _Context) -> None:
        for i, (path, user_cfg) in enumerate(self._existing()):
            check = self.explicit is None and i == 0
            self._read_file(ctx, path, user_cfg, check, never=False, depth=0, active=[True])

    def _read_file(self, ctx: _Context, path: str, user_cfg: bool, check: bool, *,
                   never: bool, depth: int, active: list[bool]) -> None:
        if depth > MAX_INCLUDE_DEPTH:
            raise ConfigError(f"{path}: too many recursive configuration includes (a loop?)")
        for line in self._file_lines(path, user_cfg, check):
            if line.keyword == "host":
                active[0] = (not never) and _host_line_matches(ctx, line.args)
            elif line.keyword == "match":
                from opskit.hosts.sshmatch import match_line

                result = match_line(ctx, line)
                active[0] = result and not never
            elif line.keyword == "include":
                outer = active[0]
                for inc, inc_user in _include_files(line, user_cfg):
                    self._read_file(ctx, inc, inc_user, True, never=never or not outer,
                                    depth=depth + 1, active=active)
                    active[0] = outer
            else:
                kw.apply(ctx.opts, line, active[0])


def _read_lines(path: str, check_perm: bool) -> list[kw.Line]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            if check_perm:
                st = os.fstat(fh.fileno())
                if (st.st_uid not in (0, os.getuid())) or st.st_mode & 0o022:
                    raise ConfigError(
                        f"bad owner or permissions on {path} (ssh refuses it too)",
                        f"chmod go-w {path}, owned by you or root",
                    )
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read ssh config file {path}: {exc.strerror or exc}") from exc
    lines = []
    for lineno, raw in enumerate(text.split("\n"), 1):
        where = f"{path}:{lineno}"
        parsed = split_config_line(raw, where)
        if parsed is None:
            continue
        keyword, args, rest = parsed
        lines.append(kw.check(kw.Line(path, lineno, keyword, args, rest)))
    return lines


def _include_files(line: kw.Line, user_cfg: bool) -> list[tuple[str, bool]]:
    out = []
    for arg in line.args:
        if arg.startswith("~") and not user_cfg:
            raise ConfigError(f"{line.where}: bad include path {arg} (~ only in a user config)")
        if not os.path.isabs(arg) and not arg.startswith("~"):
            arg = os.path.join("~/.ssh" if user_cfg else "/etc/ssh", arg)
        pattern = os.path.expanduser(arg)
        out += [(p, user_cfg) for p in sorted(glob.glob(pattern)) if os.path.isfile(p)]
    return out


def _host_line_matches(ctx: _Context, patterns: list[str]) -> bool:
    found = specific = False
    for pat in patterns:
        neg = pat.startswith("!")
        if match_pattern(ctx.host, pat[1:] if neg else pat):
            if neg:
                return False
            found = True
            specific = specific or pat != "*"
    if found and specific:
        ctx.opts.matched_specific = True
    return found


def _finish(host: str, opts: SSHOptions) -> Resolved:
    v, lists = opts.values, opts.lists
    jump = sshjump.display(v.get("proxyjump"))
    command = v.get("proxycommand")
    if (command is not None and command.lower() == "none") or jump is not None:
        command = None
    user = v.get("user") or local_user()
    port = int(v.get("port", 22))
    hostname = v["hostname"]
    tokens = client_tokens(host, hostname, port, user, v.get("hostkeyalias"))
    user_files = lists.get("userknownhostsfile", list(DEFAULT_USER_KNOWN_HOSTS))
    if [f.lower() for f in user_files] == ["none"]:
        user_files = []
    user_files = [percent_expand(os.path.expanduser(f), tokens, "UserKnownHostsFile", dollar=True)
                  for f in user_files]
    global_files = lists.get("globalknownhostsfile", list(DEFAULT_GLOBAL_KNOWN_HOSTS))
    if [f.lower() for f in global_files] == ["none"]:
        global_files = []
    return Resolved(
        host=host, hostname=hostname, port=port, user=user,
        identityfile=tuple(opts.identityfile) or DEFAULT_IDENTITY_FILES,
        proxyjump=jump, proxycommand=command,
        userknownhostsfile=tuple(user_files), globalknownhostsfile=tuple(global_files),
        hostkeyalgorithms=tuple(assemble_algorithms(v.get("hostkeyalgorithms"))),
        hostkeyalgorithms_set="hostkeyalgorithms" in v,
        ciphers=tuple(ALGORITHM_LISTS["ciphers"].assemble(v.get("ciphers"))),
        macs=tuple(ALGORITHM_LISTS["macs"].assemble(v.get("macs"))),
        kexalgorithms=tuple(ALGORITHM_LISTS["kexalgorithms"].assemble(v.get("kexalgorithms"))),
        algorithms_set=frozenset(k for k in ALGORITHM_LISTS if k in v),
        hostkeyalias=v.get("hostkeyalias"),
        checkhostip=kw.flag(v.get("checkhostip", "no")),
        hashknownhosts=kw.flag(v.get("hashknownhosts", "no")),
        refuseconnection=kw.flag(v.get("refuseconnection", "no")),
        knownhostscommand=None if v.get("knownhostscommand", "none").lower() == "none"
        else v["knownhostscommand"],
        stricthostkeychecking=v.get("stricthostkeychecking", "ask").lower(),
        revokedhostkeys=v.get("revokedhostkeys"),
        connecttimeout=kw.seconds(v.get("connecttimeout")),
        serveraliveinterval=kw.seconds(v.get("serveraliveinterval")),
        identitiesonly=kw.flag(v.get("identitiesonly", "no")),
        matched_specific=opts.matched_specific,
        sources=dict(opts.where),
    )


@functools.lru_cache(maxsize=8)
def _local_identity(uid: int) -> tuple[str, str, str]:
    """(user name, home, host name) of this process: asked of NSS once per uid, not once per
    host of a fan-out (each ``getpwuid`` may read /etc/passwd or ask a directory service)."""
    me = pwd.getpwuid(uid)
    return me.pw_name, me.pw_dir, socket.gethostname()


def client_tokens(host: str, hostname: str, port: int, user: str, alias: str | None = None) -> dict:
    """ssh.c's DEFAULT_CLIENT_PERCENT_EXPAND_ARGS: the ``%`` tokens most keywords take."""
    uid = os.getuid()
    name, home, local_host = _local_identity(uid)
    return {
        "C": connection_hash(local_host, hostname, port, user), "L": local_host.split(".")[0],
        "i": str(uid), "k": alias or host, "l": local_host, "n": host, "p": str(port),
        "d": home, "h": hostname, "r": user, "u": name,
    }


def expand_hostname(value: str, host: str) -> str:
    """``HostName`` tokens: ``%h`` (the name as typed) and ``%%``."""
    return percent_expand(value, {"h": host}, "HostName")


def expand_path_tokens(value: str, *, host: str, hostname: str, port: int, user: str) -> str:
    """``IdentityFile``-style tokens and ``~``, as ssh expands them when it uses the file."""
    if value.startswith("~"):
        value = os.path.expanduser(value)
    return percent_expand(value, client_tokens(host, hostname, port, user), "IdentityFile",
                          dollar=True)


def expand_tokens(value: str, tokens: dict[str, str], what: str) -> str:
    return percent_expand(value, tokens, what)
