"""Ciphers / MACs / KexAlgorithms from the ssh config -> what opskit offers (paramiko's
SecurityOptions). The lists themselves are compared with the real ``ssh -G`` in
test_sshconfig_conformance.py; what a real sshd then negotiates, with real ``ssh -v`` beside
it, in tests/integration/test_ssh_algorithms_negotiated.py."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from opskit.errors import ConfigError, HostError
from opskit.hosts.hostkeycheck import ALGORITHM_FIELDS, offered_list
from opskit.hosts.inventory import load_inventory

PARAMIKO = {"ciphers": list(paramiko.Transport._preferred_ciphers),
            "macs": list(paramiko.Transport._preferred_macs),
            "kexalgorithms": list(paramiko.Transport._preferred_kex)}
WEAK = {"3des-cbc", "aes128-cbc", "aes192-cbc", "aes256-cbc", "hmac-md5", "hmac-md5-96",
        "hmac-sha1-96"}


def spec_for(tmp_path: Path, lines: str = ""):
    cfg = tmp_path / "config"
    cfg.write_text(f"Host gpu1\n  HostName 10.0.0.1\n{lines}")
    inv = tmp_path / "inv.yaml"
    inv.write_text("hosts: {}\n")
    return load_inventory(str(inv), ssh_config=str(cfg)).resolve("gpu1")


def offered(spec) -> dict[str, list[str]]:
    return {k: offered_list(spec, k, PARAMIKO[k]) for k in ALGORITHM_FIELDS}


def test_unset_offers_what_ssh_would_that_paramiko_implements_gcm_first(tmp_path):
    got = offered(spec_for(tmp_path))
    assert got["ciphers"][:2] == ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]
    assert set(got["ciphers"]) == {"aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
                                   "aes128-ctr", "aes192-ctr", "aes256-ctr"}
    assert not WEAK & {n for names in got.values() for n in names}  # paramiko alone offers these
    assert "curve25519-sha256@libssh.org" in got["kexalgorithms"]  # ssh's curve25519-sha256
    if "mlkem768x25519-sha256" in PARAMIKO["kexalgorithms"]:  # OpenSSH 9.9's first, kept first
        assert got["kexalgorithms"][:2] == ["mlkem768x25519-sha256", "curve25519-sha256@libssh.org"]
    assert got["macs"][:2] == ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com"]


def test_a_set_list_is_offered_in_its_own_order(tmp_path):
    spec = spec_for(tmp_path, "  Ciphers aes256-ctr,aes128-gcm@openssh.com\n  MACs +hmac-md5\n"
                              "  KexAlgorithms ^ecdh-sha2-nistp384\n")
    got = offered(spec)
    assert got["ciphers"] == ["aes256-ctr", "aes128-gcm@openssh.com"]  # not GCM first: the user's
    assert got["macs"][-1] == "hmac-md5"  # added as with ssh
    assert got["kexalgorithms"][0] == "ecdh-sha2-nistp384"
    assert "curve25519-sha256@libssh.org" in got["kexalgorithms"]


def test_removed_names_are_not_offered(tmp_path):
    got = offered(spec_for(tmp_path, "  Ciphers -*gcm*\n  KexAlgorithms -curve25519*,sntrup*\n"))
    assert got["ciphers"] == ["aes128-ctr", "aes192-ctr", "aes256-ctr"]
    assert not any(k.startswith("curve25519") for k in got["kexalgorithms"])


@pytest.mark.parametrize(("lines", "said"), [
    ("  Ciphers chacha20-poly1305@openssh.com\n",
     "Ciphers ({cfg}:3) allows only chacha20-poly1305@openssh.com, none of which opskit (paramiko) implements"),
    ("  KexAlgorithms sntrup761x25519-sha512@openssh.com\n", "KexAlgorithms ({cfg}:3) allows only"),
    ("  MACs umac-64-etm@openssh.com,umac-128@openssh.com\n", "MACs ({cfg}:3) allows only umac-64"),
    ("  Ciphers -*\n", "Ciphers ({cfg}:3) removes every name"),
])
def test_a_list_paramiko_cannot_offer_is_refused_naming_the_line(tmp_path, lines, said):
    spec = spec_for(tmp_path, lines)
    with pytest.raises(HostError) as err:
        offered(spec)
    assert said.format(cfg=tmp_path / "config") in err.value.message
    assert "for this host (e.g." in (err.value.hint or "") and "gpu1" in str(err.value)


def test_a_bad_name_is_refused_where_ssh_refuses_it(tmp_path):
    with pytest.raises(ConfigError, match=r"config:3: Bad SSH2 cipher spec 'aes\*'"):
        spec_for(tmp_path, "  Ciphers aes*\n")
