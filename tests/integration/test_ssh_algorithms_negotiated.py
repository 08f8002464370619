"""Conformance: Ciphers / MACs / KexAlgorithms from the ssh config, against a real sshd (the
test bed's OpenSSH), with the real ``ssh -v`` beside opskit on the same config: both end up on
the same key exchange, cipher and MAC, or both fail to agree with the server; a list of which
paramiko implements nothing is refused by opskit before any SSH exchange, naming the line."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from opskit.errors import HostError
from opskit.hosts.hostkeycheck import KEX_ALIASES
from opskit.hosts.inventory import load_inventory
from opskit.hosts.ssh import SSHTransport
from opskit.testing.engine import require_tool

# name -> lines added to the host's block (first value wins, as in ssh)
CASES = {
    "explicit-all-three": "Ciphers aes256-ctr\nMACs hmac-sha2-512\nKexAlgorithms ecdh-sha2-nistp384",
    "caret-gcm": "Ciphers ^aes256-gcm@openssh.com\nKexAlgorithms ^diffie-hellman-group16-sha512",
    "minus-pattern": "Ciphers -chacha20*\nMACs -umac*\nKexAlgorithms -sntrup*,mlkem*",
    "etm-mac": "Ciphers aes128-ctr\nMACs hmac-sha2-256-etm@openssh.com\nKexAlgorithms curve25519-sha256",
    "dh-group14": "Ciphers aes192-ctr\nMACs -umac*\nKexAlgorithms diffie-hellman-group14-sha256",
    "server-refuses-cbc": "Ciphers aes128-cbc",
}
AEAD = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com")


@pytest.fixture(scope="module")
def host(ssh_testbed):
    require_tool("ssh", "openssh-client")
    return ssh_testbed.names[0]


def write_config(bed, host: str, extra: str, tmp: Path) -> Path:
    block = [b for b in bed.ssh_config_path.read_text().split("\n\n") if b.startswith(f"Host {host}\n")][0]
    cfg = tmp / "config"
    cfg.write_text(block.rstrip("\n") + "\n" + "".join(f"    {line}\n" for line in extra.splitlines()))
    return cfg


def ssh_agreed(cfg: Path, host: str) -> tuple[str, str, str] | str:
    """(kex, cipher, MAC) real ssh agreed on, or its error line."""
    res = subprocess.run(["ssh", "-v", "-F", str(cfg), "-o", "BatchMode=yes", host, "true"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    kex = re.search(r"kex: algorithm: (\S+)", res.stderr)
    enc = re.search(r"kex: client->server cipher: (\S+) MAC: (\S+)", res.stderr)
    if res.returncode != 0 or not (kex and enc):
        return res.stderr.strip().splitlines()[-1]
    mac = "<implicit>" if enc.group(1) in AEAD else enc.group(2)
    return KEX_ALIASES.get(kex.group(1), kex.group(1)), enc.group(1), mac


def opskit_agreed(cfg: Path, host: str, tmp: Path, monkeypatch) -> tuple[str, str, str] | str:
    import paramiko

    agreed: list[str] = []  # paramiko drops its kex engine once the exchange is done
    parse = paramiko.Transport._parse_kex_init

    def recording(self, m):
        parse(self, m)
        agreed.extend(n for n, c in self._kex_info.items() if c is type(self.kex_engine)
                      and n in self.get_security_options().kex)

    monkeypatch.setattr(paramiko.Transport, "_parse_kex_init", recording)
    inv = tmp / "inventory.yaml"
    inv.write_text("hosts: {}\n")
    spec = load_inventory(str(inv), ssh_config=str(cfg)).resolve(host)
    try:
        with SSHTransport(spec) as t:
            assert t.run(["true"]).exit_code == 0
            tr = t.client().get_transport()
            mac = "<implicit>" if tr.local_cipher in AEAD else tr.local_mac
            return agreed[0], tr.local_cipher, mac
    except HostError as exc:
        return f"error: {exc}"


@pytest.mark.parametrize("name", list(CASES))
def test_same_algorithms_as_openssh(ssh_testbed, host, tmp_path, name, monkeypatch):
    cfg = write_config(ssh_testbed, host, CASES[name], tmp_path)
    theirs = ssh_agreed(cfg, host)
    ours = opskit_agreed(cfg, host, tmp_path, monkeypatch)
    if isinstance(theirs, str):  # ssh and the server agree on nothing: neither may connect
        assert isinstance(ours, str) and "agree on no algorithm" in ours, (theirs, ours)
        assert "no matching cipher" in theirs, theirs
        return
    assert ours == theirs


def test_a_list_paramiko_cannot_offer_is_refused_before_any_exchange(ssh_testbed, host, tmp_path,
                                                                    monkeypatch):
    cfg = write_config(ssh_testbed, host, "Ciphers chacha20-poly1305@openssh.com", tmp_path)
    assert isinstance(ssh_agreed(cfg, host), tuple)  # ssh itself connects with it
    ours = opskit_agreed(cfg, host, tmp_path, monkeypatch)
    assert isinstance(ours, str) and f"Ciphers ({cfg}:" in ours
    assert "none of which opskit (paramiko) implements" in ours


def test_unset_lists_get_the_post_quantum_exchange_and_gcm(ssh_testbed, host, tmp_path, monkeypatch):
    """Nothing set: AES-GCM, and OpenSSH 9.9+'s first key exchange where the server has it
    (else curve25519, as here with the test hosts' OpenSSH 9.2); ssh 9.2 would take
    sntrup761x25519 and chacha20, which paramiko lacks."""
    cfg = write_config(ssh_testbed, host, "", tmp_path)
    res = subprocess.run(["ssh", "-v", "-F", str(cfg), "-o", "BatchMode=yes", host, "true"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    version = re.search(r"remote software version OpenSSH_(\d+)\.(\d+)", res.stderr)
    assert version, res.stderr[-500:]
    pq = (int(version.group(1)), int(version.group(2))) >= (9, 9)
    kex = "mlkem768x25519-sha256" if pq else "curve25519-sha256@libssh.org"
    ours = opskit_agreed(cfg, host, tmp_path, monkeypatch)
    assert ours == (kex, "aes128-gcm@openssh.com", "<implicit>")
