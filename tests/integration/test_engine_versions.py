"""API version negotiation against real engines: Docker 20.10 (API 1.41, this machine's and the
legacy GPU host's) and Docker 26 (API 1.45, the containerd-store GPU host), over real SSH.
Uses the session's GPU-host fixtures (no host of its own); a few seconds."""

from __future__ import annotations

from typing import Any

from opskit.hosts.group import connect


def _expected(server: dict) -> str:
    from docker import constants

    ours = constants.DEFAULT_DOCKER_API_VERSION
    as_tuple = lambda v: tuple(int(p) for p in v.split("."))  # noqa: E731
    return min(server["ApiVersion"], ours, key=as_tuple)


def test_local_engine_negotiates(docker_client: Any) -> None:
    server = docker_client.api.version(api_version=False)
    assert docker_client.api.api_version == _expected(server)
    assert docker_client.info()["ServerVersion"] == server["Version"]


def _check_remote(bed: Any, version_prefix: str) -> None:
    transport = connect(bed.specs()[0])
    try:
        client = transport.docker()
        server = client.api.version(api_version=False)
        assert server["Version"].startswith(version_prefix)
        assert client.api.api_version == _expected(server)
        assert client.info()["ServerVersion"] == server["Version"]  # a versioned request works
    finally:
        transport.close()


def test_legacy_host_docker_20_over_ssh(gpu_hosts: Any) -> None:
    _check_remote(gpu_hosts, "20.10")


def test_containerd_host_docker_26_over_ssh(containerd_host: Any) -> None:
    _check_remote(containerd_host, "26.1")
