"""known_hosts parsing and the host-key decision (OpenSSH's rules), and `hosts trust` writes:
broken lines named and skipped, patterns/hashes/markers, a symlinked file kept a symlink
(field case security/08), a device refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import paramiko
import pytest

from opskit.errors import HostKeyError
from opskit.hosts import hostkeys
from opskit.hosts import knownhosts as kh
from opskit.hosts.spec import HostSpec
from opskit.testing.sshd import make_client_key


def _pub(tmp: Path, name: str) -> str:
    return " ".join(make_client_key(tmp / name).split()[:2])


def _key(tmp: Path, name: str) -> paramiko.PKey:
    make_client_key(tmp / name)
    return paramiko.Ed25519Key.from_private_key_file(str(tmp / name))


def test_read_known_hosts_skips_and_names_bad_lines(tmp_path: Path) -> None:
    k1, k2 = _pub(tmp_path, "k1"), _pub(tmp_path, "k2")
    path = tmp_path / "known_hosts"
    path.write_text(
        "# comment\n\n"
        f"[127.0.0.1]:2222 {k1}\n"
        "broken\n"
        "host ssh-ed25519 %%%notbase64\n"
        f"host ssh-rsa {k1.split()[1]}\n"
        f"@revoked * {k2}\n"
        f"@cert-authority *.example {k2}\n"
        f"@bogus * {k2}\n"
        f"a.example,b.example {k2}\n"
    )
    known = kh.read_known_hosts([str(path), str(tmp_path / "missing")])
    assert [e.where for e in known.for_host("[127.0.0.1]:2222") if not e.marker] == [f"{path}:3"]
    assert known.for_host("B.EXAMPLE")
    assert not [e for e in known.for_host("127.0.0.1") if not e.marker]
    assert [s.split(":")[1] for s in known.skipped] == ["4", "5", "6", "9"]
    assert "does not match the key data" in known.skipped[2]


def test_decide_patterns_hashes_and_markers(tmp_path: Path) -> None:
    key, other = _key(tmp_path, "a"), _key(tmp_path, "b")
    line = f"ssh-ed25519 {key.get_base64()}"
    name = "[10.0.0.5]:2222"
    salt = b"s" * 20
    import base64
    import hashlib
    import hmac

    digest = base64.b64encode(hmac.new(salt, name.encode(), hashlib.sha1).digest()).decode()
    hashed = f"|1|{base64.b64encode(salt).decode()}|{digest}"
    cases = {
        f"[10.0.0.*]:2222 {line}": kh.OK,
        f"[10.0.0.*]:2222,!{name} {line}": kh.NEW,
        f"{hashed} {line}": kh.OK,
        f"{name} ssh-ed25519 {other.get_base64()}\n{name} {line}": kh.OK,
        f"{name} ssh-ed25519 {other.get_base64()}": kh.CHANGED,
        f"@revoked * {line}\n{name} {line}": kh.REVOKED,
        f"@revoked elsewhere {line}\n{name} {line}": kh.OK,
        f"@cert-authority * {line}": kh.NEW,
    }
    for i, (text, want) in enumerate(cases.items()):
        path = tmp_path / f"kh{i}"
        path.write_text(text + "\n")
        got = kh.decide(kh.read_known_hosts([str(path)]), name, key.asbytes())
        assert got.status == want, text
    ca = kh.decide(kh.read_known_hosts([str(path)]), name, key.asbytes())
    assert ca.ca_lines == (f"{path}:1",)


def _spec(files: list[Path], **kw) -> HostSpec:
    return HostSpec(name="gpu1", hostname="192.0.2.5", known_hosts=tuple(map(str, files)), **kw)


def test_trust_writes_through_a_symlink_and_keeps_it(tmp_path: Path) -> None:
    """Field case security/08: a symlinked known_hosts stays a symlink; the target gets the
    line and keeps its mode."""
    real = tmp_path / "dotfiles" / "known_hosts"
    real.parent.mkdir()
    real.write_text(f"other.example {_pub(tmp_path, 'o')}\n")
    real.chmod(0o640)
    link = tmp_path / "ssh" / "known_hosts"
    link.parent.mkdir()
    os.symlink(real, link)
    key = _key(tmp_path, "hk")
    spec = _spec([link])
    written = hostkeys.trust(spec, hostkeys.ScannedKey("gpu1", "192.0.2.5", key))
    assert written == str(link) and link.is_symlink()
    assert len(real.read_text().splitlines()) == 2 and stat.S_IMODE(real.stat().st_mode) == 0o640
    assert hostkeys.check_not_changed(spec, hostkeys.ScannedKey("gpu1", "192.0.2.5", key))


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_trust_refuses_a_device_and_changes_nothing(tmp_path: Path) -> None:
    """Field case security/08: 'UserKnownHostsFile /dev/null' (a device stands in for it)."""
    dev = tmp_path / "null"
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    link = tmp_path / "via-link"
    os.symlink(dev, link)
    key = _key(tmp_path, "hk")
    for path in (dev, link):
        with pytest.raises(HostKeyError, match="not a regular file"):
            hostkeys.trust(_spec([path]), hostkeys.ScannedKey("gpu1", "192.0.2.5", key))
        assert stat.S_ISCHR(dev.stat().st_mode)


def test_trust_refuses_a_changed_or_revoked_key(tmp_path: Path) -> None:
    key, other = _key(tmp_path, "a"), _key(tmp_path, "b")
    path = tmp_path / "known_hosts"
    path.write_text(f"192.0.2.5 ssh-ed25519 {other.get_base64()}\n")
    with pytest.raises(HostKeyError, match="HOST KEY CHANGED"):
        hostkeys.trust(_spec([path]), hostkeys.ScannedKey("gpu1", "192.0.2.5", key))
    path.write_text(f"@revoked * ssh-ed25519 {key.get_base64()}\n")
    with pytest.raises(HostKeyError, match="REVOKED"):
        hostkeys.trust(_spec([path]), hostkeys.ScannedKey("gpu1", "192.0.2.5", key))
    assert path.read_text().count("\n") == 1


def test_trust_writes_the_first_user_file_under_the_alias(tmp_path: Path) -> None:
    key = _key(tmp_path, "hk")
    first, second = tmp_path / "a" / "kh", tmp_path / "kh2"
    spec = _spec([first, second], hostkey_alias="myalias", port=2222)
    scanned = hostkeys.ScannedKey("gpu1", kh.lookup_name(spec), key)
    hostkeys.trust(spec, scanned)
    assert first.read_text().startswith("myalias ssh-ed25519 ")
    assert stat.S_IMODE(first.stat().st_mode) == 0o600 and not second.exists()


def test_cache_reused_until_the_file_changes(tmp_path: Path) -> None:
    k1 = _pub(tmp_path, "k1")
    path = tmp_path / "known_hosts"
    path.write_text(f"h1 {k1}\n")
    first = kh.cached_known_hosts([str(path)])
    assert kh.cached_known_hosts([str(path)]) is first
    with path.open("a") as fh:
        fh.write(f"h2 {k1}\n")
    second = kh.cached_known_hosts([str(path)])
    assert second is not first and second.for_host("h2")


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


def test_trust_hashes_the_name_with_hashknownhosts(tmp_path: Path) -> None:
    key = _key(tmp_path, "hk")
    path = tmp_path / "kh"
    spec = _spec([path], hash_known_hosts=True, port=2222)
    hostkeys.trust(spec, hostkeys.ScannedKey("gpu1", kh.lookup_name(spec), key))
    text = path.read_text()
    assert text.startswith("|1|") and "192.0.2.5" not in text
    assert hostkeys.check_not_changed(spec, hostkeys.ScannedKey("gpu1", "x", key))


def test_checkhostip_refuses_an_address_entry_with_another_key(tmp_path: Path) -> None:
    """CheckHostIP yes (direct, non-loopback): the address's own line must not hold another
    key; loopback and jump/proxy connections are exempt, as in ssh."""
    from opskit.hosts import hostkeycheck

    key, other = _key(tmp_path, "a"), _key(tmp_path, "b")
    path = tmp_path / "kh"
    path.write_text(f"gpu.example ssh-ed25519 {key.get_base64()}\n"
                    f"192.0.2.7 ssh-ed25519 {other.get_base64()}\n")
    spec = HostSpec(name="gpu", hostname="gpu.example", known_hosts=(str(path),),
                    check_host_ip=True)
    with pytest.raises(HostKeyError, match="differs from the key for its address 192.0.2.7"):
        hostkeycheck.check_key(spec, key, "192.0.2.7")
    assert hostkeycheck.check_key(spec, key, "127.0.0.1").status == kh.OK
    plain = HostSpec(name="gpu", hostname="gpu.example", known_hosts=(str(path),))
    assert hostkeycheck.check_key(plain, key, "192.0.2.7").status == kh.OK


def test_hostkeyalgorithms_paramiko_cannot_verify_are_refused(tmp_path: Path) -> None:
    from opskit.errors import HostError
    from opskit.hosts import hostkeycheck

    known = kh.KnownHosts()
    only_sk = HostSpec(name="c", hostname="h", hostkey_algorithms_set=True,
                       hostkey_algorithms=("sk-ssh-ed25519@openssh.com", "ssh-dss"),
                       sources={"hostkey_algorithms": "cfg:3"})
    with pytest.raises(HostError, match=r"HostKeyAlgorithms \(cfg:3\).*can verify none"):
        hostkeycheck.offered_algorithms(only_sk, known, ["ssh-ed25519"])
    certs = HostSpec(name="c", hostname="h", hostkey_algorithms_set=True,
                     hostkey_algorithms=("ssh-ed25519-cert-v01@openssh.com",))
    assert hostkeycheck.offered_algorithms(certs, known, []) == ["ssh-ed25519-cert-v01@openssh.com"]
    mixed = HostSpec(name="c", hostname="h", hostkey_algorithms_set=True,
                     hostkey_algorithms=("sk-ssh-ed25519@openssh.com", "rsa-sha2-256", "ssh-ed25519"))
    assert hostkeycheck.offered_algorithms(mixed, known, []) == ["rsa-sha2-256", "ssh-ed25519"]
