"""Does a host already hold our image? The question every ship asks first, and the whole of a
re-ship with nothing changed, so it is kept cheap and exact.

**Exact.** Image IDs are content digests, so an ID that is one of ours proves the image: our
image ID (the same store), else our config digest (a legacy store) or manifest digest (a
containerd store), read from the local store only then. Where the engine also tells the
image's layers, they must be our diff IDs too.

**Cheap.** First the engine's own API, through the SSH connection already open and with no
docker process on the host: one short command tells which unix socket the host's docker CLI
talks to (:mod:`opskit.hosts.dockerendpoint`: a shell's ``printf``, as cheap as ``true``), then
an OpenSSH ``direct-streamlocal`` channel to that socket carries ``GET /images/{tag}/json``
(:mod:`opskit.hosts.streamlocal`; ~1-3 ms against Docker 20.10 and 26). Where that cannot be
done (the sshd forbids stream-local forwarding, the CLI uses another context or a TCP
``DOCKER_HOST``, the socket is not there or not the user's, the answer is not an engine's),
the docker CLI is asked as before (``docker image ls`` of our tags: 25-50 ms, most of it the
CLI starting) and ``on_event`` says why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opskit.hosts.transport import Transport

VIA_API = "engine API over SSH"
VIA_CLI = "docker CLI"
Found = tuple[str, list[str], str]  # (ID on the host, our tags there, the host's store)
EventFn = Callable[[str, str], None]  # (host, message)


def image_on_host(transport: Transport, image: Any, on_event: EventFn | None = None) -> Found | None:
    """(ID on the host, tags there, its store) when the host holds our image, else None."""
    return check_image(transport, image, on_event)[0]


def check_image(transport: Transport, image: Any, on_event: EventFn | None = None) -> tuple[Found | None, str]:
    """:func:`image_on_host`, and how it was asked (:data:`VIA_API` or :data:`VIA_CLI`)."""
    from opskit.hosts.streamlocal import StreamLocalRefused

    if getattr(transport, "open_unix_socket", None) is None:  # not an SSH connection (a test's fake)
        return ours_via_cli(transport, image), VIA_CLI
    try:
        return ours_via_api(transport, image), VIA_API
    except StreamLocalRefused as exc:
        if on_event is not None:
            on_event(transport.host, f"asking the docker CLI whether the image is there, as the engine API "
                                     f"over SSH is not usable here: {exc.reason}")
    return ours_via_cli(transport, image), VIA_CLI


def store_of(image: Any, host_id: str) -> str | None:
    """The host's store if ``host_id`` is one of our image's IDs, else None."""
    if host_id == image.image_id:
        return image.store
    if host_id in image.ids():
        return "legacy" if host_id == image.config_digest else "containerd"
    return None


# -- the engine API over the SSH connection ----------------------------------------------------
def ours_via_api(transport: Transport, image: Any) -> Found | None:
    """Our tags, then our image ID, inspected through the engine's socket (raises
    StreamLocalRefused when the API is not usable here).

    The probe of the CLI's socket and the inspects on the usual socket run at once (the probe
    is a round trip of its own); the answer is used only when the probe names that socket."""
    from opskit.hosts.dockerendpoint import DEFAULT_SOCKET, cli_endpoint
    from opskit.hosts.streamlocal import StreamLocalRefused

    opener = transport.open_unix_socket  # type: ignore[attr-defined]  # SSHTransport (see check_image)
    with ThreadPoolExecutor(max_workers=1) as pool:
        probe = pool.submit(cli_endpoint, transport)
        try:
            guess: tuple[Found | None, StreamLocalRefused | None] = (_find(opener, DEFAULT_SOCKET, image), None)
        except StreamLocalRefused as exc:
            guess = (None, exc)
        endpoint = probe.result()
    if endpoint.socket is None:
        raise StreamLocalRefused(endpoint.why_not)
    if endpoint.socket != DEFAULT_SOCKET:
        return _find(opener, endpoint.socket, image)
    if guess[1] is not None:
        raise guess[1]
    return guess[0]


def _find(opener: Callable[[str], Any], socket: str, image: Any) -> Found | None:
    """Our tags, then our image ID, on the engine at ``socket``."""
    for ref in dict.fromkeys([*image.repo_tags, image.image_id]):
        attrs = inspect_via_socket(opener, socket, ref)
        if attrs is None:
            continue
        host_id = str(attrs.get("Id") or "")
        layers = (attrs.get("RootFS") or {}).get("Layers")
        store = store_of(image, host_id) if layers == image.diff_ids else None
        if store is not None:
            return host_id, [t for t in (attrs.get("RepoTags") or []) if t in image.repo_tags], store
    return None


def inspect_via_socket(opener: Callable[[str], Any], socket: str, ref: str) -> dict | None:
    """``GET /images/{ref}/json`` on the engine at ``socket``: its answer, or None for 404."""
    from opskit.hosts.streamlocal import StreamLocalRefused, http_get_json, image_path

    status, data, headers = http_get_json(opener(socket), image_path(ref))
    if "api-version" not in headers:
        raise StreamLocalRefused(f"what answers on {socket} is not a Docker engine (no API-Version header)")
    if status == 404:
        return None
    if status != 200 or not isinstance(data, dict):
        message = data.get("message") if isinstance(data, dict) else data
        raise StreamLocalRefused(f"the engine at {socket} answered HTTP {status} to an image inspect: {message}")
    return data


# -- the docker CLI on the host ---------------------------------------------------------------
def ours_via_cli(transport: Transport, image: Any) -> Found | None:
    """``docker image ls`` of our tags (one command), then ``docker image inspect`` of our ID."""
    if image.repo_tags:
        found = _ours_by_tags(transport, image)
        if found is not None:
            return found
    return _ours_among(transport, image, [image.image_id])


def _ours_by_tags(transport: Transport, image: Any) -> Found | None:
    filters = [arg for tag in image.repo_tags for arg in ("--filter", f"reference={tag}")]
    res = transport.run(["docker", "image", "ls", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}",
                         *filters])
    held: dict[str, list[str]] = {}
    for line in res.stdout.splitlines():
        host_id, _, tag = line.strip().partition(" ")
        held.setdefault(host_id, []).append(tag)
    for host_id, tags in held.items():
        store = store_of(image, host_id)
        if store is not None:
            return host_id, tags, store
    return None


def _ours_among(transport: Transport, image: Any, refs: list[str]) -> Found | None:
    fmt = "{{.Id}} {{json .RootFS.Layers}} {{json .RepoTags}}"
    res = transport.run(["docker", "image", "inspect", "--format", fmt, *refs])
    decoder = json.JSONDecoder()
    for line in res.stdout.splitlines():  # exit 1 when any one ref is absent; the others print
        host_id, _, rest = line.strip().partition(" ")
        try:
            layers, end = decoder.raw_decode(rest)
            tags = list(json.loads(rest[end:]) or [])
        except json.JSONDecodeError:
            continue
        store = store_of(image, host_id) if layers == image.diff_ids else None
        if store is not None:
            return host_id, tags, store
    return None
