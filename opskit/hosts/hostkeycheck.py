"""The host-key decision at connect time, before any authentication (as OpenSSH does it with
``StrictHostKeyChecking yes``), and the host-key algorithms offered.

paramiko is given an empty host-key table, so it hands every server key to ``KeyPolicy``
right after the key exchange and before it authenticates: that is where opskit decides, with
``knownhosts.decide`` over every file OpenSSH would read. Unknown, changed and revoked keys
are refused there, so a revoked host never sees a signature or a password.

A host certificate signed by a CA an ``@cert-authority`` line names for the host, valid now and
listing the host name (or ``HostKeyAlias``) is accepted; a certificate that does not do falls
back to its plain key, as in ssh (certificates are asked for when a CA line names the host).
``HostKeyAlgorithms`` is honoured where paramiko can verify the algorithm (named ones are
offered in the config's order; when it is unset, the types already pinned for the host come
first, as ssh does); a list with none paramiko can verify is refused before connecting.
``HostKeyAlias`` names the known_hosts entry; ``CheckHostIP yes`` also checks the address
entry for direct connections to a non-loopback address; ``RevokedHostKeys`` (a file of public
keys; binary KRLs are refused as not supported) revokes keys for every host.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from typing import Any

from opskit.errors import HostError, HostKeyError
from opskit.hosts import knownhosts as kh
from opskit.hosts.spec import HostSpec
from opskit.hosts.sshsyntax import ALGORITHM_LISTS

# What paramiko can verify as a server host key: plain keys and OpenSSH host certificates.
PLAIN_ALGORITHMS = (
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa",
)
CERT_ALGORITHMS = (
    "ssh-ed25519-cert-v01@openssh.com", "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com",
)
PARAMIKO_HOSTKEY_ALGORITHMS = PLAIN_ALGORITHMS + CERT_ALGORITHMS
TYPE_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256")}
# Asked for first where the ssh config leaves the list unset (the rest follows in the order of
# OpenSSH's default): AES-GCM (in OpenSSH's default list since 6.2, authenticated encryption)
# before AES-CTR with a separate HMAC: a GCM packet costs the client one AEAD call, a CTR one a
# cipher call, an HMAC and paramiko's MAC compare done byte by byte in Python. And the
# post-quantum hybrid key exchange that OpenSSH 9.9 and later put first in their default (9.2's,
# which ``ssh -G`` prints here, starts with sntrup761x25519, which paramiko lacks); hosts
# without it agree on the next, curve25519.
FIRST_WHEN_UNSET = {"ciphers": ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com"),
                    "kexalgorithms": ("mlkem768x25519-sha256",)}
# The same method under two names (RFC 8731 names the one OpenSSH first shipped as
# curve25519-sha256@libssh.org): a list that allows one allows what paramiko calls the other.
KEX_ALIASES = {"curve25519-sha256": "curve25519-sha256@libssh.org"}
# ssh_config keyword -> (HostSpec field, paramiko SecurityOptions attribute)
ALGORITHM_FIELDS = {"ciphers": ("ciphers", "ciphers"), "macs": ("macs", "digests"),
                    "kexalgorithms": ("kex_algorithms", "kex")}


def offered_list(spec: HostSpec, keyword: str, available: list[str]) -> list[str]:
    """What opskit offers for ``Ciphers``, ``MACs`` or ``KexAlgorithms`` (``keyword`` in
    lower case): the list ``ssh -G`` prints for the host (OpenSSH's default when unset, so
    nothing ssh would not offer: no CBC, 3DES, MD5 or truncated MACs, which paramiko would),
    kept to what paramiko implements (``available``), in ssh's order; when unset,
    :data:`FIRST_WHEN_UNSET` first. A set list of which paramiko implements nothing is refused
    before any SSH exchange, naming the keyword, where it was set and what would do."""
    field_name, _ = ALGORITHM_FIELDS[keyword]
    wanted = list(getattr(spec, field_name))
    names: list[str] = []
    for name in wanted:
        names += [name, KEX_ALIASES[name]] if name in KEX_ALIASES else [name]
    if keyword not in spec.algorithms_set:
        names = [*FIRST_WHEN_UNSET.get(keyword, ()), *names]
    chosen = [n for n in dict.fromkeys(names) if n in available]
    if not chosen and keyword in spec.algorithms_set:
        kind = ALGORITHM_LISTS[keyword]
        where = spec.sources.get(field_name, "the ssh config")
        allowed = (f"allows only {','.join(wanted)}, none of which opskit (paramiko) implements"
                   if wanted else "removes every name")
        raise HostError(
            spec.name, f"{kind.keyword} ({where}) {allowed}",
            f"add one of {', '.join(available)} for this host (e.g. {kind.keyword} "
            f"+{available[0]})",
        )
    return chosen


def offered_algorithms(spec: HostSpec, known: kh.KnownHosts, defaults: list[str]) -> list[str]:
    """The host key algorithms to offer, in order (see module doc)."""
    if spec.hostkey_algorithms_set:
        chosen = [a for a in spec.hostkey_algorithms if a in PARAMIKO_HOSTKEY_ALGORITHMS]
        if not chosen:
            where = spec.sources.get("hostkey_algorithms", "the ssh config")
            raise HostError(
                spec.name,
                f"HostKeyAlgorithms ({where}) allows only {','.join(spec.hostkey_algorithms)}; "
                "opskit (paramiko) can verify none of them (no security-key or DSA types)",
                f"add one of {', '.join(PLAIN_ALGORITHMS[:6])} for this host",
            )
        return chosen
    first: list[str] = []
    if any(e.marker == "@cert-authority" for n in _names(spec) for e in known.for_host(n)):
        first += list(CERT_ALGORITHMS)  # a CA is trusted for this host: ask for certificates
    for key_type in kh.pinned_types(known, kh.lookup_name(spec)):
        first += [a for a in TYPE_ALGORITHMS.get(key_type, (key_type,)) if a in defaults]
    return list(dict.fromkeys(first + defaults))


def revoked_by_file(spec: HostSpec, blob: bytes) -> str | None:
    """Why ``RevokedHostKeys`` refuses this key (or None): listed, or the file unusable."""
    path = spec.revoked_host_keys
    if not path or path.lower() == "none":
        return None
    path = os.path.expanduser(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return f"RevokedHostKeys {path} cannot be read ({exc.strerror}); ssh refuses too"
    if data.startswith(b"SSHKRL\n"):
        return (f"RevokedHostKeys {path} is a binary key revocation list, which opskit does not "
                "support (a file of public keys is)")
    for lineno, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        got = kh.parse_line(f"* {line}", f"{path}:{lineno}")  # "type base64 [comment]"
        if isinstance(got, kh.Entry) and got.blob == blob:
            return f"the key is listed in RevokedHostKeys {path}:{lineno}"
    return None


def _is_local(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.split("%")[0]).is_loopback
    except ValueError:
        return False


def _names(spec: HostSpec) -> list[str]:
    """The names looked up: ``[host]:port`` (or the alias), then the bare host name (ssh
    retries without the port when nothing is known under it)."""
    names = [kh.lookup_name(spec)]
    if not spec.hostkey_alias and spec.port not in (0, 22):
        names.append(spec.hostname)
    return names


def known_for(spec: HostSpec, key: Any = None) -> kh.KnownHosts:
    """Every known_hosts line for this host: the files and KnownHostsCommand."""
    from opskit.hosts.knownhostscmd import with_command

    return with_command(spec, kh.load_for(spec), kh.lookup_name(spec), "HOSTNAME", key)


def cert_check(spec: HostSpec, key: Any, known: kh.KnownHosts) -> tuple[kh.Decision | None, str]:
    """A host certificate judged against @cert-authority lines: (an accepting decision or
    None, why the certificate did not do). Revoked keys or CAs raise at once."""
    from opskit.hosts import hostcert

    try:
        cert = hostcert.from_key(key)
    except ValueError as exc:
        return None, f"the host's certificate cannot be read ({exc})"
    if cert is None:
        return None, ""
    entries = [e for n in _names(spec) for e in known.for_host(n)]
    for e in entries:
        if e.marker == "@revoked" and e.blob in (cert.plain_blob, cert.ca_blob):
            raise _revoked(spec, key, f"its key or its CA is marked @revoked at {e.where}")
    why = revoked_by_file(spec, cert.ca_blob)
    if why and "listed" in why:
        raise _revoked(spec, key, f"its CA: {why}")
    cas = [e for e in entries if e.marker == "@cert-authority" and e.blob == cert.ca_blob]
    if not cas:
        return None, (f"the host showed a certificate signed by CA {kh.fingerprint(cert.ca_blob)}, "
                      "which no @cert-authority line names for this host")
    problem = hostcert.problem(cert, spec.hostkey_alias or spec.hostname)
    if problem is None:
        return kh.Decision(kh.OK, cas[0]), ""
    return None, f"its certificate (CA at {cas[0].where}) does not do: {problem}"


def judge(spec: HostSpec, key: Any, known: kh.KnownHosts | None = None
          ) -> tuple[kh.Decision, kh.KnownHosts]:
    """The files' decision on the plain ``key``; HostKeyError at once for a revoked key."""
    blob = key.asbytes()
    known = known if known is not None else known_for(spec, key)
    why = revoked_by_file(spec, blob)
    if why:
        raise _revoked(spec, key, why)
    decision = kh.decide(known, kh.lookup_name(spec), blob)
    if decision.status == kh.REVOKED:
        raise _revoked(spec, key, f"it is marked @revoked at {decision.entry.where}")
    if decision.status == kh.NEW and not spec.hostkey_alias and spec.port not in (0, 22):
        # ssh: "checking without port identifier": a line for the bare host name accepts
        bare = kh.decide(known, spec.hostname, blob)
        if bare.status == kh.OK:
            return bare, known
    return decision, known


