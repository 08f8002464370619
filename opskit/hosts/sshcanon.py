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


def _resolves(name: str) -> bool:
    try:
        return bool(socket.getaddrinfo(name, 22, type=socket.SOCK_STREAM))
    except (socket.gaierror, UnicodeError, OSError):
        return False


def canonical_host(name: str, opts) -> str:  # noqa: ANN001 - sshconfig.SSHOptions
    """ssh.c between the passes: lowercase or numeric form, then CanonicalDomains."""
    was_addr = is_addr_fast(name) or numeric_address(name) is not None
    if not was_addr:
        name = name.lower()
    mode = opts.values.get("canonicalizehostname", "no")
    if mode == "no" and not was_addr:
        return name
    addr = numeric_address(name)
    if addr is not None:
        return addr
    if is_addr_fast(name) or mode == "no":
        return name
    direct = (opts.values.get("proxycommand", "none").lower() == "none"
              and "proxyjump" not in opts.values)
    if not direct and mode != "always":
        return name
    if name.endswith("."):
        if _resolves(name):
            return name[:-1]
        return _not_found(name, opts)
    max_dots = int(opts.values.get("canonicalizemaxdots", "1"))
    if name.count(".") > max_dots:
        return name
    for domain in opts.lists.get("canonicaldomains", []):
        if domain.lower() == "none":
            break
        full = f"{name}.{domain}."
        if _resolves(full):
            return full[:-1]
    return _not_found(name, opts)


def _not_found(name: str, opts) -> str:  # noqa: ANN001
    if opts.values.get("canonicalizefallbacklocal", "yes") == "no":
        where = opts.where.get("canonicalizefallbacklocal", "the ssh config")
        raise ConfigError(f"could not resolve host {name!r} in any CanonicalDomains "
                          f"(CanonicalizeFallbackLocal no, {where})")
    return name
