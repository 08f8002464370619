"""Read OpenSSH client config files the way ``ssh -G HOST`` does, for the keys opskit uses.

Pure Python, no paramiko (``opskit hosts list`` stays light). Follows OpenSSH's readconf:
the first value obtained for a key wins; ``IdentityFile`` accumulates (duplicates dropped);
``Host`` patterns (``*``, ``?``, ``!negation``) match the name as typed, case-sensitively;
``Match`` supports ``all``, ``host``, ``originalhost``, ``user``, ``localuser``, ``canonical``
and ``final`` (a ``final`` criterion triggers OpenSSH's second pass over the files, matched
against the resolved host name); ``Include`` with globs (relative to ``~/.ssh`` or
``/etc/ssh``); ``Key=Value`` and quoted arguments. ``HostName`` expands ``%h`` and ``%%`` and
the final host name is lowercased, as ssh does. ``IdentityFile`` and ``ProxyJump`` are kept
as written (``ssh -G`` prints them unexpanded); ``expand_path_tokens`` expands them for use.

``Match exec`` and other criteria that need more than the config are refused with a
ConfigError naming file and line (opskit never runs commands from a config file).
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shlex
import socket
from dataclasses import dataclass, field

from opskit.errors import ConfigError

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
# Keys kept (lowercase). Everything else in a config file is accepted and ignored.
SINGLE_KEYS = frozenset({
    "hostname", "port", "user", "proxyjump", "proxycommand", "userknownhostsfile",
    "connecttimeout", "serveraliveinterval", "identitiesonly", "stricthostkeychecking",
})
MAX_INCLUDE_DEPTH = 16


def local_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


@dataclass
class SSHOptions:
    """Options obtained so far for one host (first value wins)."""

    values: dict[str, str] = field(default_factory=dict)
    identityfile: list[str] = field(default_factory=list)
    want_final: bool = False
    matched_specific: bool = False  # a Host/Match pattern other than '*' matched

    def set(self, key: str, value: str) -> None:
        if key in ("proxyjump", "proxycommand") and (
            "proxyjump" in self.values or "proxycommand" in self.values
        ):
            return  # mutually exclusive in OpenSSH: the first one obtained wins
        self.values.setdefault(key, value)


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
    connecttimeout: float | None = None
    serveraliveinterval: int | None = None
    identitiesonly: bool = False
    matched_specific: bool = False

    def to_dict(self) -> dict:
        return {
            "hostname": self.hostname, "port": self.port, "user": self.user,
            "identityfile": list(self.identityfile), "proxyjump": self.proxyjump,
        }


def pattern_match(name: str, pattern: str) -> bool:
    """OpenSSH ``match_pattern``: ``*`` and ``?`` wildcards, case-sensitive, whole string."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.DOTALL) is not None


def pattern_list_match(name: str, patterns: str, *, lower: bool = False) -> bool:
    """OpenSSH ``match_pattern_list``: comma list, ``!`` negates (a negated hit wins)."""
    if lower:
        name = name.lower()
    found = False
    for pat in patterns.split(","):
        neg = pat.startswith("!")
        pat = pat[1:] if neg else pat
        if lower:
            pat = pat.lower()
        if pattern_match(name, pat):
            if neg:
                return False
            found = True
    return found


