"""known_hosts parsing: broken lines skipped (as OpenSSH does), @revoked collected."""

from __future__ import annotations

from pathlib import Path

from opskit.hosts.knownhosts import read_known_hosts
from opskit.testing.sshd import make_client_key


def test_read_known_hosts(tmp_path: Path) -> None:
    k1 = " ".join(make_client_key(tmp_path / "k1").split()[:2])
    k2 = " ".join(make_client_key(tmp_path / "k2").split()[:2])
    kh = tmp_path / "known_hosts"
    kh.write_text(
        "# comment\n\n"
        f"[127.0.0.1]:2222 {k1}\n"
        "broken\n"
        "host ssh-ed25519 %%%notbase64\n"
        "host ssh-unknown AAAA\n"
        f"@revoked * {k2}\n"
        f"@cert-authority *.example {k2}\n"
        f"a.example,b.example {k2}\n"
    )
    known = read_known_hosts([str(kh), str(tmp_path / "missing")])
    assert known.keys.lookup("[127.0.0.1]:2222")["ssh-ed25519"].get_base64() == k1.split()[1]
    assert known.keys.lookup("b.example") is not None
    assert known.keys.lookup("127.0.0.1") is None
    assert known.revoked == {k2.split()[1]}
    assert len(known.skipped) == 4
    assert all(s.startswith(f"{kh}:") for s in known.skipped)
