"""The Docker engine of a host, through the ``docker`` CLI run over the host's transport
(the same code path for local and SSH hosts): ``docker version --format '{{json .}}'`` and
``docker system df --format '{{json .}}'``.

``state`` is one of ``running``, ``not installed``, ``not running``, ``permission denied``
or ``error``; ``message`` says it in words for people.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from opskit.checks.sections import DOCKER_TIMEOUT, TIMED_OUT_CODES, Section
from opskit.errors import ParseError

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kKMGTP]?i?B)$")
_UNITS = {"B": 1, "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "PB": 1000**5, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}

MESSAGES = {
    "not installed": "Docker: not installed",
    "not running": "Docker: engine not running",
    "permission denied": "Docker: permission denied for this user (add it to the 'docker' group)",
}


def parse_size(text: str) -> int | None:
    """Docker's human sizes (``8.968GB``, ``0B``, ``170.3MB (99%)``) -> bytes (approximate:
    docker prints 4 significant digits, in powers of 1000)."""
    m = _SIZE.match(text.split(" (")[0].strip())
    if m is None or m.group(2) not in _UNITS:
        return None
    return round(float(m.group(1)) * _UNITS[m.group(2)])


@dataclass(frozen=True)
class DiskUse:
    """One row of ``docker system df``."""

    type: str
    count: int
    active: int | None
    size: str | None
    size_bytes: int | None
    reclaimable: str | None

    def to_dict(self) -> dict:
        return {"count": self.count, "active": self.active, "size": self.size,
                "size_bytes": self.size_bytes, "reclaimable": self.reclaimable}


def parse_system_df(text: str, host: str = "localhost") -> dict[str, DiskUse]:
    """JSON lines of ``docker system df --format '{{json .}}'`` -> {type: DiskUse}."""
    result = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            use = DiskUse(row["Type"], int(row["TotalCount"]), int(row["Active"]), row["Size"],
                          parse_size(row["Size"]), row.get("Reclaimable", ""))
        except (ValueError, KeyError, TypeError) as exc:
            raise ParseError(host, "docker system df", line, str(exc)) from exc
        result[use.type] = use
    return result


def parse_version(text: str, host: str = "localhost") -> tuple[dict, dict | None]:
    """``docker version --format '{{json .}}'`` -> (client, server or None)."""
    line = next((x for x in text.splitlines() if x.strip().startswith("{")), None)
    if line is None:
        raise ParseError(host, "docker version", text.strip()[:200], "expected one JSON object")
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise ParseError(host, "docker version", line, str(exc)) from exc
    if not isinstance(data, dict):
        raise ParseError(host, "docker version", line, "expected a JSON object")
    return data.get("Client") or {}, data.get("Server")


def classify_error(stderr: str) -> str:
    """The docker CLI's complaint -> a state."""
    low = stderr.lower()
    if "permission denied" in low:
        return "permission denied"
    if "cannot connect to the docker daemon" in low or "is the docker daemon running" in low:
        return "not running"
    return "error"


@dataclass(frozen=True)
class DockerInfo:
    state: str
    message: str
    client_version: str | None = None
    server_version: str | None = None
    api_version: str | None = None
    disk: dict | None = None  # {type: DiskUse}

    def to_dict(self) -> dict:
        disk = self.disk or {}
        return {
            "state": self.state,
            "message": self.message,
            "client_version": self.client_version,
            "server_version": self.server_version,
            "api_version": self.api_version,
            "images": disk["Images"].to_dict() if "Images" in disk else None,
            "containers": disk["Containers"].to_dict() if "Containers" in disk else None,
            "volumes": disk["Local Volumes"].to_dict() if "Local Volumes" in disk else None,
            "build_cache": disk["Build Cache"].to_dict() if "Build Cache" in disk else None,
        }


def count_images(images: Section | None) -> int | None:
    """``docker image ls --quiet --no-trunc`` -> the number of distinct images."""
    if images is None or not images.ok:
        return None
    return len({line.strip() for line in images.stdout.splitlines() if line.strip()})


def docker_info(host: str, version: Section, disk: Section | None,
                images: Section | None = None) -> DockerInfo:
    """Sections ``docker_version``, ``docker_df`` (and ``docker_images``) -> DockerInfo.

    ``docker system df`` gives the images' disk use; when it failed or ran out of time the
    image count still comes from ``docker image ls``."""
    if version.not_found:
        return DockerInfo("not installed", MESSAGES["not installed"])
    if version.exit_code in TIMED_OUT_CODES:
        return DockerInfo("error", f"Docker: the engine did not answer within {DOCKER_TIMEOUT}s")
    client, server = parse_version(version.stdout, host) if "{" in version.stdout else ({}, None)
    if not version.ok or server is None:
        state = classify_error(version.stderr)
        message = MESSAGES.get(state, f"Docker: {version.message()}")
        return DockerInfo(state, message, client_version=client.get("Version"))
    rows = parse_system_df(disk.stdout, host) if disk is not None and disk.ok else {}
    use = rows.get("Images")
    message = f"Docker {server.get('Version')}"
    if use is not None:
        message += f", {use.count} images, {use.size}"
    else:
        # docker image ls runs on the host only where system df failed (see sections)
        count = count_images(images) if disk is None or not disk.ok else None
        if count is not None:
            rows = {**rows, "Images": DiskUse("Images", count, None, None, None, None)}
            message += f", {count} images"
        if disk is not None and disk.exit_code in TIMED_OUT_CODES:
            message += f", disk use unknown (docker system df took over {DOCKER_TIMEOUT}s)"
        elif disk is not None:
            message += f", disk use unknown ({disk.message()})"
    return DockerInfo("running", message, client.get("Version"), server.get("Version"),
                      server.get("ApiVersion"), rows or None)
