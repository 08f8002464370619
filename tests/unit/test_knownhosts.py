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


def test_cache_reused_until_the_file_changes(tmp_path: Path) -> None:
    from opskit.hosts.knownhosts import cached_known_hosts

    k1 = " ".join(make_client_key(tmp_path / "k1").split()[:2])
    kh = tmp_path / "known_hosts"
    kh.write_text(f"h1 {k1}\n")
    first = cached_known_hosts([str(kh)])
    assert cached_known_hosts([str(kh)]) is first
    with kh.open("a") as fh:
        fh.write(f"h2 {k1}\n")
    second = cached_known_hosts([str(kh)])
    assert second is not first and second.keys.lookup("h2") is not None


def test_identities_loaded_once_and_encrypted_left_to_paramiko(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from opskit.hosts.sshconnect import load_identities

    enc = tmp_path / "encrypted"
    enc.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(b"secret")))
    make_client_key(tmp_path / "plain")
    paths = [str(enc), str(tmp_path / "plain")]
    key, rest = load_identities(paths)
    assert key is not None and rest == [str(enc)]
    assert load_identities(paths)[0] is key  # cached
    assert load_identities([str(enc)]) == (None, [str(enc)])
