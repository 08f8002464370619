"""opskit.train's own exceptions (train never imports the ops side's ``opskit.errors``).

Each error carries an ``exit_code`` and a ``hint``; ``opskit.train.entry.main`` prints them and
returns the code, and ``opskit.cli.train`` maps them onto the CLI's boundary.
"""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 143  # 128 + SIGTERM, what a shell reports for a terminated process


class TrainError(Exception):
    """Base of every error opskit.train raises on purpose."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class TrainUsageError(TrainError):
    """Bad input: an option, a model name, a device that cannot be used (exit 2)."""

    exit_code = EXIT_USAGE


class UnknownModelError(TrainUsageError):
    """A model name that is not in the zoo; the message lists the known ones."""


class UnknownTaskError(TrainUsageError):
    """A model whose task has no registered Task class."""


class InputTooSmallError(TrainUsageError):
    """The input is too small for the network; the message names the layer."""


class DeviceError(TrainUsageError):
    """The requested device is not available (e.g. --device cuda without a GPU)."""


class DataError(TrainUsageError):
    """A --data file that is missing or malformed; names the file and what is wrong."""


class CheckpointError(TrainUsageError):
    """A --resume checkpoint that is missing, corrupt or does not match the model."""
