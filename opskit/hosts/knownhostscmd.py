"""``KnownHostsCommand``: more known_hosts lines from a command, run as ssh 9.2 runs it
(sshconnect.c load_hostkeys_command): the command line is split like a config line (no
shell), the first word must be an absolute path, the other words get the ``%`` tokens (``%H``
the name looked up, ``%I`` HOSTNAME/ADDRESS/ORDER, ``%t`` key type, ``%f`` fingerprint, ``%K``
the key in base64, and the usual ones), ``${VAR}`` too. Its output is read as a known_hosts
file; a command that exits non-zero is fatal for ssh, so the host is refused.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from opskit.errors import HostKeyError
from opskit.hosts import knownhosts as kh
from opskit.hosts.spec import HostSpec

TIMEOUT = 60.0


def command_entries(spec: HostSpec, name: str, invocation: str, key: Any = None) -> kh.KnownHosts:
    """The lines the command prints (an empty KnownHosts when no command is set)."""
    from opskit.hosts.sshconfig import client_tokens
    from opskit.hosts.sshsyntax import argv_split, percent_expand

    out = kh.KnownHosts()
    template = spec.known_hosts_command
    if not template:
        return out
    where = spec.sources.get("known_hosts_command", "the ssh config")
    argv = argv_split(template, f"KnownHostsCommand ({where})")
    if not argv or not os.path.isabs(argv[0]):
        out.skipped.append(f"KnownHostsCommand ({where}): {argv[:1]} is not an absolute path; "
                           "not run (ssh does not run it either)")
        return out
    tokens = client_tokens(spec.name, spec.hostname, spec.port, spec.user or "", spec.hostkey_alias)
    tokens.update({"H": name, "I": invocation,
                   "t": key.get_name() if key is not None else "NONE",
                   "f": kh.fingerprint(key) if key is not None else "NONE",
                   "K": key.get_base64() if key is not None else "NONE"})
    argv = argv[:1] + [percent_expand(a, tokens, "KnownHostsCommand", dollar=True) for a in argv[1:]]
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostKeyError(spec.name, f"KnownHostsCommand {argv[0]} ({where}) failed: {exc}",
                           "fix the command; ssh refuses the host too") from exc
    if proc.returncode != 0:
        raise HostKeyError(spec.name, f"KnownHostsCommand {' '.join(argv)} ({where}) exited with "
                           f"{proc.returncode}", "fix the command; ssh refuses the host too")
    out.add_lines(proc.stdout, f"KnownHostsCommand-{invocation}")
    return out


def with_command(spec: HostSpec, known: kh.KnownHosts, name: str, invocation: str,
                 key: Any = None) -> kh.KnownHosts:
    """The files' lines plus the command's (a new object: the shared cache stays as read)."""
    extra = command_entries(spec, name, invocation, key)
    if not extra.entries and not extra.skipped:
        return known
    return kh.KnownHosts(known.entries + extra.entries, known.skipped + extra.skipped)