def split_line(line: str, path: str, lineno: int) -> tuple[str, list[str]] | None:
    """``Keyword args`` or ``Keyword=args`` -> (lowercase keyword, args); None for blanks."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    m = re.match(r"([^\s=]+)\s*(?:=\s*|\s+|$)(.*)$", text)
    if not m:
        raise ConfigError(f"{path}:{lineno}: cannot parse line {line.strip()!r}")
    keyword, rest = m.group(1).lower(), m.group(2)
    try:
        lexer = shlex.shlex(rest, posix=True)
        lexer.whitespace_split = True
        lexer.commenters = ""
        lexer.escape = ""
        args = list(lexer)
    except ValueError as exc:
        raise ConfigError(f"{path}:{lineno}: {keyword}: {exc} in {rest!r}") from exc
    return keyword, args


@dataclass
class _Context:
    host: str  # matched by Host lines (the name as typed; the host name in the final pass)
    original: str
    final: bool
    user_config: bool
    opts: SSHOptions


class SSHConfig:
    """The config files to read: one explicit file (like ``ssh -F``) or user + system."""

    def __init__(self, path: str | None = None):
        self.explicit = path
        if path is not None:
            self.files = [os.path.expanduser(path)]
        else:
            self.files = [os.path.expanduser(USER_CONFIG), SYSTEM_CONFIG]
        self._parsed: dict[str, list] = {}  # file -> its lines, Includes spliced in

    def literal_hosts(self) -> list[str]:
        """Names written literally on Host lines (no wildcards, no negation), file order."""
        names: list[str] = []
        for path, user_cfg in self._existing():
            for _where, keyword, args in self._file_lines(path, user_cfg):
                if keyword == "host":
                    names += [a for a in args if not any(c in a for c in "*?!")]
        return list(dict.fromkeys(names))

    def resolve(self, host: str, user: str | None = None, port: int | None = None) -> Resolved:
        """``ssh [-l user] [-p port] -G host`` for opskit's keys."""
        opts = SSHOptions()
        if user:
            opts.values["user"] = user
        if port:
            opts.values["port"] = str(port)
        self._pass(_Context(host, host, False, True, opts))
        hostname = opts.values.get("hostname", host)
        hostname = expand_hostname(hostname, host).lower()
        opts.values["hostname"] = hostname
        if opts.want_final:
            self._pass(_Context(hostname, host, True, True, opts))
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

    def _lines(self, path: str, user_cfg: bool, depth: int):  # noqa: ANN202 - generator
        """(lineno, keyword, args) of a file, with Include files spliced in place."""
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ConfigError(f"cannot read ssh config file {path}: {exc}") from exc
        for lineno, line in enumerate(text.splitlines(), 1):
            parsed = split_line(line, path, lineno)
            if parsed is None:
                continue
            keyword, args = parsed
            if keyword != "include":
                yield (path, lineno), keyword, args
                continue
            if depth >= MAX_INCLUDE_DEPTH:
                raise ConfigError(f"{path}:{lineno}: Include nested too deeply (a loop?)")
            for pattern in args:
                pattern = os.path.expanduser(pattern)
                if not os.path.isabs(pattern):
                    base = os.path.expanduser("~/.ssh") if user_cfg else "/etc/ssh"
                    pattern = os.path.join(base, pattern)
                for inc in sorted(glob.glob(pattern)):
                    yield from self._lines(inc, user_cfg, depth + 1)

    def _file_lines(self, path: str, user_cfg: bool) -> list:
        """The lines of one top-level file, read once per SSHConfig (one command's run)."""
        if path not in self._parsed:
            self._parsed[path] = list(self._lines(path, user_cfg, 0))
        return self._parsed[path]

    def _pass(self, ctx: _Context) -> None:
        for path, user_cfg in self._existing():
            ctx.user_config = user_cfg
            active = True
            for (fpath, lineno), keyword, args in self._file_lines(path, user_cfg):
                if keyword == "host":
                    active = _host_line_matches(ctx, args)
                elif keyword == "match":
                    active = _match_line(ctx, args, fpath, lineno)
                elif active:
                    _apply(ctx.opts, keyword, args, fpath, lineno)


def _host_line_matches(ctx: _Context, patterns: list[str]) -> bool:
    found = False
    specific = False
    for pat in patterns:
        neg = pat.startswith("!")
        if pattern_match(ctx.host, pat[1:] if neg else pat):
            if neg:
                return False
            found = True
            specific = specific or pat != "*"
    if found and specific:
        ctx.opts.matched_specific = True
    return found


def _match_line(ctx: _Context, args: list[str], path: str, lineno: int) -> bool:
    if not args:
        raise ConfigError(f"{path}:{lineno}: Match needs criteria")
    result = True
    i = 0
    while i < len(args):
        crit = args[i].lower()
        neg = crit.startswith("!")
        crit = crit[1:] if neg else crit
        i += 1
        if crit == "all":
            ok = True
        elif crit in ("canonical", "final"):
            if crit == "final":
                ctx.opts.want_final = True
            ok = ctx.final
        elif crit in ("host", "originalhost", "user", "localuser"):
            if i >= len(args):
                raise ConfigError(f"{path}:{lineno}: Match {crit} needs an argument")
            arg = args[i]
            i += 1
            ok = _match_criterion(ctx, crit, arg)
        else:
            raise ConfigError(
                f"{path}:{lineno}: Match {crit!r} is not supported by opskit",
                "opskit reads Match all/host/originalhost/user/localuser/canonical/final; "
                "move this host's settings to a Host block or the opskit inventory",
            )
        if ok == neg:
            result = False
    if result:
        ctx.opts.matched_specific = ctx.opts.matched_specific or args[0].lower() != "all"
    return result


