"""``opskit scp`` and ``opskit chmod`` on this machine, through the real entry point."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from opskit.files.chmod import current_umask
from opskit.testing.cli import run_cli as run


def test_chmod_explain_alone_connects_nowhere(capsys, monkeypatch):
    monkeypatch.setenv("OPSKIT_INVENTORY", "/nonexistent/inventory.yaml")  # would fail if read
    code, out, _ = run(capsys, "chmod", "--explain", "755")
    assert code == 0
    assert out.splitlines()[0] == (
        "755 = user rwx (4+2+1=7), group r-x (4+0+1=5), other r-x (4+0+1=5)"
    )
    code, out, _ = run(capsys, "chmod", "--explain", "--json", "u=rwx,g=rx,o=")
    data = json.loads(out)
    assert code == 0 and data["mode"] == "u=rwx,g=rx,o="
    assert any("750 (-rwxr-x---)" in line for line in data["explain"])


def test_chmod_local_shows_resulting_mode(capsys, tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    os.chmod(f, 0o600)
    code, out, _ = run(capsys, "chmod", "--json", "g+r,o+r", str(f))
    assert code == 0
    data = json.loads(out)
    assert data["hosts"]["localhost"]["paths"] == [
        {"path": str(f), "mode": "644", "ls": "-rw-r--r--", "folder": False}
    ]
    assert subprocess.run(["stat", "-c", "%a", str(f)], capture_output=True, text=True).stdout.strip() == "644"


def test_chmod_bad_input(capsys, tmp_path):
    code, _, err = run(capsys, "chmod", "--", "8;8", str(tmp_path))
    assert code == 2 and "refusing mode '8;8'" in err
    code, _, err = run(capsys, "chmod", "755")
    assert code == 2 and "no PATH given" in err
    code, _, err = run(capsys, "chmod", "755", str(tmp_path / "missing"))
    assert code == 1 and "localhost:" in err and "No such file or directory" in err


def test_scp_local_json_and_errors(capsys, tmp_path):
    src = tmp_path / "a.bin"
    src.write_bytes(os.urandom(5000))
    code, out, _ = run(capsys, "scp", "--json", str(src), f"localhost:{tmp_path / 'b.bin'}")
    assert code == 0
    data = json.loads(out)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert data["files"] == [{"path": str(tmp_path / "b.bin"), "size": 5000, "sha256": digest,
                              "mode": f"{0o666 & ~current_umask():04o}"}]
    assert (tmp_path / "b.bin").read_bytes() == src.read_bytes()
    code, _, err = run(capsys, "scp", str(tmp_path / "nope"), str(tmp_path / "c"))
    assert code == 2 and f"source {tmp_path / 'nope'} does not exist" in err
    code, _, err = run(capsys, "scp", str(src), "bad;name:x")
    assert code == 2 and "refusing host name" in err


def test_cli_module_imports_nothing_heavy():
    code = (
        "import sys, opskit.cli.files; "
        "print(sorted(m for m in ('paramiko', 'docker', 'rich', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