def check_key(spec: HostSpec, key: Any, peer_ip: str | None = None) -> kh.Decision:
    """Accept (return the decision) or raise HostKeyError, as ssh would decide: a valid host
    certificate by a trusted CA, else the plain key against the known_hosts lines."""
    known = known_for(spec, key)
    accepted, cert_note = cert_check(spec, key, known)
    if accepted is not None:
        return accepted
    decision, known = judge(spec, key, known)
    if decision.status == kh.OK:
        _check_ip(spec, known, key, peer_ip, decision)
        return decision
    raise refusal(spec, key, decision, known, cert_note)


def _check_ip(spec: HostSpec, known: kh.KnownHosts, key: Any, peer_ip: str | None,
              host: kh.Decision) -> None:
    """CheckHostIP: the address's own entry must not hold another key (ssh, strict)."""
    if not (spec.check_host_ip and peer_ip) or spec.jump or spec.proxycommand:
        return
    if _is_local(peer_ip) or peer_ip == spec.hostname:
        return
    ip_name = kh.known_hosts_entry_name(peer_ip, spec.port)
    got = kh.decide(known, ip_name, key.asbytes())
    if got.status in (kh.CHANGED, kh.REVOKED):
        raise HostKeyError(
            spec.name,
            f"the {key.get_name()} host key for {kh.lookup_name(spec)} (accepted at "
            f"{host.entry.where}) differs from the key for its address {ip_name} "
            f"({got.entry.where}); CheckHostIP is on, so opskit refuses as ssh does",
            f"if the address really changed hands, remove the old line: ssh-keygen -R "
            f"'{ip_name}' -f {got.entry.where.rsplit(':', 1)[0]}",
        )


