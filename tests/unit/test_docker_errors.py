"""opskit.hosts.dockererrors: docker-py's own exception objects (built as docker-py builds
them from an HTTP response) become opskit errors in one place."""

from __future__ import annotations

import json

import pytest
import requests
from docker import errors as de

from opskit.errors import BuildError, DockerUnavailable, JobError, OpskitError, UsageError
from opskit.hosts import dockererrors as dx


def api_error(status: int, message: str) -> de.APIError:
    """What docker-py raises for an engine's HTTP ``status`` with JSON ``{"message": ...}``."""
    response = requests.Response()
    response.status_code = status
    response.url = "http+docker://localhost/v1.41/x"
    response.reason = "reason"
    response._content = json.dumps({"message": message}).encode()
    try:
        de.create_api_error_from_http_exception(requests.exceptions.HTTPError(response=response))
    except de.APIError as exc:
        return exc
    raise AssertionError("docker-py raised nothing")


def test_not_found_is_none_and_nothing_else_is_hidden() -> None:
    missing = api_error(404, "No such container: opskit-run-x")
    assert isinstance(missing, de.NotFound) and dx.is_not_found(missing)

    def lookup():
        raise missing

    assert dx.or_none(lookup) is None
    assert dx.or_none(lambda: 42) == 42
    refused = api_error(500, "driver failed")

    def broken():
        raise refused

    with pytest.raises(de.APIError):
        dx.or_none(broken)


def test_refusal_keeps_the_engines_words_and_the_callers_class() -> None:
    exc = api_error(500, 'could not select device driver "nvidia"')
    err = dx.docker_error(exc, "gpu1: the engine would not start run r1", error=JobError,
                          hint="check the NVIDIA runtime")
    assert isinstance(err, JobError)
    assert err.message == 'gpu1: the engine would not start run r1: could not select device driver "nvidia"'
    assert err.hint == "check the NVIDIA runtime"
    assert dx.is_conflict(api_error(409, "Conflict. The container name is already in use"))
    err = dx.docker_error(de.APIError("pull access denied"), "base image x", error=UsageError)
    assert isinstance(err, UsageError) and err.message == "base image x: pull access denied"


def test_no_engine_is_docker_unavailable_with_how_to_start_it() -> None:
    exc = de.DockerException("Error while fetching server API version: ('Connection aborted.', "
                             "FileNotFoundError(2, 'No such file or directory'))")
    err = dx.docker_error(exc, "localhost", error=BuildError)
    assert isinstance(err, DockerUnavailable) and err.message.startswith("localhost: no usable Docker engine (")
    assert "systemctl start docker" in err.hint
    err = dx.docker_error(requests.exceptions.ConnectionError("refused"), "gpu1")
    assert isinstance(err, DockerUnavailable)


def test_not_found_mapping_and_the_cli_boundary() -> None:
    from opskit.cli.errors import known_error

    missing = api_error(404, "No such image: foo:bar")
    wanted = UsageError("no local image 'foo:bar'")
    assert dx.docker_error(missing, "x", not_found=wanted) is wanted
    mapped = known_error(missing)  # escaped every call site: still an opskit error, one line
    assert isinstance(mapped, OpskitError) and mapped.message == "the Docker engine: No such image: foo:bar"
    assert known_error(ValueError("x")).__class__ is ValueError
