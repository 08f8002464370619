"""The one transport interface and the one result type, the same for local and SSH hosts."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol, runtime_checkable

from opskit.errors import CommandFailed


@dataclass(frozen=True)
class CommandResult:
    """What one command did on one host."""

    host: str
    argv: tuple[str, ...]
    stdout: str
    stderr: str
    exit_code: int
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def command_line(self) -> str:
        return shlex.join(self.argv)

    def check(self, hint: str | None = None) -> CommandResult:
        """Return self when the command succeeded, else raise CommandFailed with the tail."""
        if self.exit_code != 0:
            raise CommandFailed(self, hint)
        return self

    def to_dict(self) -> dict:
        return {
            "host": self.host,
            "argv": list(self.argv),
            "stdout": self.stdout,
            "stderr": self.stderr,
            "exit_code": self.exit_code,
            "duration": round(self.duration, 6),
        }


@dataclass(frozen=True)
class FileStat:
    size: int
    mode: int
    mtime: float
    is_dir: bool


@runtime_checkable
class Process(Protocol):
    """A running command with byte streams (used for pipes such as ``docker load``)."""

    stdin: IO[bytes]
    stdout: IO[bytes]
    stderr: IO[bytes]

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


@runtime_checkable
class Transport(Protocol):
    """How opskit talks to one host. Constructors never touch the network."""

    host: str
    is_local: bool

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        check: bool = False,
        env: dict[str, str] | None = None,
    ) -> CommandResult: ...

    def popen(self, argv: Sequence[str], *, env: dict[str, str] | None = None) -> Process: ...

    # Files: enough for verified copies (temp name + rename) and result collection.
    def stat(self, path: str) -> FileStat | None: ...

    def listdir(self, path: str) -> list[str]: ...

    def makedirs(self, path: str) -> None: ...

    def open(self, path: str, mode: str = "rb") -> IO[bytes]: ...

    def rename(self, src: str, dst: str) -> None: ...

    def remove(self, path: str) -> None: ...

    def sha256(self, path: str) -> str: ...

    def docker(self) -> Any:
        """A docker-py ``DockerClient`` for this host's engine (through this transport)."""
        ...

    def close(self) -> None: ...


def command_argv(argv: Sequence[object]) -> tuple[str, ...]:
    """The argv every transport runs and records: a tuple of strings. Refuses an empty one."""
    argv_t = tuple(str(a) for a in argv)
    if not argv_t:
        raise ValueError("empty command")
    return argv_t


def env_argv(argv: Sequence[object], env: dict[str, str] | None) -> tuple[str, ...]:
    """argv that sets ENV for this one command where only a command line reaches the host
    (``env K=V ... argv``); argv itself when there is no ENV."""
    argv_t = command_argv(argv)
    if not env:
        return argv_t
    return ("env", *[f"{k}={v}" for k, v in env.items()], *argv_t)


def shell_command(argv: Sequence[object]) -> str:
    """The one place argv becomes a command line for a remote shell."""
    return shlex.join(command_argv(argv))
