"""Host name canonicalisation as ssh.c (OpenSSH 9.2) does it between its two config passes.

An address is put in its numeric form (``getnameinfo``); any other name is lowercased.
With ``CanonicalizeHostname yes`` (direct connections) or ``always``, a name with at most
``CanonicalizeMaxDots`` dots is tried with each of ``CanonicalDomains`` through the system
resolver (the one ssh uses); the first that resolves is the new name. A name that resolves
with no suffix is an error only with ``CanonicalizeFallbackLocal no``, as with ssh.
"""

from __future__ import annotations

import socket

from opskit.errors import ConfigError


def is_addr_fast(name: str) -> bool:
    return "%" in name or ":" in name or all(c in "0123456789." for c in name)


def numeric_address(name: str) -> str | None:
    """The address in canonical numeric form, or None when ``name`` is not one address."""
    try:
        infos = socket.getaddrinfo(name, 22, type=socket.SOCK_STREAM,
                                   flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    if len(infos) != 1:
        return None
    try:
        host, _ = socket.getnameinfo(infos[0][4], socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
    except (socket.gaierror, OSError):
        return None
    return host


def _lookup(name: str) -> tuple[bool, str]:
    """(resolves, its canonical name from the resolver or "")."""
    try:
        infos = socket.getaddrinfo(name, 22, type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME)
    except (socket.gaierror, UnicodeError, OSError):
        return False, ""
    return bool(infos), (infos[0][3] if infos else "") or ""


def _rules(opts) -> list[tuple[str, str]]:  # noqa: ANN001
    """CanonicalizePermittedCNAMEs as (source patterns, target patterns)."""
    rules = []
    for arg in opts.lists.get("canonicalizepermittedcnames", []):
        if arg.lower() == "none":
            return []
        src, _, tgt = ("*", "", "*") if arg == "*" else arg.lower().partition(":")
        rules.append((src, tgt))
    return rules


def _follow_cname(name: str, cname: str, opts, direct: bool, mode: str) -> str:  # noqa: ANN001
    """ssh.c check_follow_cname: the CNAME replaces the name when a rule permits it."""
    from opskit.hosts.sshsyntax import match_pattern_list

    if not cname or name == cname or mode == "no" or (not direct and mode != "always"):
        return name
    for src, tgt in _rules(opts):
        if match_pattern_list(name, src, True) == 1 and match_pattern_list(cname, tgt, True) == 1:
            return cname
    return name


def canonical_host(name: str, opts) -> str:  # noqa: ANN001 - sshconfig.SSHOptions
    """ssh.c between the passes: lowercase or numeric form, CanonicalDomains, CNAMEs."""
    was_addr = is_addr_fast(name) or numeric_address(name) is not None
    if not was_addr:
        name = name.lower()
    mode = opts.values.get("canonicalizehostname", "no")
    direct = (opts.values.get("proxycommand", "none").lower() == "none"
              and "proxyjump" not in opts.values)
    resolved = False
    if mode != "no" or was_addr:
        name, resolved = _canonicalize(name, opts, mode, direct)
    if not resolved and _rules(opts) and (direct or mode == "always"):
        ok, cname = _lookup(name)
        if ok:
            name = _follow_cname(name, cname, opts, direct, mode)
        elif direct:
            where = opts.where.get("canonicalizepermittedcnames", "the ssh config")
            raise ConfigError(f"could not resolve host name {name!r}: with "
                              f"CanonicalizePermittedCNAMEs ({where}) ssh fails here too")
    return name


def _canonicalize(name: str, opts, mode: str, direct: bool) -> tuple[str, bool]:  # noqa: ANN001
    """ssh.c resolve_canonicalize: (name, whether it was resolved)."""
    addr = numeric_address(name)
    if addr is not None:
        return addr, True
    if is_addr_fast(name) or mode == "no" or (not direct and mode != "always"):
        return name, False
    if name.endswith("."):
        ok, cname = _lookup(name)
        if ok:
            return _follow_cname(name[:-1], cname, opts, direct, mode), True
        return _not_found(name, opts), False
    if name.count(".") > int(opts.values.get("canonicalizemaxdots", "1")):
        return name, False
    for domain in opts.lists.get("canonicaldomains", []):
        if domain.lower() == "none":
            break
        ok, cname = _lookup(f"{name}.{domain}.")
        if ok:
            return _follow_cname(f"{name}.{domain}", cname, opts, direct, mode), True
    return _not_found(name, opts), False


def _not_found(name: str, opts) -> str:  # noqa: ANN001
    if opts.values.get("canonicalizefallbacklocal", "yes") == "no":
        where = opts.where.get("canonicalizefallbacklocal", "the ssh config")
        raise ConfigError(f"could not resolve host {name!r} in any CanonicalDomains "
                          f"(CanonicalizeFallbackLocal no, {where})")
    return name
