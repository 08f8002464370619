"""This machine in the role of a remote host, for tests of what opskit does to a host's files.

:class:`HostLike` is the local transport (real ``sh``, ``find``, ``sha256sum``, ``mv``, real
files) taking the code paths of a remote host (``is_local = False``); its engine knows finished
containers only. :func:`fake_docker_cli` puts a ``docker`` first on PATH whose ``docker logs``
prints what the container wrote. No engine and no SSH are needed: the file-system half of
collect runs for real, the SSH half is tested against real sshd hosts in tests/integration.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from opskit.hosts.local import LocalTransport


class FakeContainer(SimpleNamespace):
    """A finished container as docker-py shows it (``name``, ``status``), enough for collect."""

    removed = False

    def remove(self, **kwargs: Any) -> None:
        self.removed = True

    def reload(self) -> None:
        return None


class HostLike(LocalTransport):
    """This machine playing the host ``host`` (real commands and files, remote code paths)."""

    is_local = False

    def __init__(self, host: str = "gpu1", containers: Iterable[FakeContainer] = ()):
        super().__init__(host)
        self.containers = {c.name: c for c in containers}
        self._engine = SimpleNamespace(containers=SimpleNamespace(get=self._get))

    def _get(self, name: str) -> FakeContainer:
        from docker.errors import NotFound

        if name not in self.containers:
            raise NotFound(name)
        return self.containers[name]

    def docker(self) -> Any:
        return self._engine


def fake_docker_cli(folder: Path, logs_text: str) -> str:
    """Write ``folder/docker`` (``docker logs X`` prints ``logs_text``); return a PATH with it first."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "out.txt").write_text(logs_text)
    script = folder / "docker"
    script.write_text(f'#!/bin/sh\n[ "$1" = logs ] && exec cat "{folder}/out.txt"\nexit 1\n')
    script.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
