"""Fixtures for a real Docker engine and the offline base image.

Under ``CI=true`` a test that needs an engine and finds none FAILS instead of skipping, so
integration tests can never be silently skipped in CI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

# testcontainers on these machines: no Ryuk (it would be pulled), ports on 127.0.0.1.
TESTCONTAINERS_ENV = {
    "TESTCONTAINERS_RYUK_DISABLED": "true",
    "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
    "TC_HOST": "127.0.0.1",
}


def configure_testcontainers() -> None:
    for key, value in TESTCONTAINERS_ENV.items():
        os.environ.setdefault(key, value)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_unless_ci(msg: str) -> None:
    """Skip a test that cannot run here, but fail under ``CI=true`` (CI installs everything)."""
    if in_ci():
        pytest.fail(f"{msg} (CI=true: integration tests must not be skipped)", pytrace=False)
    pytest.skip(msg)


def require_tool(name: str, package: str) -> str:
    """The path of command ``name``, or skip (fail under CI=true) naming the Debian package."""
    import shutil

    path = shutil.which(name)
    if path is None:
        skip_unless_ci(f"needs {name!r} (apt-get install {package})")
    return path


def require_engine() -> Any:
    """A docker-py client for the local engine, or skip (fail under CI=true)."""
    from opskit.errors import DockerUnavailable
    from opskit.hosts.engine import local_docker_client

    try:
        return local_docker_client()
    except DockerUnavailable as exc:
        skip_unless_ci(f"no Docker engine: {exc.message}")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    client = require_engine()
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client: Any) -> str:
    """The offline base image tag (made once with debootstrap if missing; ~40 s)."""
    from opskit.images.base import BaseRequest, bootstrap, default_tag

    tag = os.environ.get("OPSKIT_TEST_BASE", default_tag())
    bootstrap(docker_client, BaseRequest(tag=tag))
    return tag
