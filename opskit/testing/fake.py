"""A fake transport keyed by command, for unit tests of parsing and control flow.

Give it the commands you expect and what they answer; any other command raises
``UnexpectedCommand`` naming the command and the ones it knows (never a silent empty reply)::

    fake = FakeTransport("gpu1", {
        ("df", "-B1"): "Filesystem ...\\n",                      # stdout only
        "nvidia-smi --query-gpu=name --format=csv": FakeReply(stderr="boom", exit_code=9),
        ("sleep", "99"): FakeReply(raises=HostError("gpu1", "did not finish")),
    }, files={"/etc/os-release": b"ID=debian\\n"})

Keys are argv tuples or the ``shlex.join`` of the argv (both are normalised to the latter).
Values are a ``str``/``bytes`` (stdout), a ``(stdout, stderr, exit_code)`` tuple, a
``FakeReply``, or a callable ``(argv, stdin) -> any of those``. Files live in a dict
(path -> bytes); folders are implied by files and by ``makedirs``. ``calls`` records every
command as ``(argv, stdin, env)``. Use this beside an integration test of the real path.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import shlex
import stat as stat_mod
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from opskit.hosts.transport import CommandResult, FileStat, command_argv, shell_command


class UnexpectedCommand(AssertionError):
    """The code under test ran a command the fake was not told about."""


@dataclass(frozen=True)
class FakeReply:
    stdout: str | bytes = ""
    stderr: str | bytes = ""
    exit_code: int = 0
    raises: BaseException | None = None  # e.g. HostError for a timeout or a lost connection


Answer = str | bytes | tuple | FakeReply | Callable[[tuple, bytes | None], Any]
CommandKey = str | Sequence[str]


def command_key(command: CommandKey) -> str:
    """An argv tuple or a command line -> the canonical ``shlex.join`` form."""
    if isinstance(command, str):
        return shlex.join(shlex.split(command))
    return shell_command(list(command))


def _as_reply(answer: Any) -> FakeReply:
    if isinstance(answer, FakeReply):
        return answer
    if isinstance(answer, (str, bytes)):
        return FakeReply(stdout=answer)
    if isinstance(answer, tuple) and len(answer) == 3:
        return FakeReply(*answer)
    raise TypeError(f"a fake answer must be str, bytes, (out, err, code) or FakeReply: {answer!r}")


def _text(data: str | bytes) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


class FakeTransport:
    """Implements the Transport protocol from a table of commands and a dict of files."""

    is_local = False

    def __init__(
        self,
        host: str = "fake",
        commands: Mapping[CommandKey, Answer] | None = None,
        *,
        files: Mapping[str, bytes] | None = None,
        docker_client: Any = None,
    ):
        self.host = host
        self.commands: dict[str, Answer] = {}
        for key, answer in (commands or {}).items():
            self.add(key, answer)
        self.files: dict[str, bytes] = dict(files or {})
        self.dirs: set[str] = {"/"}
        self.modes: dict[str, int] = {}
        self.calls: list[tuple[tuple[str, ...], bytes | None, dict | None]] = []
        self.closed = False
        self._docker = docker_client

    def add(self, command: CommandKey, answer: Answer) -> None:
        self.commands[command_key(command)] = answer

    def __enter__(self) -> FakeTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands ---------------------------------------------------------------------------
    def _answer(self, argv: tuple[str, ...], stdin: bytes | None) -> FakeReply:
        key = shell_command(argv)
        if key not in self.commands:
            known = "\n  ".join(sorted(self.commands)) or "(none)"
            raise UnexpectedCommand(
                f"FakeTransport({self.host!r}): unexpected command {key!r}\n"
                f"known commands:\n  {known}"
            )
        answer = self.commands[key]
        if callable(answer):
            answer = answer(argv, stdin)
        reply = _as_reply(answer)
        if reply.raises is not None:
            raise reply.raises
        return reply

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        check: bool = False,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        argv_t = command_argv(argv)
        self.calls.append((argv_t, stdin, dict(env) if env else None))
        start = time.monotonic()
        reply = self._answer(argv_t, stdin)
        result = CommandResult(
            self.host, argv_t, _text(reply.stdout), _text(reply.stderr), reply.exit_code,
            time.monotonic() - start,
        )
        return result.check() if check else result

    def popen(self, argv: Sequence[str], *, env: dict[str, str] | None = None) -> FakeProcess:
        argv_t = command_argv(argv)
        self.calls.append((argv_t, None, dict(env) if env else None))
        return FakeProcess(self, argv_t)

    # -- files ------------------------------------------------------------------------------
    @staticmethod
    def _norm(path: str) -> str:
        return posixpath.normpath(path) if path else path

    def _is_dir(self, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        return path in self.dirs or any(f.startswith(prefix) for f in self.files)

    def stat(self, path: str) -> FileStat | None:
        path = self._norm(path)
        if path in self.files:
            mode = self.modes.get(path, 0o644) | stat_mod.S_IFREG
            return FileStat(len(self.files[path]), mode, 0.0, False)
        if self._is_dir(path):
            return FileStat(4096, self.modes.get(path, 0o755) | stat_mod.S_IFDIR, 0.0, True)
        return None

    def listdir(self, path: str) -> list[str]:
        path = self._norm(path)
        if not self._is_dir(path):
            raise FileNotFoundError(2, "No such file or directory", path)
        prefix = path.rstrip("/") + "/"
        names = {p[len(prefix):].split("/")[0] for p in (*self.files, *self.dirs)
                 if p.startswith(prefix) and p != prefix}
        return sorted(names)

    def makedirs(self, path: str) -> None:
        path = self._norm(path)
        while path not in ("/", "", "."):
            if path in self.files:
                raise FileExistsError(17, "File exists", path)
            self.dirs.add(path)
            path = posixpath.dirname(path)

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        path = self._norm(path)
        if mode in ("rb", "r"):
            if path not in self.files:
                raise FileNotFoundError(2, "No such file or directory", path)
            return io.BytesIO(self.files[path])
        if mode in ("wb", "w", "ab", "a"):
            parent = posixpath.dirname(path) or "/"
            if not self._is_dir(parent):
                raise FileNotFoundError(2, "No such file or directory", parent)
            start = self.files.get(path, b"") if mode.startswith("a") else b""
            return _FakeWriter(self.files, path, start)
        raise ValueError(f"FakeTransport.open: unsupported mode {mode!r}")

    def rename(self, src: str, dst: str) -> None:
        src, dst = self._norm(src), self._norm(dst)
        if src not in self.files:
            raise FileNotFoundError(2, "No such file or directory", src)
        self.files[dst] = self.files.pop(src)
        if src in self.modes:
            self.modes[dst] = self.modes.pop(src)

    def remove(self, path: str) -> None:
        path = self._norm(path)
        if path in self.files:
            del self.files[path]
            return
        if not self._is_dir(path):
            raise FileNotFoundError(2, "No such file or directory", path)
        prefix = path.rstrip("/") + "/"
        for p in [p for p in self.files if p.startswith(prefix)]:
            del self.files[p]
        self.dirs = {d for d in self.dirs if d != path and not d.startswith(prefix)}

    def sha256(self, path: str) -> str:
        path = self._norm(path)
        if path not in self.files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return hashlib.sha256(self.files[path]).hexdigest()

    def docker(self) -> Any:
        if self._docker is None:
            raise UnexpectedCommand(
                f"FakeTransport({self.host!r}): docker() called but no docker_client was given"
            )
        return self._docker

    def close(self) -> None:
        self.closed = True


class _FakeWriter(io.BytesIO):
    """Bytes written become the file's content when the file is closed (like a real write)."""

    def __init__(self, files: dict[str, bytes], path: str, start: bytes):
        super().__init__()
        self._files, self._path = files, path
        self.write(start)

    def close(self) -> None:
        if not self.closed:
            self._files[self._path] = self.getvalue()
        super().close()


