"""Which unix socket the ``docker`` CLI of the login user on a host talks to, asked in one
cheap command (a shell's ``printf``, no docker process), so that opskit may ask the same engine
through its own SSH connection (:mod:`opskit.hosts.streamlocal`).

The docker CLI (20.10-29, ``cli/command/cli.go`` ``resolveContextName``) picks its engine so:
``DOCKER_HOST`` when set (the default context with that host); else the context named by
``DOCKER_CONTEXT``; else ``currentContext`` of ``${DOCKER_CONFIG:-~/.docker}/config.json``;
the ``default`` context is ``unix:///var/run/docker.sock``. Only the cases that end in a unix
socket known without reading a context's metadata are answered with a path: any other
context, a non-unix ``DOCKER_HOST``, a config.json that does not parse, is answered with the
reason, and the caller asks the CLI itself. ``tests/unit/test_dockerendpoint.py`` compares
these answers with the docker CLI's own (``docker context inspect``) on a corpus.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DEFAULT_SOCKET = "/var/run/docker.sock"
_MARK = "--opskit-docker-config--"
# Two lines (DOCKER_HOST, DOCKER_CONTEXT), a mark, then config.json when there is one. The
# login shell's environment (its rc files included) is the one the docker CLI would get.
PROBE = ('printf "%s\\n" "${DOCKER_HOST-}" "${DOCKER_CONTEXT-}" ' + _MARK + '; '
         'f="${DOCKER_CONFIG:-$HOME/.docker}/config.json"; '
         'if [ -f "$f" ]; then cat -- "$f"; fi; exit 0')
PROBE_ARGV = ("sh", "-c", PROBE)


@dataclass(frozen=True)
class Endpoint:
    """The CLI's engine socket (``socket``), or why it is not known here (``why_not``)."""

    socket: str | None
    why_not: str = ""


def resolve(docker_host: str, docker_context: str, config_text: str | None) -> Endpoint:
    """The docker CLI's choice of engine, from its environment and config.json's text."""
    if docker_host:
        if docker_host.startswith("unix://"):
            path = docker_host[len("unix://"):] or DEFAULT_SOCKET
            if path.startswith("/"):
                return Endpoint(path)
        return Endpoint(None, f"DOCKER_HOST={docker_host} on the host is not a unix socket path")
    if docker_context:
        if docker_context == "default":
            return Endpoint(DEFAULT_SOCKET)
        return Endpoint(None, f"DOCKER_CONTEXT={docker_context} on the host names a docker context")
    if config_text is not None and config_text.strip():
        try:
            config = json.loads(config_text)
        except ValueError:
            config = None
        if not isinstance(config, dict):
            return Endpoint(None, "the host's docker config.json is not a JSON object")
        current = config.get("currentContext")
        if current not in (None, "", "default"):
            return Endpoint(None, f"the host's docker CLI uses context {current!r} (docker context use)")
    return Endpoint(DEFAULT_SOCKET)


def parse_probe(stdout: str) -> Endpoint:
    """The endpoint from :data:`PROBE`'s output."""
    head, sep, config = stdout.partition(_MARK + "\n")
    lines = head.split("\n")
    if not sep or len(lines) != 3:  # no mark, or a value with a newline in it
        return Endpoint(None, "the host's shell gave an answer to the docker endpoint probe that "
                              "does not parse")
    return resolve(lines[0], lines[1], config if config.strip() else None)


def cli_endpoint(transport: Any) -> Endpoint:
    """The unix socket of the docker CLI on ``transport``'s host (one short command)."""
    res = transport.run(PROBE_ARGV)
    if not res.ok:
        return Endpoint(None, f"the docker endpoint probe exited with {res.exit_code}")
    return parse_probe(res.stdout)
