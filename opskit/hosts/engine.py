"""docker-py clients: the local engine, or a remote engine through our own SSH connection.

**API versions.** Every client asks the engine's unversioned ``/version`` first and then speaks
the highest API version both sides know (:func:`negotiate_api_version`, as the docker CLI does):
never above docker-py's own (``DEFAULT_DOCKER_API_VERSION``), never below the engine's
``MinAPIVersion`` (Docker 29 refuses anything below 1.44), never below docker-py's minimum.
An engine outside that range is a clear :class:`DockerUnavailable` naming both ranges.

**docker-py internals.** A remote engine is reached with ``docker system dial-stdio`` on an exec
channel of the host's paramiko connection, so it obeys the same rules as every other remote
command (host keys checked, the same timeouts). docker-py has no public way to hand it a
paramiko client, so :func:`ssh_docker_client` leans on private parts of docker-py
(``SSHHTTPAdapter``'s fields, ``SSHConnectionPool`` and its ``_new_conn``/``ssh_transport``,
``SSHConnection``, ``APIClient._version`` and
``_custom_adapter``). They are used **only in this module**; the docker-py range they were
tested with is pinned in pyproject.toml (:data:`TESTED_DOCKER_PY`), and
``tests/unit/test_engine_internals.py`` fails loudly when one of them changes.
docker-py is imported only here, lazily.
"""

from __future__ import annotations

from typing import Any

from opskit.errors import DockerUnavailable
from opskit.hosts.dockererrors import START_HINT, docker_error

# docker-py releases whose private parts ssh_docker_client was tested with (pyproject.toml).
TESTED_DOCKER_PY = (">=7.1", "<7.3")
# Used for the one unversioned /version request before the version is negotiated.
_PLACEHOLDER_VERSION = "1.24"


def _vtuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def negotiate_api_version(server: dict, client_max: str, client_min: str, host: str) -> str:
    """The API version to speak with an engine whose ``/version`` answer is ``server``."""
    server_max = server.get("ApiVersion")
    if not server_max:
        raise DockerUnavailable(f"{host}: the engine did not say which API versions it speaks",
                                "check that 'docker version' works there")
    server_min = server.get("MinAPIVersion") or "1.0"
    chosen = min(server_max, client_max, key=_vtuple)
    engine = f"Docker {server.get('Version', '?')} (API {server_min} to {server_max})"
    if _vtuple(chosen) < _vtuple(client_min):
        raise DockerUnavailable(
            f"{host}: the engine is too old: {engine}; opskit needs API {client_min} or newer",
            "upgrade Docker Engine on that machine (20.10 or newer)")
    if _vtuple(chosen) < _vtuple(server_min):
        raise DockerUnavailable(
            f"{host}: the engine is newer than this client: {engine} refuses API {chosen}, "
            f"the newest this docker-py speaks",
            "upgrade docker-py in opskit's environment (pip install -U docker)")
    return chosen


def _negotiate(api: Any, host: str) -> dict:
    """Ask ``/version`` unversioned, then set the client's API version; the answer is returned."""
    from docker import constants

    server = api.version(api_version=False)
    api._version = negotiate_api_version(server, constants.DEFAULT_DOCKER_API_VERSION,
                                         constants.MINIMUM_DOCKER_API_VERSION, host)
    return server


def local_docker_client(host: str = "localhost", timeout: int = 120) -> Any:
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(version=_PLACEHOLDER_VERSION, timeout=timeout)
        _negotiate(client.api, host)
        client.ping()
    except (DockerException, OSError) as exc:  # requests' ConnectionError is an OSError
        raise docker_error(exc, host, error=DockerUnavailable, hint=START_HINT) from exc
    return client


def ssh_docker_client(host: str, ssh_client: Any, timeout: int = 120) -> Any:
    """A ``docker.DockerClient`` whose HTTP requests travel over ``ssh_client`` (paramiko)."""
    import docker
    from docker.errors import DockerException

    api = docker.APIClient(base_url="tcp://127.0.0.1:1", version=_PLACEHOLDER_VERSION,
                           timeout=timeout)
    adapter = _ssh_adapter(host, ssh_client, timeout)
    api.mount("http+docker://ssh", adapter)
    api._custom_adapter = adapter
    api.base_url = "http+docker://ssh"
    try:
        _negotiate(api, host)
    except DockerUnavailable:
        raise
    except DockerException as exc:
        raise docker_error(exc, host, error=DockerUnavailable, hint=START_HINT) from exc
    except Exception as exc:  # a closed channel, a missing docker CLI on the host, ...
        raise DockerUnavailable(
            f"{host}: could not reach the Docker engine over SSH ({type(exc).__name__}: {exc})",
            "check that 'docker info' works for this user on the host",
        ) from exc
    client = docker.DockerClient.__new__(docker.DockerClient)
    client.api = api
    return client


def _ssh_adapter(host: str, ssh_client: Any, timeout: int) -> Any:
    """docker-py's SSH adapter, fed our paramiko client instead of making its own."""
    from docker import constants
    from docker.transport.basehttpadapter import BaseHTTPAdapter
    from docker.transport.sshconn import SSHConnection, SSHConnectionPool, SSHHTTPAdapter
    from urllib3._collections import RecentlyUsedContainer

    class _Connection(SSHConnection):
        def close(self) -> None:
            """Close the exec channel; one whose SSH connection was cut (paramiko has not yet
            marked it closed, so closing sends a message and raises EOFError) is gone already.
            Raising here would surface as "Exception ignored in <finalize object>" at exit."""
            try:
                super().close()
            except (EOFError, OSError):
                pass

    class _Pool(SSHConnectionPool):
        def _new_conn(self) -> _Connection:
            return _Connection(self.ssh_transport, self.timeout, self.ssh_host)

    class _Adapter(SSHHTTPAdapter):
        def __init__(self) -> None:  # skip SSHHTTPAdapter.__init__: it makes its own client
            self.ssh_client = ssh_client
            self.ssh_params = {}
            self.ssh_host = host
            self.timeout = timeout
            self.max_pool_size = constants.DEFAULT_MAX_POOL_SIZE
            self.pools = RecentlyUsedContainer(
                constants.DEFAULT_NUM_POOLS_SSH, dispose_func=lambda p: p.close()
            )
            BaseHTTPAdapter.__init__(self)

        def _connect(self) -> None:  # the transport owns (re)connection
            raise DockerUnavailable(f"{host}: the SSH connection to the engine was closed")

        def get_connection(self, url, proxies=None):  # noqa: ANN001
            with self.pools.lock:
                pool = self.pools.get(url)
                if pool:
                    return pool
                pool = _Pool(
                    ssh_client=self.ssh_client, timeout=self.timeout,
                    maxsize=self.max_pool_size, host=self.ssh_host,
                )
                self.pools[url] = pool
            return pool

        def close(self) -> None:  # the SSH connection belongs to the transport
            BaseHTTPAdapter.close(self)

    return _Adapter()
