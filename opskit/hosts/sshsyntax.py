"""OpenSSH's small grammars, as OpenSSH 9.2 implements them (pure Python, no paramiko).

- ``split_config_line``: readconf.c's keyword split (``strdelim``: one ``=`` or whitespace) and
  misc.c's ``argv_split`` (quotes, backslash escapes, a word starting with ``#`` ends the line).
- ``match_pattern``/``match_pattern_list``/``match_hostname``: match.c (``*``, ``?``, ``!``).
- ``percent_expand``: misc.c (``%x`` tokens and ``${VAR}``; an unknown token is an error).
- ``connection_hash``: ``%C`` (SHA-1 of local host name, host name, port and user).
- ``assemble_algorithms``: kex.c's ``kex_assemble_names`` for ``HostKeyAlgorithms``, ``Ciphers``,
  ``MACs`` and ``KexAlgorithms`` (``+``, ``-``, ``^`` and wildcard patterns against the
  algorithms OpenSSH knows); ``ALGORITHM_LISTS`` holds the last three's names and defaults.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from opskit.errors import ConfigError

WHITESPACE = " \t\r\n"

# ``ssh -Q HostKeyAlgorithms`` of OpenSSH 9.2 (sshkey_alg_list(0, 0, 1)): every name it knows.
ALL_HOSTKEY_ALGORITHMS = (
    "ssh-ed25519", "ssh-ed25519-cert-v01@openssh.com", "sk-ssh-ed25519@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com", "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp521",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com", "webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-dss", "ssh-dss-cert-v01@openssh.com", "ssh-rsa", "ssh-rsa-cert-v01@openssh.com",
    "rsa-sha2-256", "rsa-sha2-256-cert-v01@openssh.com", "rsa-sha2-512",
    "rsa-sha2-512-cert-v01@openssh.com",
)
# KEX_DEFAULT_PK_ALG of OpenSSH 9.2: what ``ssh -G`` prints when HostKeyAlgorithms is unset.
DEFAULT_HOSTKEY_ALGORITHMS = (
    "ssh-ed25519-cert-v01@openssh.com", "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com", "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com",
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    "rsa-sha2-512", "rsa-sha2-256",
)


# ``ssh -Q cipher`` / ``ssh -Q mac`` / ``ssh -Q kex`` of OpenSSH 9.2 (Debian 12's build): every
# name it knows; and KEX_CLIENT_ENCRYPT / KEX_CLIENT_MAC / KEX_CLIENT_KEX, what ``ssh -G``
# prints when Ciphers / MACs / KexAlgorithms are unset.
ALL_CIPHERS = (
    "3des-cbc", "aes128-cbc", "aes192-cbc", "aes256-cbc", "aes128-ctr", "aes192-ctr", "aes256-ctr",
    "aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
)
DEFAULT_CIPHERS = (
    "chacha20-poly1305@openssh.com", "aes128-ctr", "aes192-ctr", "aes256-ctr",
    "aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
)
ALL_MACS = (
    "hmac-sha1", "hmac-sha1-96", "hmac-sha2-256", "hmac-sha2-512", "hmac-md5", "hmac-md5-96",
    "umac-64@openssh.com", "umac-128@openssh.com", "hmac-sha1-etm@openssh.com",
    "hmac-sha1-96-etm@openssh.com", "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com", "hmac-md5-etm@openssh.com", "hmac-md5-96-etm@openssh.com",
    "umac-64-etm@openssh.com", "umac-128-etm@openssh.com",
)
DEFAULT_MACS = (
    "umac-64-etm@openssh.com", "umac-128-etm@openssh.com", "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com", "hmac-sha1-etm@openssh.com", "umac-64@openssh.com",
    "umac-128@openssh.com", "hmac-sha2-256", "hmac-sha2-512", "hmac-sha1",
)
ALL_KEX = (
    "diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1", "diffie-hellman-group14-sha256",
    "diffie-hellman-group16-sha512", "diffie-hellman-group18-sha512",
    "diffie-hellman-group-exchange-sha1", "diffie-hellman-group-exchange-sha256",
    "ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521", "curve25519-sha256",
    "curve25519-sha256@libssh.org", "sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com",
    "mlkem768x25519-sha256",  # OpenSSH 9.9's (its default's first): a newer ssh's config still works
)
DEFAULT_KEX = (
    "sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com", "curve25519-sha256",
    "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256", "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521", "diffie-hellman-group-exchange-sha256", "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512", "diffie-hellman-group14-sha256",
)


@dataclass(frozen=True)
class AlgorithmList:
    """One of ssh_config's algorithm-list keywords: OpenSSH's names, its default, and the
    words ssh uses for a list it refuses (readconf.c)."""

    keyword: str  # as written in ssh_config
    known: tuple[str, ...]
    default: tuple[str, ...]
    bad: str  # "Bad SSH2 cipher spec"
    query: str  # the ``ssh -Q`` word that lists the names

    def valid(self, spec: str) -> bool:
        """ciphers_valid / mac_valid / kex_names_valid on the list after a ``+``/``^``: every
        name known exactly (no patterns), up to the first empty name (where ssh stops)."""
        body = spec[1:] if spec[:1] in "+^" else spec
        for name in body.split(","):
            if not name:
                break
            if name not in self.known:
                return False
        return True

    def assemble(self, spec: str | None) -> list[str]:
        """What ``ssh -G`` prints for this keyword given ``spec`` (None: unset)."""
        return assemble_algorithms(spec, self.default, self.known, self.keyword)


ALGORITHM_LISTS = {
    "ciphers": AlgorithmList("Ciphers", ALL_CIPHERS, DEFAULT_CIPHERS, "Bad SSH2 cipher spec",
                             "cipher"),
    "macs": AlgorithmList("MACs", ALL_MACS, DEFAULT_MACS, "Bad SSH2 MAC spec", "mac"),
    "kexalgorithms": AlgorithmList("KexAlgorithms", ALL_KEX, DEFAULT_KEX,
                                   "Bad SSH2 KexAlgorithms", "kex"),
}


# -- lines ------------------------------------------------------------------------------------
def _strdelim(s: str) -> tuple[str, str | None]:
    """readconf.c ``strdelim``: (first token, rest or None). Splits at whitespace, a quote or
    one ``=`` (with whitespace around it)."""
    idx = next((i for i, c in enumerate(s) if c in WHITESPACE + '"='), None)
    if idx is None:
        return s, None
    if s[idx] == '"':
        s = s[:idx] + s[idx + 1:]
        end = s.find('"', idx)
        if end < 0:
            return s, None  # OpenSSH returns NULL here: the caller sees "no argument"
        rest = s[end + 1:]
        return s[:end], rest.lstrip(WHITESPACE)
    token, rest = s[:idx], s[idx + 1:]
    saw_equals = s[idx] == "="
    rest = rest.lstrip(WHITESPACE)
    if not saw_equals and rest.startswith("="):
        rest = rest[1:].lstrip(WHITESPACE)
    return token, rest


def argv_split(s: str, where: str) -> list[str]:
    """misc.c ``argv_split(s, terminate_on_comment=1)``."""
    args: list[str] = []
    i, n = 0, len(s)
    while i < n:
        if s[i] in " \t":
            i += 1
            continue
        if s[i] == "#":
            break
        quote = ""
        arg: list[str] = []
        while i < n:
            c = s[i]
            if c == "\\" and i + 1 < n and (s[i + 1] in "'\"\\" or (not quote and s[i + 1] == " ")):
                i += 1
                arg.append(s[i])
            elif not quote and c in " \t":
                break
            elif not quote and c in "\"'":
                quote = c
            elif quote and c == quote:
                quote = ""
            else:
                arg.append(c)
            i += 1
        if quote:
            raise ConfigError(f"{where}: invalid quotes", "close the quote on this line")
        args.append("".join(arg))
    return args


def split_config_line(line: str, where: str) -> tuple[str, list[str], str] | None:
    """One config line -> (lowercase keyword, args, the raw argument text); None for blanks
    and comments. ConfigError (naming ``where``) for a keyword without an argument."""
    line = line.rstrip(WHITESPACE + "\f")
    if not line:
        return None
    keyword, rest = _strdelim(line)
    if keyword == "" and rest is not None:
        keyword, rest = _strdelim(rest)
    if not keyword or keyword.startswith("#"):
        return None
    keyword = keyword.lower()
    rest = rest.lstrip(WHITESPACE) if rest is not None else ""
    if not rest:
        raise ConfigError(f'{where}: no argument after keyword "{keyword}"')
    return keyword, argv_split(rest, where), rest


# -- patterns ---------------------------------------------------------------------------------
def match_pattern(s: str, pattern: str) -> bool:
    """match.c ``match_pattern``: ``*`` and ``?``, the whole string, case-sensitive."""
    if "*" not in pattern and "?" not in pattern:
        return s == pattern
    si = pi = 0
    star_p, star_s = -1, 0
    while si < len(s):
        if pi < len(pattern) and (pattern[pi] == "?" or pattern[pi] == s[si]):
            si, pi = si + 1, pi + 1
        elif pi < len(pattern) and pattern[pi] == "*":
            star_p, star_s = pi, si
            pi += 1
        elif star_p >= 0:
            star_s += 1
            si, pi = star_s, star_p + 1
        else:
            return False
    while pi < len(pattern) and pattern[pi] == "*":
        pi += 1
    return pi == len(pattern)


def match_pattern_list(s: str, patterns: str, dolower: bool = False) -> int:
    """match.c: 1 if a positive pattern matches, -1 if a negated one does, else 0."""
    got = 0
    for sub in patterns.split(","):
        negated = sub.startswith("!")
        if negated:
            sub = sub[1:]
        if dolower:
            sub = sub.lower()
        if match_pattern(s, sub):
            if negated:
                return -1
            got = 1
    return got


def match_hostname(host: str, patterns: str) -> int:
    return match_pattern_list(host.lower(), patterns, True)


# -- tokens -----------------------------------------------------------------------------------
def percent_expand(value: str, tokens: dict[str, str], what: str, *, dollar: bool = False) -> str:
    """misc.c ``percent_dollar_expand``: ``%%``, ``%x`` from ``tokens`` and (``dollar``)
    ``${VAR}`` from the environment. Anything else is a ConfigError naming ``what``."""
    out: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if dollar and c == "$" and value[i + 1:i + 2] == "{":
            end = value.find("}", i + 2)
            if end < 0:
                raise ConfigError(f"{what} {value!r}: '${{' without a closing '}}'")
            name = value[i + 2:end]
            if name not in os.environ:
                raise ConfigError(f"{what} {value!r}: environment variable ${{{name}}} has no value")
            out.append(os.environ[name])
            i = end + 1
            continue
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


def connection_hash(local_host: str, host: str, port: int | str, user: str) -> str:
    """``%C``: hex SHA-1 of local host name + host name + port + user (readconf.c)."""
    return hashlib.sha1(f"{local_host}{host}{port}{user}".encode()).hexdigest()  # noqa: S324


# -- algorithm lists --------------------------------------------------------------------------
def _names_cat(a: list[str], b: list[str]) -> list[str]:
    return a + [n for n in b if n and n not in a]


def assemble_algorithms(spec: str | None, default: tuple[str, ...] = DEFAULT_HOSTKEY_ALGORITHMS,
                        known: tuple[str, ...] = ALL_HOSTKEY_ALGORITHMS,
                        keyword: str = "HostKeyAlgorithms") -> list[str]:
    """kex.c ``kex_assemble_names``: ``+list`` appends, ``-list`` removes, ``^list`` puts
    first, else the list replaces the default; patterns are matched against ``known``."""
    if not spec:
        return list(default)
    if spec[0] == "-":
        return [n for n in default if match_pattern_list(n, spec[1:]) != 1]
    if spec[0] == "+":
        names = _names_cat(list(default), spec[1:].split(","))
    elif spec[0] == "^":
        names = _names_cat(spec[1:].split(","), list(default))
    else:
        names = spec.split(",")
    out: list[str] = []
    for pattern in names:
        if pattern.startswith("!"):
            raise ConfigError(f"{keyword} {spec!r}: negated names are not allowed here")
        out = _names_cat(out, [n for n in known if match_pattern_list(n, pattern) == 1])
    if not out:
        raise ConfigError(f"{keyword} {spec!r}: names no algorithm OpenSSH knows")
    return out


def valid_algorithm_names(spec: str) -> bool:
    """sshkey_names_valid2(list, allow_wildcard=1): every name known or a pattern that
    matches a known name."""
    body = spec[1:] if spec[:1] in "+^" else spec
    for name in body.split(","):
        if not name:
            return False
        if any(c in name for c in "*?"):
            if not any(match_pattern(k, name) for k in ALL_HOSTKEY_ALGORITHMS):
                return False
        elif name not in ALL_HOSTKEY_ALGORITHMS:
            return False
    return True