def _revoked(spec: HostSpec, key: Any, why: str) -> HostKeyError:
    return HostKeyError(
        spec.name,
        f"REVOKED HOST KEY for {kh.lookup_name(spec)}: {key.get_name()} {kh.fingerprint(key)}: "
        f"{why}; refused before logging in",
        "this key must not be used again: ask the host's owner for its new key",
    )


def refusal(spec: HostSpec, key: Any, decision: kh.Decision, known: kh.KnownHosts,
            cert_note: str = "") -> HostKeyError:
    """The message for a key the files do not accept (unknown or changed)."""
    name = kh.lookup_name(spec)
    files = " ".join(kh.all_known_hosts_files(spec)) or "none (UserKnownHostsFile none)"
    shown = f"{key.get_name()} {kh.fingerprint(key)}"
    ca = f"; {cert_note}" if cert_note else ""
    if decision.ca_lines and not cert_note:
        ca = (f"; @cert-authority lines name this host ({', '.join(decision.ca_lines)}), but "
              "the host showed no certificate")
    skipped = f" ({len(known.skipped)} unreadable known_hosts line(s) skipped: " \
              f"{known.skipped[0]})" if known.skipped else ""
    if decision.status == kh.CHANGED:
        same = key.get_name() in decision.others
        what = "HOST KEY CHANGED" if same else "HOST KEY NOT PINNED FOR THIS TYPE"
        return HostKeyError(
            spec.name,
            f"{what} for {name}: the host shows {shown}; pinned: "
            f"{', '.join(decision.others)} ({decision.entry.where}). Someone may be "
            f"intercepting the connection; opskit will not use or replace a pinned key{ca}{skipped}",
            f"if the host was really reinstalled, remove the old line (ssh-keygen -R '{name}' "
            f"-f {decision.entry.where.rsplit(':', 1)[0]}) and run 'opskit hosts trust {spec.name}'",
        )
    return HostKeyError(
        spec.name,
        f"unknown host key for {name}: {shown} (known_hosts files read: {files}){ca}{skipped}",
        f"check the fingerprint with the host's owner, then pin it with "
        f"'opskit hosts trust {spec.name}'",
    )


