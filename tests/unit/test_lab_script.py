"""scripts/lab.py's arguments and its answers when no lab is up (no engine needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LAB = [sys.executable, str(Path(__file__).parents[2] / "scripts" / "lab.py")]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LAB, *args], capture_output=True, text=True, timeout=60)


def test_env_and_down_without_a_lab_say_so_without_a_traceback(tmp_path):
    for action in ("env", "down"):
        res = run(action, "--dir", str(tmp_path / "none"))
        assert res.returncode == 1 and res.stdout == "", res
        assert "no lab is up in" in res.stderr and "lab.py up --dir" in res.stderr
        assert "Traceback" not in res.stderr


def test_hosts_must_be_at_least_one(tmp_path):
    res = run("up", "--hosts", "0", "--dir", str(tmp_path))
    assert res.returncode == 2 and "--hosts: 0: give at least 1" in res.stderr, res.stderr
    assert not (tmp_path / "lab.json").exists()


def test_every_option_has_help():
    text = " ".join(run("--help").stdout.split())
    for option, words in (("--hosts HOSTS", "up: how many GPU hosts"), ("--prefix PREFIX", "up: the hosts' names"),
                          ("--dir DIR", "the lab's folder"), ("--slurm", "up: a Slurm cluster")):
        assert f"{option} {words}" in text, option
