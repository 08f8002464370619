"""Text from hosts reaches the terminal as text (field cases security/05 and 06): Rich markup in
a process's command line is shown literally, escape sequences and carriage returns in a run's
output are shown visibly (``\\x1b``, ``\\r``), so nothing can restyle, hide, link, retitle,
write the clipboard or fake another host's line."""

from __future__ import annotations

import json
import subprocess
from types import SimpleNamespace

import pytest

from opskit.cli.render import print_line, print_table, safe_text
from opskit.testing.cli import run_cli

HOSTILE = ["fc05 [/x]", "[black on black]hidden-text[/] [link=http://127.0.0.1:1/]click[/link]",
           "a\x1b]0;owned-title\x07b", "\x1b]52;c;ZmM=\x07", "x\r[gpu9] FAKE", "\x1b[2J\x1b[H",
           "c1\x9b31m", "del\x7f"]


def test_safe_text_shows_every_control_character_visibly():
    assert safe_text("a\x1b[2Jb\rc\td\x00\x9b\x7f") == "a\\x1b[2Jb\\rc\\td\\x00\\x9b\\x7f"
    assert safe_text("one\ntwo\tx", keep="\n\t") == "one\ntwo\tx"
    assert safe_text("[b]plain[/b] é ü 中") == "[b]plain[/b] é ü 中"  # markup is left to Text
    for s in HOSTILE:
        out = safe_text(s)
        assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in out)


def test_tables_and_lines_print_remote_strings_literally(capsys, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # styles would show as escape sequences
    monkeypatch.setenv("COLUMNS", "400")
    print_table(["COMMAND"], [[s] for s in HOSTILE], title="[red]host[/red]")
    for s in HOSTILE:
        print_line(f"[gpu1] {s}")
    out = capsys.readouterr().out
    assert "[/x]" in out and "[black on black]hidden-text[/]" in out and "[red]host[/red]" in out
    assert "[link=http://127.0.0.1:1/]click[/link]" in out
    assert "\x1b]" not in out and "\r" not in out and "\x07" not in out and "\x9b" not in out
    assert "[gpu1] x\\r[gpu9] FAKE" in out and "\\x1b]52;c;" in out


@pytest.fixture
def crafted_processes():
    """Two real processes whose command lines hold Rich markup (exec -a)."""
    procs = [subprocess.Popen(["bash", "-c", 'exec -a "$0" sleep 60', name])
             for name in ("fc05 [/x]", "fc05 [black on black]hid[/] [link=http://127.0.0.1:1/]c[/link]")]
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def test_ps_shows_markup_in_command_lines_as_text(crafted_processes, capsys, monkeypatch,
                                                  tmp_path):  # security/05
    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.setenv("FORCE_COLOR", "1")
    (tmp_path / "inv.yaml").write_text("hosts: {}\n")
    monkeypatch.setenv("OPSKIT_INVENTORY", str(tmp_path / "inv.yaml"))
    code, out, err = run_cli(capsys, "ps", "--name", "^fc05")
    assert code in (0, 1), err  # 1 only when this machine's GPU report has problems
    assert "fc05 [/x]" in out and "[black on black]hid[/]" in out
    assert "[link=http://127.0.0.1:1/]c[/link]" in out and "\x1b]8;" not in out
    code, out, _ = run_cli(capsys, "ps", "--name", "^fc05", "--json")
    commands = [p["command"] for p in json.loads(out)["hosts"]["localhost"]["processes"]]
    assert "fc05 [/x] 60" in commands  # JSON keeps the raw string


LOG = (b"epoch 1 loss 0.5\n"
       b"\x1b]0;owned-title\x07\x1b]52;c;ZmMtc2VjLTA2IGNsaXBib2FyZA==\x07epoch 2 loss 0.4\n"
       b"[gpu1] epoch 3 loss 0.1 (genuine)\r[gpu9] FAKE LINE FROM ANOTHER HOST\n"
       b"\x1b[2J\x1b[Hscreen cleared by the container\n")


def test_logs_show_escapes_visibly(capsys, monkeypatch, tmp_path):  # security/06
    import opskit.hosts.group as group
    from opskit.testing.fake import FakeTransport

    class Container(SimpleNamespace):
        def logs(self, **kwargs):
            return iter([LOG])

        def reload(self):
            pass

    engine = SimpleNamespace(containers=SimpleNamespace(
        get=lambda name: Container(name=name, status="exited", attrs={"State": {}})))
    monkeypatch.setattr(group, "connect", lambda spec: FakeTransport("gpu1", docker_client=engine))
    runs = tmp_path / "runs"
    (runs / "r6").mkdir(parents=True)
    (runs / "r6" / "job.json").write_text('{"run_id": "r6", "host": "localhost"}')
    code, out, err = run_cli(capsys, "logs", "r6", "--runs-dir", str(runs))
    assert code == 0, err
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out
    assert "\\x1b]0;owned-title\\x07" in out
    assert "[gpu1] epoch 3 loss 0.1 (genuine)\\r[gpu9] FAKE LINE" in out
    assert out.count("\n") == 4  # one line per line the container wrote
