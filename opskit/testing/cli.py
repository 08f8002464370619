"""Run the real ``opskit`` entry point (its error boundary and exit codes) inside the test
process: no interpreter start-up per call. ``cli_runner(capsys)`` (or the fixture
``opskit_cli``) gives ``run("build", ...) -> CliRun(returncode, stdout, stderr)``;
``run_cli(capsys, "df", ...)`` is the one-call form. A ``CliRun`` unpacks as
``code, out, err``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class CliRun:
    returncode: int
    stdout: str
    stderr: str

    def __iter__(self) -> Iterator:
        """``code, out, err = run(...)``."""
        return iter((self.returncode, self.stdout, self.stderr))


def cli_runner(capsys: pytest.CaptureFixture) -> Callable[..., CliRun]:
    """``run(*argv) -> CliRun`` through ``opskit.cli.main.main``, output taken from ``capsys``."""
    from opskit.cli.main import main

    def run(*argv: str) -> CliRun:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main(list(argv))
        out = capsys.readouterr()
        code = exc.value.code
        return CliRun(code if isinstance(code, int) else (0 if code is None else 1), out.out, out.err)

    return run


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> CliRun:
    """Run ``opskit ARGV`` once in this process (see ``cli_runner``)."""
    return cli_runner(capsys)(*argv)


@pytest.fixture()
def opskit_cli(capsys: pytest.CaptureFixture) -> Callable[..., CliRun]:
    return cli_runner(capsys)
