"""docker-py clients: the local engine, or a remote engine through our own SSH connection.

A remote engine is reached with ``docker system dial-stdio`` on an exec channel of the
host's paramiko connection, so it obeys the same rules as every other remote command
(host keys checked, the same timeouts). docker-py is imported only here, lazily.
"""

from __future__ import annotations

from typing import Any

from opskit.errors import DockerUnavailable

START_HINT = (
    "start the engine (e.g. 'sudo systemctl start docker', or 'scripts/start-dockerd.sh' "
    "from the opskit repository) and check that this user may use /var/run/docker.sock"
)


def local_docker_client(host: str = "localhost", timeout: int = 120) -> Any:
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException as exc:
        raise DockerUnavailable(f"{host}: no usable Docker engine ({exc})", START_HINT) from exc
    return client


def ssh_docker_client(host: str, ssh_client: Any, timeout: int = 120) -> Any:
    """A ``docker.DockerClient`` whose HTTP requests travel over ``ssh_client`` (paramiko)."""
    import docker
    from docker import constants
    from docker.errors import DockerException
    from docker.transport.basehttpadapter import BaseHTTPAdapter
    from docker.transport.sshconn import SSHConnectionPool, SSHHTTPAdapter
    from docker.utils import version_lt
    from urllib3._collections import RecentlyUsedContainer

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
                pool = SSHConnectionPool(
                    ssh_client=self.ssh_client, timeout=self.timeout,
                    maxsize=self.max_pool_size, host=self.ssh_host,
                )
                self.pools[url] = pool
            return pool

        def close(self) -> None:  # the SSH connection belongs to the transport
            BaseHTTPAdapter.close(self)

    api = docker.APIClient(base_url="tcp://127.0.0.1:1", version="1.24", timeout=timeout)
    adapter = _Adapter()
    api.mount("http+docker://ssh", adapter)
    api._custom_adapter = adapter
    api.base_url = "http+docker://ssh"
    try:
        server = api.version(api_version=False)
    except DockerException as exc:
        raise DockerUnavailable(f"{host}: no usable Docker engine ({exc})", START_HINT) from exc
    except Exception as exc:  # a closed channel, a missing docker CLI on the host, ...
        raise DockerUnavailable(
            f"{host}: could not reach the Docker engine over SSH ({type(exc).__name__}: {exc})",
            "check that 'docker info' works for this user on the host",
        ) from exc
    server_api = server.get("ApiVersion", "1.41")
    default = constants.DEFAULT_DOCKER_API_VERSION
    api._version = server_api if version_lt(server_api, default) else default
    client = docker.DockerClient.__new__(docker.DockerClient)
    client.api = api
    return client
