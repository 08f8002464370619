"""Every command's ``--json`` output parses, for success and for failure.

With ``--json`` stdout carries exactly one JSON document (build and ``logs`` print JSON
Lines, as their ``--help`` says); a failure is a document too: ``error``, ``message``,
``hint`` and ``exit_code`` (equal to the process's exit code), the message staying on stderr.
These cases need no SSH host; the ones that reach the local engine fail the same way (one
error document) whether or not an engine answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opskit.testing.cli import run_cli


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    inv = tmp_path / "hosts.yaml"
    inv.write_text("hosts: {}\n")
    (tmp_path / "ssh_config").write_text("")
    monkeypatch.setenv("OPSKIT_INVENTORY", str(inv))
    monkeypatch.setenv("OPSKIT_SSH_CONFIG", str(tmp_path / "ssh_config"))
    monkeypatch.setenv("OPSKIT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello\n")
    return tmp_path


def one_document(out: str) -> object:
    assert out.strip(), "nothing on stdout"
    return json.loads(out)  # raises on anything but exactly one document


def json_lines(out: str) -> list[dict]:
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines, "nothing on stdout"
    return [json.loads(ln) for ln in lines]


SUCCESS = [
    ["status", "--json"],
    ["df", "--json"],
    ["ps", "--json", "--limit", "3"],
    ["chmod", "640", "notes.txt", "--json"],
    ["chmod", "--explain", "4755", "--json"],
    ["scp", "notes.txt", "copy.txt", "--json"],
    ["hosts", "list", "--json"],
    ["hosts", "show", "localhost", "--json"],
    ["models", "list", "--json"],
    ["models", "show", "lenet", "--small", "--json"],
    ["jobs", "--json"],
    ["runs", "list", "--json"],
]


@pytest.mark.parametrize("argv", SUCCESS, ids=lambda a: " ".join(a))
def test_success_is_one_document(capsys, argv: list[str]) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    doc = one_document(out)
    assert not (isinstance(doc, dict) and "exit_code" in doc and "error" in doc)


FAILURE = [
    (["status", "--host", "nosuchhost", "--json"], 2),
    (["df", "--json", "--host", "bad;name"], 2),
    (["ps", "--json", "--sort", "bogus"], 2),  # Click's own usage error
    (["chmod", "999", "notes.txt", "--json"], 2),
    (["scp", "missing.txt", "copy.txt", "--json"], None),
    (["hosts", "show", "nosuchhost", "--json"], 2),
    (["models", "show", "resnet19", "--json"], 2),
    (["models", "show", "alexnet", "--input", "3x16x16", "--json"], 2),
    (["image", "layers", "opskit-test-no-such:image", "--json"], None),
    (["ship", "opskit-test-no-such:image", "--json"], None),
    (["run-remote", "--json", "--host", "localhost", "resnet19"], 2),
    (["run-remote", "--json", "--gpus", "lots", "lenet"], 2),
    (["logs", "no-such-run", "--json"], None),
    (["cancel", "no-such-run", "--json"], None),
    (["collect", "no-such-run", "--json"], None),
    (["jobs", "--json", "--host", "nosuchhost"], 2),
    (["hosts", "trust", "nosuchhost", "--json"], 2),
    (["base", "bootstrap", "--tag", "opskit-test-json:none", "--from-rootfs", "no-such.tar", "--json"], None),
    (["project", "show", "--json"], None),  # no project card here
    (["eval", "no-such-run", "--json"], None),
    (["report", "no-such-run", "--json"], None),
    (["data", "check", "no-such-data.csv", "--json"], None),
    (["play", "no-such-playbook.yaml", "--json"], None),
]


@pytest.mark.parametrize(("argv", "want"), FAILURE, ids=lambda a: " ".join(a) if isinstance(a, list) else "")
def test_failure_is_one_error_document(capsys, argv: list[str], want: int | None) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code != 0
    if want is not None:
        assert code == want, err
    doc = one_document(out)
    assert set(doc) >= {"error", "message", "hint", "exit_code"} and doc["exit_code"] == code
    assert doc["message"] and doc["message"].splitlines()[0] in err  # people still read stderr


def test_build_json_lines_end_in_an_error_line(capsys, tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "build", str(tmp_path / "no-such-project"), "--json")
    assert code == 2
    docs = json_lines(out)
    assert docs[-1]["exit_code"] == 2 and "no-such-project" in docs[-1]["message"]


def _json_commands() -> set[str]:
    """Every command path (``hosts show``) that has a --json option."""
    import click

    from opskit.cli.main import COMMANDS, cli

    ctx = click.Context(cli)
    found: set[str] = set()

    def walk(cmd: click.Command, path: str) -> None:
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), f"{path} {name}".strip())
        elif any("--json" in p.opts for p in cmd.params):
            found.add(path)

    for name in COMMANDS:
        walk(cli.get_command(ctx, name), name)
    return found


def test_every_json_command_is_covered_here() -> None:
    covered = set()
    for argv in SUCCESS + [a for a, _ in FAILURE] + [["build"]]:
        words = [w for w in argv if not w.startswith("-")]
        covered.update(" ".join(words[:n]) for n in (1, 2))
    missing = sorted(_json_commands() - covered)
    assert missing == [], f"add success/failure cases for {missing}"
