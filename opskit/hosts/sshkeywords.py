"""The keywords of OpenSSH 9.2's client config: which exist, how each is checked and kept.

``check`` validates a line as readconf.c does whether or not its block applies (a bad line is
an error for every host, as with ssh); ``apply`` keeps the value when the block applies.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from opskit.errors import ConfigError
from opskit.hosts.sshsyntax import ALGORITHM_LISTS, match_pattern_list, valid_algorithm_names

IGNORED = frozenset({
    "afstokenpassing", "cipher", "compressionlevel", "fallbacktorsh", "globalknownhostsfile2",
    "kerberosauthentication", "kerberostgtpassing", "protocol", "rhostsauthentication",
    "rhostsrsaauthentication", "rsaauthentication", "useprivilegedport", "userknownhostsfile2",
    "useroaming", "usersh",
})
OTHER_KNOWN = frozenset({
    "addkeystoagent", "addressfamily", "batchmode", "bindaddress", "bindinterface",
    "casignaturealgorithms", "certificatefile",
    "challengeresponseauthentication", "clearallforwardings", "compression",
    "connectionattempts", "controlmaster", "controlpath", "controlpersist", "dsaauthentication",
    "dynamicforward", "enableescapecommandline", "enablesshkeysign", "escapechar",
    "exitonforwardfailure", "fingerprinthash", "forkafterauthentication", "forwardagent",
    "forwardx11", "forwardx11timeout", "forwardx11trusted", "gatewayports",
    "gssapiauthentication", "gssapidelegatecredentials",
    "hostbasedacceptedalgorithms", "hostbasedauthentication", "hostbasedkeytypes",
    "identityagent", "ipqos", "kbdinteractiveauthentication", "kbdinteractivedevices",
    "keepalive", "localcommand", "localforward",
    "loglevel", "logverbose", "nohostauthenticationforlocalhost",
    "numberofpasswordprompts", "passwordauthentication", "permitlocalcommand",
    "permitremoteopen", "pkcs11provider", "preferredauthentications", "proxyusefdpass",
    "pubkeyacceptedalgorithms", "pubkeyacceptedkeytypes", "pubkeyauthentication", "rekeylimit",
    "remotecommand", "remoteforward", "requesttty", "requiredrsasize", "securitykeyprovider",
    "sendenv", "serveralivecountmax", "sessiontype", "setenv", "skeyauthentication",
    "smartcarddevice", "stdinnull", "streamlocalbindmask", "streamlocalbindunlink",
    "syslogfacility", "tcpkeepalive", "tisauthentication", "tunnel", "tunneldevice",
    "updatehostkeys", "verifyhostkeydns", "visualhostkey", "xauthlocation",
})
# Keywords of OpenSSH releases after 9.2 (a user's newer ssh accepts them): kept or ignored,
# not refused, so that a config written for a newer ssh still works.
LATER_IGNORED = frozenset({"channeltimeout", "obscurekeystroketiming", "versionaddendum",
                           "warnweakcrypto"})
# One argument, first value wins.
STRINGS = frozenset({"user", "hostname", "hostkeyalias", "ignoreunknown", "revokedhostkeys", "tag"})
FLAGS = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}
MULTISTATE = {
    "checkhostip": FLAGS,
    "identitiesonly": FLAGS,
    "canonicalizefallbacklocal": FLAGS,
    "hashknownhosts": FLAGS,
    "refuseconnection": FLAGS,
    "stricthostkeychecking": {**FLAGS, "ask": "ask", "off": "no", "accept-new": "accept-new"},
    "canonicalizehostname": {**FLAGS, "always": "always"},
}
TIMES = frozenset({"connecttimeout", "serveraliveinterval"})
LISTS = frozenset({"userknownhostsfile", "globalknownhostsfile", "canonicaldomains",
                   "canonicalizepermittedcnames"})
RAW = frozenset({"proxycommand", "proxyjump", "knownhostscommand"})  # the rest of the line, as written
STRUCTURE = frozenset({"host", "match", "include"})
HANDLED = (STRINGS | set(MULTISTATE) | TIMES | LISTS | RAW | STRUCTURE
           | {"port", "identityfile", "identityfile2", "hostkeyalgorithms", "canonicalizemaxdots"}
           | set(ALGORITHM_LISTS))
KNOWN = HANDLED | OTHER_KNOWN | IGNORED | LATER_IGNORED
_TIME_RE = re.compile(r"^(\d+[sSmMhHdDwW]?)+$")


@dataclass(frozen=True)
class Line:
    path: str
    lineno: int
    keyword: str
    args: list
    rest: str  # the argument text as written (ProxyCommand, ProxyJump, Match)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.lineno}"


def flag(value: str) -> bool:
    return FLAGS.get(value.lower()) == "yes"


def seconds(value: str | None) -> float | None:
    """convtime: ``90``, ``1m30s``; None when unset or ``none``."""
    if not value or not _TIME_RE.match(value):
        return None
    units = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return float(sum(int(n) * units[u.lower()] for n, u in re.findall(r"(\d+)([a-zA-Z]?)", value)))


def port_number(text: str) -> int:
    """misc.c a2port: 0-65535 or a service name from /etc/services; -1 if neither."""
    if text.isdigit():
        return int(text) if int(text) <= 65535 else -1
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        return -1


def _one(line: Line) -> str:
    if not line.args or line.args[0] == "":
        raise ConfigError(f"{line.where}: {line.keyword}: missing argument")
    if len(line.args) > 1:
        raise ConfigError(f"{line.where}: keyword {line.keyword} extra arguments at end of line")
    return line.args[0]


def check(line: Line) -> Line:
    """Errors ssh reports for this line wherever it stands (file and line named)."""
    k = line.keyword
    if k in STRINGS or k in TIMES or k in ALGORITHM_LISTS or k in (
            "identityfile", "identityfile2", "port", "hostkeyalgorithms", "canonicalizemaxdots"):
        value = _one(line)
        kind = ALGORITHM_LISTS.get(k)
        if kind is not None and value[0] != "-" and not kind.valid(value):
            raise ConfigError(f"{line.where}: {kind.bad} {value!r}",
                              f"see 'ssh -Q {kind.query}' for the names OpenSSH knows")
        if k == "port" and port_number(value) <= 0:
            raise ConfigError(f"{line.where}: bad Port {value!r}", "a number 1-65535")
        if k == "hostkeyalgorithms" and value[0] != "-" and not valid_algorithm_names(value):
            raise ConfigError(f"{line.where}: bad key types {value!r}",
                              "see 'ssh -Q HostKeyAlgorithms' for the names OpenSSH knows")
        if k in TIMES and seconds(value) is None and value.lower() != "none":
            raise ConfigError(f"{line.where}: {k}: invalid time value {value!r}")
        if k == "canonicalizemaxdots" and not value.isdigit():
            raise ConfigError(f"{line.where}: {k}: integer value {value!r} is invalid")
    elif k in MULTISTATE:
        value = _one(line)
        if value.lower() not in MULTISTATE[k]:
            raise ConfigError(f"{line.where}: unsupported option \"{value}\" for {k}",
                              f"one of: {', '.join(MULTISTATE[k])}")
    elif k in LISTS or k in ("host", "include"):
        if any(a == "" for a in line.args):
            raise ConfigError(f"{line.where}: keyword {k} empty argument")
        nones = [a for a in line.args if a.lower() == "none"]
        if k in LISTS and nones and len(line.args) > 1:
            raise ConfigError(f"{line.where}: keyword {k} \"none\" argument must appear alone")
        if k == "canonicalizepermittedcnames":
            for a in line.args:
                if a.lower() != "none" and a != "*" and not a.partition(":")[2]:
                    raise ConfigError(f'{line.where}: invalid permitted CNAME "{a}"',
                                      "write source-patterns:target-patterns, '*' or none")
    elif k == "proxyjump":
        from opskit.hosts.sshjump import check_jump_spec

        check_jump_spec(_raw(line), line.where)
    return line


def _raw(line: Line) -> str:
    return line.rest.lstrip(" \t=")


def apply(opts, line: Line, active: bool) -> None:  # noqa: ANN001 - sshconfig.SSHOptions
    """Keep the line's value in ``opts`` (first value wins) when its block applies."""
    k = line.keyword
    if k not in KNOWN:
        ignored = opts.values.get("ignoreunknown")
        if ignored and match_pattern_list(k, ignored, True) == 1:
            return
        raise ConfigError(f"{line.where}: bad configuration option: {k}",
                          "ssh refuses this line too; fix or remove it (or list it in IgnoreUnknown)")
    if not active or k in IGNORED or k in OTHER_KNOWN or k in LATER_IGNORED:
        return
    where = line.where
    if k in ("identityfile", "identityfile2"):
        if line.args[0] not in opts.identityfile:
            opts.identityfile.append(line.args[0])
            opts.where.setdefault("identityfile", where)
    elif k in MULTISTATE:
        opts.set(k, MULTISTATE[k][line.args[0].lower()], where)
    elif k in LISTS:
        opts.set_list(k, list(line.args), where)
    elif k == "proxycommand":
        if "proxyjump" not in opts.values:
            opts.set(k, _raw(line), where)
    elif k == "knownhostscommand":
        opts.set(k, _raw(line), where)
    elif k == "proxyjump":
        if "proxyjump" not in opts.values and "proxycommand" not in opts.values:
            from opskit.hosts.sshjump import strip_jump_comment

            opts.set(k, strip_jump_comment(_raw(line)), where)
    elif k == "port":
        opts.set(k, str(port_number(line.args[0])), where)
    elif k in STRINGS or k in TIMES or k in ALGORITHM_LISTS or k in ("hostkeyalgorithms",
                                                                     "canonicalizemaxdots"):
        opts.set(k, line.args[0], where)