def _match_criterion(ctx: _Context, crit: str, arg: str) -> bool:
    if crit == "host":
        name = ctx.opts.values.get("hostname", ctx.host)
        name = expand_hostname(name, ctx.original) if "%" in name else name
        return pattern_list_match(name, arg, lower=True)
    if crit == "originalhost":
        return pattern_list_match(ctx.original, arg, lower=True)
    if crit == "user":
        return pattern_list_match(ctx.opts.values.get("user", local_user()), arg)
    return pattern_list_match(local_user(), arg)


def _apply(opts: SSHOptions, keyword: str, args: list[str], path: str, lineno: int) -> None:
    if not args:
        raise ConfigError(f"{path}:{lineno}: {keyword} needs a value")
    if keyword == "identityfile":
        if args[0] not in opts.identityfile:
            opts.identityfile.append(args[0])
    elif keyword == "port":
        if not args[0].isdigit() or not 0 < int(args[0]) < 65536:
            raise ConfigError(f"{path}:{lineno}: bad Port {args[0]!r} (1-65535)")
        opts.set("port", args[0])
    elif keyword == "proxycommand":  # quoted again: paramiko.ProxyCommand shlex-splits it
        opts.set(keyword, shlex.join(args))
    elif keyword == "userknownhostsfile":
        opts.set(keyword, " ".join(args))
    elif keyword in SINGLE_KEYS:
        opts.set(keyword, args[0])


def _finish(host: str, opts: SSHOptions) -> Resolved:
    v = opts.values
    jump = v.get("proxyjump")
    if jump is not None and jump.lower() == "none":
        jump = None
    command = v.get("proxycommand")
    if command is not None and command.lower() == "none":
        command = None
    timeout = v.get("connecttimeout")
    alive = v.get("serveraliveinterval")
    return Resolved(
        host=host,
        hostname=v["hostname"],
        port=int(v.get("port", 22)),
        user=v.get("user") or local_user(),
        identityfile=tuple(opts.identityfile) or DEFAULT_IDENTITY_FILES,
        proxyjump=jump,
        proxycommand=command,
        userknownhostsfile=tuple(v["userknownhostsfile"].split()) if "userknownhostsfile" in v else (),
        connecttimeout=float(timeout) if timeout and timeout.isdigit() else None,
        serveraliveinterval=int(alive) if alive and alive.isdigit() else None,
        identitiesonly=v.get("identitiesonly", "no").lower() == "yes",
        matched_specific=opts.matched_specific,
    )


def expand_hostname(value: str, host: str) -> str:
    """``HostName`` tokens: ``%h`` (the name as typed) and ``%%``."""
    return expand_tokens(value, {"h": host}, "HostName")


def expand_path_tokens(value: str, *, host: str, hostname: str, port: int, user: str) -> str:
    """``IdentityFile``-style tokens and ``~``, as ssh expands them when it uses the file."""
    me = pwd.getpwuid(os.getuid())
    local_host = socket.gethostname()
    tokens = {
        "d": me.pw_dir, "u": me.pw_name, "l": local_host, "L": local_host.split(".")[0],
        "h": hostname, "n": host, "p": str(port), "r": user, "i": str(os.getuid()),
    }
    if value.startswith("~"):
        value = os.path.expanduser(value)
    return expand_tokens(value, tokens, "IdentityFile")


def expand_tokens(value: str, tokens: dict[str, str], what: str) -> str:
    out = []
    i = 0
    while i < len(value):
        c = value[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(value):
            raise ConfigError(f"{what} {value!r}: a lone '%' at the end")
        t = value[i + 1]
        if t == "%":
            out.append("%")
        elif t in tokens:
            out.append(tokens[t])
        else:
            raise ConfigError(f"{what} {value!r}: unknown token %{t}")
        i += 2
    return "".join(out)
