"""The one place that turns docker-py's exceptions into opskit errors.

docker-py raises ``NotFound``/``ImageNotFound`` (404), ``APIError`` (any other refusal, with
the engine's ``explanation``), ``DockerException`` (no engine, a bad client setting) and lets
``requests``' connection errors through. Callers say what they were doing; this module says
what it means:

- :func:`or_none` runs a lookup and gives None for "not there" (a 404), nothing else hidden;
- :func:`docker_error` maps an exception to an :class:`~opskit.errors.OpskitError`: the
  engine unreachable -> :class:`DockerUnavailable` (with how to start it), a refusal -> the
  caller's error class with the engine's own explanation, "not found" -> ``not_found``;
- the CLI's error boundary maps any docker-py exception that escaped a call site here too.

Imports docker only when an exception is being mapped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from opskit.errors import DockerUnavailable, OpskitError

T = TypeVar("T")

START_HINT = (
    "start the engine (e.g. 'sudo systemctl start docker', or 'scripts/start-dockerd.sh' "
    "from the opskit repository) and check that this user may use /var/run/docker.sock"
)


def is_not_found(exc: BaseException) -> bool:
    from docker.errors import NotFound  # ImageNotFound is a NotFound

    return isinstance(exc, NotFound)


def is_conflict(exc: BaseException) -> bool:
    from docker.errors import APIError

    return isinstance(exc, APIError) and exc.status_code == 409


def is_docker_exception(exc: BaseException) -> bool:
    """An exception of docker-py, or of the HTTP layer under it."""
    module = type(exc).__module__ or ""
    return module.startswith(("docker.", "requests.", "urllib3."))


def explanation(exc: BaseException) -> str:
    """The engine's own words for a refusal (``explanation``), else the exception's text."""
    text = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
    return str(text).strip()


def or_none(lookup: Callable[[], T]) -> T | None:
    """``lookup()``, or None when the engine says the thing is not there (404)."""
    try:
        return lookup()
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def docker_error(
    exc: BaseException, where: str, *, error: type[OpskitError] = OpskitError,
    hint: str | None = None, not_found: OpskitError | None = None,
) -> OpskitError:
    """The opskit error for docker-py exception ``exc`` raised while ``where`` (a sentence that
    names the host and what was done: ``"gpu1: the engine would not start run r1"``)."""
    from docker.errors import APIError, DockerException
    from requests.exceptions import RequestException

    if not_found is not None and is_not_found(exc):
        return not_found
    if isinstance(exc, APIError):  # the engine answered: a refusal, in its words
        return error(f"{where}: {explanation(exc)}", hint)
    if isinstance(exc, (DockerException, RequestException, OSError)):  # no engine to ask
        return DockerUnavailable(f"{where}: no usable Docker engine ({explanation(exc)})",
                                 hint or START_HINT)
    return error(f"{where}: {type(exc).__name__}: {explanation(exc)}", hint)