class _Stdin(io.BytesIO):
    def __init__(self, on_close: Callable[[bytes], None]):
        super().__init__()
        self._on_close = on_close

    def close(self) -> None:
        if not self.closed:
            data = self.getvalue()
            super().close()
            self._on_close(data)


class _LazyOutput(io.BytesIO):
    """Output that appears once the command has run (on first read, or after stdin closes)."""

    def __init__(self, run: Callable[[], None]):
        super().__init__()
        self._run = run

    def read(self, size: int | None = -1) -> bytes:
        self._run()
        return super().read(size)

    def read1(self, size: int = -1) -> bytes:
        self._run()
        return super().read1(size)

    def readline(self, size: int | None = -1) -> bytes:
        self._run()
        return super().readline(size)

    def readinto(self, buffer: Any) -> int:
        self._run()
        return super().readinto(buffer)


class FakeProcess:
    """A ``Process`` for ``popen``: stdin is collected; the command answers when stdin is
    closed, when its output is first read, or at ``wait``."""

    def __init__(self, transport: FakeTransport, argv: tuple[str, ...]):
        self._transport = transport
        self._argv = argv
        self._stdin_data: bytes | None = None
        self._code: int | None = None
        self.stdin = _Stdin(self._stdin_closed)
        self.stdout = _LazyOutput(self._run)
        self.stderr = _LazyOutput(self._run)

    def _stdin_closed(self, data: bytes) -> None:
        self._stdin_data = data
        self._run()

    def _run(self) -> None:
        if self._code is not None:
            return
        if self._stdin_data is None and not self.stdin.closed:
            self._stdin_data = self.stdin.getvalue()
        self._code = -1  # running: re-entrant reads see no output yet
        reply = self._transport._answer(self._argv, self._stdin_data or None)
        for stream, data in ((self.stdout, reply.stdout), (self.stderr, reply.stderr)):
            io.BytesIO.write(stream, data.encode() if isinstance(data, str) else data)
            stream.seek(0)
        self._code = reply.exit_code

    def wait(self, timeout: float | None = None) -> int:
        self._run()
        assert self._code is not None
        return self._code

    def kill(self) -> None:
        if self._code is None:
            self._code = -9
