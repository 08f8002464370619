"""``opskit play`` end to end on this machine (localhost): plan and ask, --check, --yes,
--json events, the record folder, exit codes."""

from __future__ import annotations

import json

import pytest

PLAY = """
- name: local
  steps:
    - name: folder
      command: {argv: [mkdir, -p, DEST], creates: DEST}
    - name: note
      copy: {src: note.txt, dest: DEST/note.txt}
"""


@pytest.fixture
def book(tmp_path, monkeypatch):
    monkeypatch.setenv("OPSKIT_PLAYS_DIR", str(tmp_path / "plays"))
    monkeypatch.setenv("OPSKIT_INVENTORY", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("hosts: {}\n")
    (tmp_path / "note.txt").write_text("hello\n")
    path = tmp_path / "play.yaml"
    path.write_text(PLAY.replace("DEST", str(tmp_path / "out")))
    return path


def test_check_says_what_would_change_and_changes_nothing(opskit_cli, book, tmp_path):
    code, out, _ = opskit_cli("play", str(book), "--check")
    assert code == 0 and "would run: mkdir -p" in out and "would copy" in out
    assert "localhost  ok=2 changed=2 failed=0 skipped=0 unreachable=0" in out
    assert not (tmp_path / "out").exists()


def test_without_yes_the_plan_is_shown_and_nothing_applied_when_no_one_can_answer(
        opskit_cli, book, tmp_path):
    code, out, err = opskit_cli("play", str(book))
    assert code == 2 and "PLAN (dry run" in out and "--yes" in err
    assert not (tmp_path / "out").exists()


def test_yes_applies_records_and_a_second_run_changes_nothing(opskit_cli, book, tmp_path):
    code, out, err = opskit_cli("play", str(book), "--yes", "--json")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events][:2] == ["play_started", "step_started"]
    assert events[-1]["event"] == "recap" and events[-1]["hosts"]["localhost"]["changed"] == 2
    assert (tmp_path / "out" / "note.txt").read_text() == "hello\n"
    (folder,) = (tmp_path / "plays").iterdir()
    assert json.loads((folder / "recap.json").read_text())["hosts"]["localhost"]["changed"] == 2
    assert len((folder / "events.jsonl").read_text().splitlines()) == len(events)
    code, out, _ = opskit_cli("play", str(book))  # nothing to change: no question asked
    assert code == 0 and "changed=0" in out


def test_a_failed_step_exits_1_and_a_bad_playbook_exits_2(opskit_cli, book, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- steps:\n    - command: ['false']\n")
    code, out, _ = opskit_cli("play", str(bad), "--yes")
    assert code == 1 and "failed=1" in out
    bad.write_text("- steps:\n    - command: [ls]\n      regster: x\n")
    code, _, err = opskit_cli("play", str(bad), "--yes")
    assert code == 2 and "bad.yaml:3" in err and "'regster'" in err


def test_limit_names_hosts_the_inventory_knows(opskit_cli, book):
    code, out, _ = opskit_cli("play", str(book), "--check", "--limit", "localhost")
    assert code == 0 and "PLAY [local] on localhost" in out
    code, _, err = opskit_cli("play", str(book), "--check", "--limit", "nothere")
    assert code == 2 and "'nothere'" in err


def test_ctrl_c_leaves_the_event_log_and_a_recap_saying_so(opskit_cli, book, tmp_path, monkeypatch):
    from opskit.hosts.local import LocalTransport

    real_run = LocalTransport.run

    def run(self, argv, **kw):
        if list(argv)[:1] == ["sleep"]:
            raise KeyboardInterrupt
        return real_run(self, argv, **kw)

    monkeypatch.setattr(LocalTransport, "run", run)
    book.write_text(book.read_text() + "    - name: wait\n      command: [sleep, '5']\n")
    code, _, err = opskit_cli("play", str(book), "--yes")
    assert code == 130 and "interrupted during 'wait'" in err
    (folder,) = (tmp_path / "plays").iterdir()
    log = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    (stop,) = [e for e in log if e["event"] == "interrupted"]
    assert stop["step"] == "wait" and stop["done"] == {"localhost": ["folder: changed", "note: changed"]}
    recap = json.loads((folder / "recap.json").read_text())
    assert recap["interrupted"] is True and recap["hosts"]["localhost"]["changed"] == 2
