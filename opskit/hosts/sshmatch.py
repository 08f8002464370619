"""``Match`` lines as readconf.c's match_cfg_line (OpenSSH 9.2) evaluates them.

Criteria are read left to right and stop mattering after the first that fails: an ``exec``
after a failed criterion is never run. When it must be run, it runs as ssh runs it: through
``$SHELL -c`` (``/bin/sh`` without one), ``%`` tokens expanded, stdin and stdout on
/dev/null; exit status 0 is a match. A command that cannot be run is an error for this host
only, naming file and line.
"""

from __future__ import annotations

import os
import subprocess

from opskit.errors import ConfigError
from opskit.hosts.sshsyntax import _strdelim, match_hostname, match_pattern_list, percent_expand

EXEC_TIMEOUT = 60.0
LATER_CRITERIA = frozenset({"localnetwork", "version", "command", "sessiontype"})


def _words(text: str) -> list[str]:
    """The criteria words as strdelim cuts them (double quotes, ``=``); ``#`` ends them."""
    out: list[str] = []
    rest: str | None = text
    while rest:
        word, rest = _strdelim(rest)
        if word == "" and rest is None:
            break
        if word.startswith("#"):
            break
        out.append(word)
    return out


def match_line(ctx, line) -> bool:  # noqa: ANN001 - sshconfig._Context, sshkeywords.Line
    opts = ctx.opts
    words = _words(line.rest)
    host = _match_host(ctx)
    result, attributes, i = True, 0, 0
    while i < len(words):
        attrib = words[i]
        i += 1
        negate = attrib.startswith("!")
        name = (attrib[1:] if negate else attrib).lower()
        if name == "all":
            if attributes > 1 or i < len(words):
                raise ConfigError(f"{line.where}: '{attrib}' cannot be combined with other "
                                  "Match attributes")
            return result and not negate
        attributes += 1
        if name in ("canonical", "final"):
            if name == "final":
                opts.want_final = True
            if ctx.final == negate:
                result = False
            continue
        if i >= len(words):
            raise ConfigError(f"{line.where}: missing Match criteria for {attrib}")
        arg = words[i]
        i += 1
        ok = _criterion(ctx, attrib, name, arg, host, result, line)
        if ok is None:
            continue  # an earlier criterion failed: ssh does not evaluate this one
        if ok == negate:
            result = False
    if attributes == 0:
        raise ConfigError(f"{line.where}: one or more attributes required for Match")
    if result and any(w.lower().lstrip("!") != "all" for w in words):
        opts.matched_specific = True
    return result


def _criterion(ctx, attrib: str, name: str, arg: str, host: str, result: bool,  # noqa: ANN001
               line) -> bool | None:  # noqa: ANN001
    """One criterion with an argument: True/False, or None when it is skipped."""
    from opskit.hosts.sshconfig import local_user

    values = ctx.opts.values
    if name == "host":
        return match_hostname(host, arg) == 1
    if name == "originalhost":
        return match_hostname(ctx.original, arg) == 1
    if name == "user":
        return match_pattern_list(values.get("user") or local_user(), arg) == 1
    if name == "localuser":
        return match_pattern_list(local_user(), arg) == 1
    if name == "tagged":  # OpenSSH 9.4+: the Tag of this host
        return match_pattern_list(values.get("tag", ""), arg) == 1
    if name in LATER_CRITERIA:
        if not result:
            return None
        raise ConfigError(
            f"{line.where}: Match {name} (OpenSSH newer than 9.2) cannot be evaluated by "
            f"opskit for {ctx.original!r}",
            "give this host its settings in a Host block (other hosts are not affected)",
        )
    if name == "exec":
        return None if not result else _run_exec(ctx, host, arg, line)
    raise ConfigError(f"{line.where}: unsupported Match attribute {attrib}",
                      "OpenSSH 9.2 knows all, canonical, final, exec, host, "
                      "originalhost, user and localuser")


def _match_host(ctx) -> str:  # noqa: ANN001
    values = ctx.opts.values
    if ctx.final:
        return values["hostname"]
    if "hostname" in values:
        return percent_expand(values["hostname"], {"h": ctx.original}, "HostName")
    return ctx.original


def _run_exec(ctx, host: str, command: str, line) -> bool:  # noqa: ANN001
    from opskit.hosts.sshconfig import client_tokens, local_user

    values = ctx.opts.values
    user = values.get("user") or local_user()
    port = int(values.get("port", 22))
    tokens = client_tokens(ctx.original, host, port, user, values.get("hostkeyalias") or host)
    cmd = percent_expand(command, tokens, f"{line.where}: Match exec")
    shell = os.environ.get("SHELL") or "/bin/sh"
    try:
        proc = subprocess.run([shell, "-c", cmd], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=EXEC_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"{line.where}: Match exec {cmd!r} did not finish within "
                          f"{EXEC_TIMEOUT:g}s", "this host cannot be resolved until it does") from exc
    except OSError as exc:
        raise ConfigError(f"{line.where}: Match exec {cmd!r}: cannot run {shell}: "
                          f"{exc.strerror or exc}") from exc
    return proc.returncode == 0
