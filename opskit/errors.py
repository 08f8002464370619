"""One exception tree for opskit. Each error knows its exit code and a hint.

The CLI maps these to exit codes at one boundary (``opskit.cli.main``):
0 all well, 1 a check failed or some host failed, 2 bad usage or configuration.
"""

from __future__ import annotations

from typing import Protocol


class CommandResult(Protocol):
    """What :class:`CommandFailed` reads of a result (``opskit.hosts.transport.CommandResult``
    has these; named here so that errors import nothing of opskit)."""

    host: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def command_line(self) -> str: ...

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class OpskitError(Exception):
    """Base of every error opskit raises on purpose."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        return {"error": type(self).__name__, "message": self.message, "hint": self.hint}


class UsageError(OpskitError):
    """Bad input from the user: a name, path, mode or option that cannot be used."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A configuration or inventory file that is wrong (names file and key)."""


class UnsafeInputError(UsageError):
    """A host name, path or mode that could be read as shell syntax or an option."""


class HostError(OpskitError):
    """A host could not be reached or did not answer in time."""

    def __init__(self, host: str, message: str, hint: str | None = None):
        super().__init__(f"{host}: {message}", hint)
        self.host = host


class HostKeyError(HostError):
    """An unknown or changed SSH host key. Never trusted silently."""


class CommandFailed(OpskitError):
    """A command ran but exited non-zero. Carries the result."""

    def __init__(self, result: CommandResult, hint: str | None = None):
        tail = (result.stderr or result.stdout).strip().splitlines()[-10:]
        msg = (
            f"{result.host}: command {result.command_line!r} exited with {result.exit_code}"
            + ("\n  " + "\n  ".join(tail) if tail else "")
        )
        super().__init__(msg, hint)
        self.result = result


class ParseError(OpskitError):
    """Output of a host command that does not parse (names host and line)."""

    def __init__(self, host: str, what: str, line: str, reason: str = ""):
        detail = f": {reason}" if reason else ""
        super().__init__(
            f"{host}: could not parse {what} output{detail}\n  line: {line!r}",
            "the host's tool may be a different version; please report this line",
        )
        self.host = host
        self.line = line


class CheckFailed(OpskitError):
    """A check ran and its result is over a threshold (exit 1)."""


class WaitTimeout(OpskitError):
    """Something waited for did not happen in time. Says what it waited for."""


class DockerUnavailable(OpskitError):
    """No usable Docker engine."""


class TransferError(OpskitError):
    """A copy or image transfer failed; nothing was left at the final path."""


class ChecksumMismatch(TransferError):
    """A copied file does not hash to what the source has."""


class BuildError(OpskitError):
    """An image build failed (names the step)."""


class JobError(OpskitError):
    """A remote job could not be started, followed, cancelled or collected."""
