"""ProxyJump values as OpenSSH 9.2 reads and prints them (readconf.c parse_jump, misc.c
parse_uri/parse_user_host_port, and the ``proxyjump`` line of ``ssh -G``).

Hops are ``[user@]host[:port]``, ``[user@][v6-address]:port`` or ``ssh://[user@]host[:port]``;
several are separated by commas: the last is the jump host nearest the target, reached
through the ones before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from opskit.errors import ConfigError


@dataclass(frozen=True)
class Hop:
    user: str | None
    host: str
    port: int | None

    def display(self) -> str:
        """As ``ssh -G`` prints a jump host: brackets for numeric/IPv6 addresses."""
        numeric = ":" in self.host or all(c in "0123456789." for c in self.host)
        host = f"[{self.host}]" if numeric else self.host
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{host}{port}"


def strip_jump_comment(text: str) -> str:
    return text.split("#", 1)[0].rstrip()


def _port(text: str) -> int:
    from opskit.hosts.sshkeywords import port_number

    port = port_number(text)
    if port <= 0:
        raise ValueError(f"bad port {text!r}")
    return port


def _hpdelim(text: str) -> tuple[str, str | None, str]:
    """misc.c hpdelim2: (host part, the rest after the delimiter or None, the delimiter)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("'[' without ']'")
        host, rest = text[:end + 1], text[end + 1:]
    else:
        m = re.search(r"[:/]", text)
        host, rest = (text[:m.start()], text[m.start():]) if m else (text, "")
    if not rest:
        return host, None, ""
    if rest[0] not in ":/":
        raise ValueError(f"unexpected {rest!r} after the host")
    return host, rest[1:], rest[0]


def _clean(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def parse_hop(text: str) -> Hop:
    """One hop, ValueError if OpenSSH would refuse it."""
    if text.startswith("ssh://"):
        body = text[len("ssh://"):]
        user = None
        if "@" in body:
            info, body = body.split("@", 1)
            info = info.split(";", 1)[0]
            if not info:
                raise ValueError("empty user name")
            user = unquote(info)
        host, rest, delim = _hpdelim(body)
        host = _clean(host)
        if not host or not re.fullmatch(r"[A-Za-z0-9.-]+", host) or ".." in host:
            raise ValueError(f"bad host name {host!r}")
        port = None
        if rest:
            if delim == ":":
                portpart, _, path = rest.partition("/")
                port = _port(portpart)
                rest = path
            if rest:
                raise ValueError("a path is not allowed in ProxyJump")
        return Hop(user, host, port)
    user = None
    if "@" in text:
        user, text = text.rsplit("@", 1)
        if not user:
            raise ValueError("empty user name")
    host, rest, delim = _hpdelim(text)
    if delim == "/" or not host:
        raise ValueError("no host name")
    return Hop(user, _clean(host), _port(rest) if rest else None)


def parse_jump(text: str) -> list[Hop]:
    """All hops, first (farthest from the target) to last. ``none`` gives []."""
    text = strip_jump_comment(text)
    if text.lower() == "none":
        return []
    return [parse_hop(h) for h in text.split(",")]


def check_jump_spec(text: str, where: str) -> None:
    try:
        parse_jump(text)
    except ValueError as exc:
        raise ConfigError(f'{where}: invalid ProxyJump "{text}": {exc}',
                          "write [user@]host[:port], [user@][ipv6]:port or ssh://[user@]host[:port]"
                          ) from exc


def display(text: str | None) -> str | None:
    """The ``proxyjump`` value ``ssh -G`` prints: earlier hops as written, the last parsed."""
    if text is None:
        return None
    text = strip_jump_comment(text)
    if text.lower() == "none":
        return None
    head, sep, last = text.rpartition(",")
    return f"{head}{sep}{parse_hop(last).display()}"