def key_policy(spec: HostSpec) -> Any:
    """A paramiko policy that applies ``check_key`` to every server key (before auth)."""
    import paramiko

    class KeyPolicy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client, hostname, key):  # noqa: ANN001
            peer = None
            try:
                peer = client.get_transport().sock.getpeername()[0]
            except (AttributeError, OSError, TypeError, IndexError):
                peer = None
            check_key(spec, key, peer if isinstance(peer, str) else None)

    return KeyPolicy()


@functools.lru_cache(maxsize=1)
def _transport_class() -> type:
    """paramiko's Transport, except that a server's debug message is decoded only when
    something logs it. OpenSSH sends two with every key login (the key's options), and paramiko
    cleans each byte of them in a Python loop first: ~5% of a status's client CPU."""
    import logging

    import paramiko

    class Transport(paramiko.Transport):
        def _parse_debug(self, m: Any) -> None:
            if self.logger.isEnabledFor(logging.DEBUG):
                super()._parse_debug(m)

    return Transport


def transport_factory(spec: HostSpec) -> Any:
    """A paramiko Transport factory that offers ``offered_algorithms`` (host keys) and
    ``offered_list`` (ciphers, MACs, key exchanges)."""

    def make(sock: Any, **kwargs: Any) -> Any:
        transport = _transport_class()(sock, **kwargs)
        opts = transport.get_security_options()
        from opskit.hosts.knownhostscmd import with_command

        known = with_command(spec, kh.load_for(spec), kh.lookup_name(spec), "ORDER")
        opts.key_types = offered_algorithms(spec, known, list(opts.key_types))
        for keyword, (_, attr) in ALGORITHM_FIELDS.items():
            setattr(opts, attr, offered_list(spec, keyword, list(getattr(opts, attr))))
        return transport

    return make


def refuse_unknown_policy(spec: HostSpec) -> Any:
    """Kept for callers of the old name: the OpenSSH decision."""
    return key_policy(spec)
