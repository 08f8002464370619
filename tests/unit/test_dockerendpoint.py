"""Which socket the host's docker CLI talks to, judged from the probe's output, against the
docker CLI itself (``docker context inspect``) on a corpus of environments and config files.

Each case runs the real probe script with ``sh`` here (the same text the host's shell runs),
parses its output, and runs the local docker CLI with the same environment and DOCKER_CONFIG.
opskit may answer "not known here" (the caller then asks the CLI itself) but never a socket
other than the CLI's.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from opskit.hosts.dockerendpoint import (
    DEFAULT_SOCKET,
    PROBE_ARGV,
    Endpoint,
    cli_endpoint,
    parse_probe,
    resolve,
)
from opskit.testing.engine import require_tool
from opskit.testing.fake import FakeReply, FakeTransport

OTHER = "/tmp/opskit-other-engine.sock"  # the socket of the context "other" (never dialled)

# (environment, config.json text or None, the socket opskit names: a path, or None = ask the CLI)
CORPUS = [
    ({}, None, DEFAULT_SOCKET),
    ({"DOCKER_HOST": ""}, None, DEFAULT_SOCKET),  # set but empty: as unset
    ({"DOCKER_HOST": "unix:///tmp/x.sock"}, None, "/tmp/x.sock"),
    ({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}, '{"currentContext": "other"}', "/run/user/1000/docker.sock"),
    ({"DOCKER_HOST": "unix://"}, None, DEFAULT_SOCKET),
    ({"DOCKER_HOST": "unix://rel.sock"}, None, None),  # a relative path: where sshd runs is not the CLI's cwd
    ({"DOCKER_HOST": "tcp://127.0.0.1:2375"}, None, None),
    ({"DOCKER_HOST": "ssh://someone@elsewhere"}, None, None),
    ({"DOCKER_HOST": "relative.sock"}, None, None),  # the CLI reads it as tcp://relative.sock:2375
    ({"DOCKER_HOST": "fd://"}, None, None),
    ({"DOCKER_HOST": "unix:///a b/d.sock", "DOCKER_CONTEXT": "other"}, None, "/a b/d.sock"),  # DOCKER_HOST wins
    ({"DOCKER_CONTEXT": "default"}, None, DEFAULT_SOCKET),
    ({"DOCKER_CONTEXT": "other"}, None, None),
    ({"DOCKER_CONTEXT": "other"}, '{"currentContext": "default"}', None),
    ({"DOCKER_CONTEXT": "default"}, '{"currentContext": "other"}', DEFAULT_SOCKET),
    ({}, '{"currentContext": "other"}', None),
    ({}, '{"currentContext": "default"}', DEFAULT_SOCKET),
    ({}, '{"currentContext": ""}', DEFAULT_SOCKET),
    ({}, '{"auths": {"registry.example": {"auth": "eDp5"}}}', DEFAULT_SOCKET),
    ({}, "", DEFAULT_SOCKET),  # an empty file
    ({}, "{}", DEFAULT_SOCKET),
    ({}, "not json", None),  # the CLI warns and uses the default; opskit asks the CLI
    ({}, '["a list"]', None),
    ({}, '{\n  "currentContext": "other",\n  "psFormat": "table {{.ID}}"\n}\n', None),
]


def _probe_here(env: dict[str, str], home: Path) -> Endpoint:
    """The probe script run by sh here with ``env``, as the host's shell runs it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    out = subprocess.run(list(PROBE_ARGV), env={**clean, "HOME": str(home), **env}, capture_output=True,
                         text=True, check=True, timeout=30)
    return parse_probe(out.stdout)


@pytest.fixture(scope="module")
def docker_cli() -> str:
    return require_tool("docker", "docker.io")


@pytest.mark.parametrize(("env", "config", "ours"), CORPUS)
def test_the_socket_named_is_the_docker_clis(docker_cli, tmp_path, env, config, ours) -> None:
    home = tmp_path / "home"
    cfg_dir = home / ".docker"
    cfg_dir.mkdir(parents=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    cli_env = {**base, "HOME": str(home), "DOCKER_CONFIG": str(cfg_dir)}
    subprocess.run([docker_cli, "context", "create", "other", "--docker", f"host=unix://{OTHER}"],
                   env=cli_env, capture_output=True, check=True, timeout=30)
    if config is not None:
        (cfg_dir / "config.json").write_text(config)
    endpoint = _probe_here(env, home)
    assert endpoint.socket == ours, endpoint
    assert (endpoint.why_not == "") == (ours is not None)
    cli = subprocess.run([docker_cli, "context", "inspect", "--format", "{{.Endpoints.docker.Host}}"],
                         env={**cli_env, **env}, capture_output=True, text=True, timeout=30)
    assert cli.returncode == 0, cli.stderr
    if ours is not None:
        assert cli.stdout.strip() == f"unix://{ours}", (env, config, cli.stdout)


def test_docker_config_moves_the_config_file(tmp_path) -> None:
    elsewhere = tmp_path / "cfg"
    elsewhere.mkdir()
    (elsewhere / "config.json").write_text(json.dumps({"currentContext": "other"}))
    assert _probe_here({"DOCKER_CONFIG": str(elsewhere)}, tmp_path).socket is None
    assert _probe_here({}, tmp_path).socket == DEFAULT_SOCKET  # ~/.docker has none


@pytest.mark.parametrize(("stdout", "why"), [
    ("", "does not parse"),
    ("unix:///a\n\n", "does not parse"),  # no mark: a shell that is not sh
    ("unix:///a\nb\nc\n--opskit-docker-config--\n", "does not parse"),  # a value with a newline
])
def test_answers_that_do_not_parse_are_refused_with_the_reason(stdout, why) -> None:
    endpoint = parse_probe(stdout)
    assert endpoint.socket is None and why in endpoint.why_not


def test_the_reasons_name_what_the_user_set() -> None:
    assert "DOCKER_HOST=tcp://h:2375" in resolve("tcp://h:2375", "", None).why_not
    assert "DOCKER_CONTEXT=prod" in resolve("", "prod", None).why_not
    assert "'prod' (docker context use)" in resolve("", "", '{"currentContext": "prod"}').why_not


def test_the_probe_is_one_command_on_the_host() -> None:
    host = FakeTransport("h", {PROBE_ARGV: "unix:///x.sock\n\n--opskit-docker-config--\n"})
    assert cli_endpoint(host) == Endpoint("/x.sock")
    host = FakeTransport("h", {PROBE_ARGV: FakeReply(stderr="sh: not found", exit_code=127)})
    assert cli_endpoint(host).why_not == "the docker endpoint probe exited with 127"
    assert len(host.calls) == 1
