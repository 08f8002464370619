"""The local transport: this machine, no SSH."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat as stat_mod
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import IO, Any

from opskit.atomic import sha256_file
from opskit.errors import HostError
from opskit.hosts.bounds import OutputTooLarge, max_output, too_large_error
from opskit.hosts.transport import CommandResult, FileStat, command_argv, shell_command

DEFAULT_TIMEOUT = 120.0


def _full_env(env: dict[str, str] | None) -> dict[str, str] | None:
    """This process's environment plus ENV (None: inherit it unchanged)."""
    return {**os.environ, **env} if env else None


class LocalTransport:
    is_local = True

    def __init__(self, host: str = "localhost", command_timeout: float = DEFAULT_TIMEOUT):
        self.host = host
        self.command_timeout = command_timeout
        self._docker: Any = None

    def __enter__(self) -> LocalTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        check: bool = False,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        argv = command_argv(argv)
        limit = self.command_timeout if timeout is None else timeout
        start = time.monotonic()
        try:
            code, out, err = _run_bounded(argv, stdin, limit, env)
        except FileNotFoundError:
            result = CommandResult(
                self.host, argv, "", f"{argv[0]}: command not found", 127,
                time.monotonic() - start,
            )
        except PermissionError:  # as a shell reports it: found but not executable
            result = CommandResult(
                self.host, argv, "", f"{argv[0]}: Permission denied", 126,
                time.monotonic() - start,
            )
        except subprocess.TimeoutExpired as exc:
            raise HostError(
                self.host, f"command {shell_command(argv)!r} did not finish within {limit:g}s "
                "(stopped, with the processes it started)"
            ) from exc
        except OutputTooLarge as exc:
            raise too_large_error(self.host, shell_command(argv), exc) from exc
        else:
            result = CommandResult(
                self.host, argv, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
                code, time.monotonic() - start,
            )
        return result.check() if check else result

    def popen(self, argv: Sequence[str], *, env: dict[str, str] | None = None) -> _LocalProcess:
        proc = subprocess.Popen(
            command_argv(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_full_env(env),
        )
        return _LocalProcess(proc)

    # -- files ------------------------------------------------------------------------------
    def stat(self, path: str) -> FileStat | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return FileStat(st.st_size, st.st_mode, st.st_mtime, stat_mod.S_ISDIR(st.st_mode))

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        return open(path, mode)  # noqa: SIM115 - caller closes

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def remove(self, path: str) -> None:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)

    def sha256(self, path: str) -> str:
        return sha256_file(path)

    def docker(self) -> Any:
        if self._docker is None:
            from opskit.hosts.engine import local_docker_client

            self._docker = local_docker_client(self.host)
        return self._docker

    def close(self) -> None:
        if self._docker is not None:
            self._docker.close()
            self._docker = None


def _run_bounded(argv: tuple[str, ...], stdin: bytes | None, limit: float,
                 env: dict[str, str] | None) -> tuple[int, bytes, bytes]:
    """Run argv in a process group of its own, its output going to temp files.

    Memory stays flat however much it prints: at most ``max_output()`` bytes of each stream
    are read back, else OutputTooLarge. On a timeout (or an interrupt) the whole group is
    killed, so a command's children (a hung ``df`` below ``sh``) do not live on."""
    cap = max_output()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                env=_full_env(env), process_group=0)
        try:
            proc.communicate(stdin, timeout=limit)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            raise
        for fh, name in ((out, "stdout"), (err, "stderr")):
            if fh.seek(0, os.SEEK_END) > cap:
                raise OutputTooLarge(name, cap)
            fh.seek(0)
        return proc.returncode, out.read(), err.read()


class _LocalProcess:
    def __init__(self, proc: subprocess.Popen):
        self._proc = proc
        self.stdin = proc.stdin
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def wait(self, timeout: float | None = None) -> int:
        return self._proc.wait(timeout)

    def kill(self) -> None:
        self._proc.kill()
