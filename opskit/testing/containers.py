"""Test containers started and removed through testcontainers' ``DockerContainer``.

``make_container(client, image, run_kwargs)`` turns docker-py ``containers.run`` keyword
arguments into a configured (not yet started) ``DockerContainer``; ``.start()``,
``.get_exposed_port()``, ``.get_wrapped_container()`` (a docker-py Container) and
``.stop()`` (remove, force, with anonymous volumes) do the rest.

How testcontainers 4.x is used here, and why:

- ``start()`` passes ``command``, ``environment``, ``ports``, ``name``, ``volumes`` and
  ``tmpfs`` to ``containers.create`` itself, so those go through the builder methods or
  attributes (``with_envs``, ``ports``, ``tmpfs``...); passing them in ``with_kwargs`` would
  give them twice. Everything else (``hostname``, ``labels``, ``privileged``, ``cap_add``,
  ``mounts``...) goes through ``with_kwargs``.
- ``with_bind_ports`` takes a host *port* only and would publish on every address; a
  ``(host_ip, port)`` tuple is written to ``ports`` instead (docker-py accepts it), so ports
  stay on 127.0.0.1.
- Each ``DockerContainer`` makes its own docker-py client from the environment (DOCKER_HOST
  or the docker context); we refuse to go on if that is not the engine of ``client``.
- No Ryuk (its image would be pulled, and there is no registry), ``TC_HOST=127.0.0.1``,
  ``docker_host`` connection mode: see ``opskit.testing.engine.TESTCONTAINERS_ENV``.
- ``create()`` pulls an image that is missing locally; we check first and never pull.
- With no network given, ``create()`` guesses one from the container this process may run
  in; we pin the engine's default ``bridge`` network, as plain ``containers.run`` uses.
"""

from __future__ import annotations

import os
from typing import Any

from opskit.errors import ConfigError, OpskitError

# testcontainers reads TC_HOST and the connection mode once, when it is first imported.
_WANTED = {
    "TESTCONTAINERS_RYUK_DISABLED": "true",
    "TC_HOST": "127.0.0.1",
    "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
}


def testcontainers_config() -> Any:
    """testcontainers' configuration, checked: no Ryuk, 127.0.0.1, docker_host mode."""
    from opskit.testing.engine import configure_testcontainers

    configure_testcontainers()  # os.environ.setdefault: before testcontainers' first import
    from testcontainers.core.config import ENABLE_FLAGS, ConnectionMode
    from testcontainers.core.config import testcontainers_config as config

    ryuk_off = os.environ.get("TESTCONTAINERS_RYUK_DISABLED", "").lower() in ENABLE_FLAGS
    wrong = [f"{k}={os.environ.get(k)!r}" for k, v in _WANTED.items()
             if k != "TESTCONTAINERS_RYUK_DISABLED" and os.environ.get(k) != v]
    if not ryuk_off:
        wrong.insert(0, f"TESTCONTAINERS_RYUK_DISABLED={os.environ.get('TESTCONTAINERS_RYUK_DISABLED')!r}")
    if wrong:
        raise ConfigError(
            "test hosts need testcontainers without Ryuk, on 127.0.0.1, in docker_host mode; "
            f"this environment sets {', '.join(wrong)}",
            "unset these variables (opskit sets them) or set "
            + " ".join(f"{k}={v}" for k, v in _WANTED.items()),
        )
    # testcontainers may have been imported before the environment was set: apply it again.
    config.ryuk_disabled = True
    config.tc_host_override = os.environ["TC_HOST"]
    config.connection_mode_override = ConnectionMode(os.environ["TESTCONTAINERS_CONNECTION_MODE"])
    return config


def _require_local_image(client: Any, image: str) -> None:
    from docker.errors import ImageNotFound

    try:
        client.images.get(image)
    except ImageNotFound as exc:
        raise OpskitError(
            f"image {image} is not on the local engine (test containers never pull)",
            "build it first (e.g. opskit.testing.sshd.ssh_host_image)",
        ) from exc


def _volume_dict(volumes: Any) -> dict[str, dict[str, str]]:
    """docker-py ``volumes`` (dict, or list of "host:bind[:mode]") as testcontainers' dict."""
    if isinstance(volumes, dict):
        return {str(k): {"bind": v["bind"], "mode": v.get("mode", "rw")} for k, v in volumes.items()}
    out = {}
    for spec in volumes:
        host, bind, *mode = str(spec).split(":")
        out[host] = {"bind": bind, "mode": mode[0] if mode else "rw"}
    return out


def make_container(client: Any, image: str, run_kwargs: dict) -> Any:
    """A ``DockerContainer`` for ``image`` configured as ``client.containers.run(image,
    **run_kwargs)`` would run it (``detach`` is implied). Not started yet."""
    from testcontainers.core.container import DockerContainer

    testcontainers_config()
    _require_local_image(client, image)
    extra = dict(run_kwargs)
    extra.pop("detach", None)
    tc = DockerContainer(image, docker_client_kw={"timeout": client.api.timeout})
    tc.image = image  # without TESTCONTAINERS_HUB_IMAGE_NAME_PREFIX: a local image, by its tag
    own_url, our_url = tc.get_docker_client().client.api.base_url, client.api.base_url
    if own_url != our_url:
        tc.get_docker_client().client.close()
        raise OpskitError(
            f"testcontainers would use the engine at {own_url}, not the given one ({our_url})",
            "pass the local engine's client (opskit.hosts.engine.local_docker_client), and "
            "point DOCKER_HOST / the docker context at that engine",
        )
    if "name" in extra:
        tc.with_name(extra.pop("name"))
    if "command" in extra:
        tc.with_command(extra.pop("command"))
    tc.with_envs(**(extra.pop("environment", None) or {}))
    for port, binding in (extra.pop("ports", None) or {}).items():
        tc.ports[str(port)] = binding  # (host_ip, host_port): with_bind_ports has no host ip
    tc.tmpfs.update(extra.pop("tmpfs", None) or {})
    tc.volumes.update(_volume_dict(extra.pop("volumes", None) or {}))
    if "network" not in extra and "network_mode" not in extra:
        extra["network"] = "bridge"  # what containers.run uses; testcontainers would guess
    tc.with_kwargs(**extra)
    return tc


def remove_container(tc: Any) -> None:
    """Remove a started (or only created) container, force, with its anonymous volumes."""
    try:
        tc.stop(force=True, delete_volume=True)
    except Exception:
        tc.get_docker_client().client.close()  # stop() closes its client only after removing
        raise
