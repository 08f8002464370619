"""``opskit --help`` stays light: no torch, docker, paramiko, fabric or rich at start-up."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "docker", "paramiko", "fabric", "rich", "yaml", "invoke", "cryptography")

PROBE = """
import json, sys
from opskit.cli.main import main
try:
    main({argv!r})
except SystemExit as exc:
    code = exc.code
print(json.dumps({{"code": code, "modules": sorted(sys.modules)}}), file=sys.stderr)
"""


def loaded_after(argv: list[str]) -> tuple[int, set[str], str]:
    res = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True,
                         text=True, timeout=60)
    report = json.loads(res.stderr.strip().splitlines()[-1])
    return report["code"], set(report["modules"]), res.stdout


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["hosts", "--help"]])
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    code, modules, out = loaded_after(argv)
    assert code == 0
    assert "opskit" in out
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == [], f"opskit {' '.join(argv)} imported {heavy}"


def test_help_lists_every_command() -> None:
    from opskit.cli.main import COMMANDS

    _, _, out = loaded_after(["--help"])
    for name in COMMANDS:
        assert f"  {name} " in out


def test_importtime_agrees() -> None:
    """The same check by another route: python -X importtime of the console entry point."""
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-c",
         "import sys; from opskit.cli.main import main; sys.argv=['opskit','--help']; main()"],
        capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 0
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "click" in imported
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


EVERY_HELP = """
import json, sys
from opskit.cli.main import COMMANDS, main
codes = {}
for name in COMMANDS:
    try:
        main([name, "--help"])
    except SystemExit as exc:
        codes[name] = exc.code
print(json.dumps({"codes": codes, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def test_every_command_help_imports_nothing_heavy() -> None:
    """``opskit CMD --help`` for every command, in one process: the command modules too."""
    from opskit.cli.main import COMMANDS

    res = subprocess.run([sys.executable, "-c", EVERY_HELP], capture_output=True, text=True,
                         timeout=120)
    report = json.loads(res.stderr.strip().splitlines()[-1])
    assert report["codes"] == {name: 0 for name in COMMANDS}
    heavy = sorted(m for m in report["modules"] if m.split(".")[0] in HEAVY)
    assert heavy == [], f"a command's --help imported {heavy}"
    assert res.stdout.count("Usage: opskit ") >= len(COMMANDS) - 1  # train: argparse's usage
