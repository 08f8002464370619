"""Tables printed to a pipe or a file are not folded at rich's default 80 columns: a run ID or a
path cut in two cannot be grepped or pasted (found on a fresh clone: `opskit runs list | grep`).
A terminal or $COLUMNS still decides the width."""

from __future__ import annotations

from opskit.cli import render

RUN = "resnet18-20261130-162700-49b9"


def _table() -> None:
    render.print_table(["run", "host", "model", "state", "created (UTC)", "note"],
                       [[RUN, "gpu-1", "resnet18", "exited", "2026-11-30 16:27:47", "x" * 60]])


def test_a_pipe_gets_whole_rows(capsys, monkeypatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    _table()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[1].split()[:2] == [RUN, "gpu-1"] and lines[1].rstrip().endswith("x" * 60)


def test_columns_still_decides(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    _table()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 2 and all(len(line) <= 60 for line in lines)
