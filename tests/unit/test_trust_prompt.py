"""`opskit hosts trust` without a terminal to ask on: a usage error that says how to pin
without asking (exit 2), never click's bare "Aborted." (exit 130); nothing is pinned.
The key scan is faked here (control flow only); the real scan is in
tests/integration/test_hosts_cli.py::test_trust_with_no_terminal_pins_nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from opskit.testing.cli import run_cli


@pytest.fixture()
def unpinned_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import paramiko

    from opskit.hosts import hostkeys

    kh = tmp_path / "known_hosts"
    kh.write_text("")
    inv = tmp_path / "inv.yaml"
    inv.write_text("hosts:\n  box:\n    hostname: 127.0.0.1\n    port: 2222\n"
                   f"    known_hosts: [{kh}]\n")
    monkeypatch.setenv("OPSKIT_INVENTORY", str(inv))
    (tmp_path / "ssh_config").write_text("")
    monkeypatch.setenv("OPSKIT_SSH_CONFIG", str(tmp_path / "ssh_config"))
    scanned = hostkeys.ScannedKey("box", "[127.0.0.1]:2222", paramiko.RSAKey.generate(1024))
    monkeypatch.setattr(hostkeys, "scan", lambda spec: scanned)
    return kh, scanned


@pytest.mark.parametrize("answer", ["", "n\n"])
def test_trust_without_a_yes_pins_nothing(capsys, monkeypatch, unpinned_host, answer) -> None:
    kh, scanned = unpinned_host
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    code, out, err = run_cli(capsys, "hosts", "trust", "box")
    assert code == 2, err
    assert "Aborted." not in err
    assert scanned.fingerprint in err
    if answer:  # answered no on purpose
        assert "error: nothing was pinned" in err
    else:  # stdin at its end: says why and how to pin without a question
        assert "stdin is not a terminal" in err
        assert f"--fingerprint {scanned.fingerprint}" in err
    assert kh.read_text() == ""


def test_trust_answer_yes_on_stdin_still_pins(capsys, monkeypatch, unpinned_host) -> None:
    kh, scanned = unpinned_host
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    code, out, err = run_cli(capsys, "hosts", "trust", "box")
    assert code == 0, err
    assert out.startswith(f"pinned: [127.0.0.1]:2222 {scanned.key_type} {scanned.fingerprint}")
    assert kh.read_text() == scanned.line + "\n"
