"""Host certificates: real sshd (the SSH test host, with HostCertificate set) and real
``ssh -o BatchMode=yes -o StrictHostKeyChecking=yes`` against opskit, same known_hosts, same
accept/refuse. A certificate ssh does not accept (unknown CA, expired, wrong principal, a user
certificate) falls back to the plain key inside it, as in ssh. ~30 s (one container).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from opskit.errors import HostError, HostKeyError
from opskit.hosts.inventory import load_inventory
from opskit.hosts.ssh import SSHTransport
from opskit.testing.engine import require_tool
from opskit.testing.keyserver import make_host_key
from opskit.testing.sshd import handshake_host_key, start_ssh_hosts

A, R = "accept", "refuse"
CERT = "/etc/ssh/ssh_host_ed25519_key-cert.pub"
# variant -> ssh-keygen options for signing the host's ed25519 key
VARIANTS = {
    "valid": ["-h", "-n", "127.0.0.1"],
    "expired": ["-h", "-n", "127.0.0.1", "-V", "20200101:20200102"],
    "other-principal": ["-h", "-n", "other.example"],
    "no-principals": ["-h"],
    "user-cert": ["-n", "127.0.0.1"],
}
# (variant, known_hosts, extra config, expected); {CA} the CA, {CA2} another CA, {HK} the host
# key, {H} [127.0.0.1]:PORT
CASES = {
    "ca-exact": ("valid", "@cert-authority {H} {CA}", "", A),
    "ca-star": ("valid", "@cert-authority * {CA}", "", A),
    "ca-other-host": ("valid", "@cert-authority other.example {CA}", "", R),
    "ca-other-ca": ("valid", "@cert-authority * {CA2}", "", R),
    "ca-revoked": ("valid", "@cert-authority * {CA}\n@revoked * {CA}", "", R),
    "host-key-revoked": ("valid", "@cert-authority * {CA}\n@revoked * {HK}", "", R),
    "ca-bare-name": ("valid", "@cert-authority 127.0.0.1 {CA}", "", A),
    "other-ca-plain-pinned": ("valid", "@cert-authority * {CA2}\n{H} {HK}", "", A),
    "no-ca-plain-pinned": ("valid", "{H} {HK}", "", A),
    "alias-not-principal": ("valid", "@cert-authority * {CA}", "HostKeyAlias myalias", R),
    "expired": ("expired", "@cert-authority * {CA}", "", R),
    "expired-plain-pinned": ("expired", "@cert-authority * {CA}\n{H} {HK}", "", A),
    "wrong-principal": ("other-principal", "@cert-authority * {CA}", "", R),
    "no-principals": ("no-principals", "@cert-authority * {CA}", "", A),
    "user-cert": ("user-cert", "@cert-authority * {CA}", "", R),
}


@pytest.fixture(scope="module")
def certbed(docker_client, base_image, tmp_path_factory):
    require_tool("ssh", "openssh-client")
    work = tmp_path_factory.mktemp("hostcerts")
    bed = start_ssh_hosts(docker_client, 1, name_prefix="opskit-hc", workdir=work,
                          base_image=base_image)
    state = {"bed": bed, "work": work, "variant": None,
             "CA": make_host_key(work / "ca"), "CA2": make_host_key(work / "ca2")}
    host = bed.hosts[0]
    code, out = host.exec(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
    assert code == 0, out
    (work / "hk.pub").write_text(out)
    state["HK"] = " ".join(out.split()[:2])
    code, out = host.exec(["sh", "-c", f"echo 'HostCertificate {CERT}' >> /etc/ssh/sshd_config"])
    assert code == 0, out
    yield state
    bed.close()


def _install(state: dict, variant: str) -> None:
    """Sign the host key as ``variant`` says, put the certificate in place, reload sshd."""
    if state["variant"] == variant:
        return
    work, host = state["work"], state["bed"].hosts[0]
    (work / "hk-cert.pub").unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-s", str(work / "ca"), "-I", variant,
                    *VARIANTS[variant], str(work / "hk.pub")], check=True, capture_output=True)
    cert = (work / "hk-cert.pub").read_text().strip()
    code, out = host.exec(["sh", "-c", f"printf '%s\\n' '{cert}' > {CERT} && kill -HUP 1"])
    assert code == 0, out
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # sshd re-executes itself on SIGHUP
        time.sleep(0.3)
        try:
            handshake_host_key(host.port)
            break
        except Exception:  # noqa: BLE001 - not listening again yet
            continue
    state["variant"] = variant


def _config(state: dict, tmp: Path, known: str, extra: str) -> Path:
    host = state["bed"].hosts[0]
    name = f"[127.0.0.1]:{host.port}"
    text = (known.replace("{H}", name).replace("{CA2}", state["CA2"]).replace("{CA}", state["CA"])
            .replace("{HK}", state["HK"]))
    (tmp / "kh").write_text(text + "\n")
    cfg = tmp / "config"
    cfg.write_text(f"Host certbox\n  HostName 127.0.0.1\n  Port {host.port}\n  User opskit\n"
                   f"  IdentityFile {state['bed'].key_path}\n  IdentitiesOnly yes\n"
                   f"  UserKnownHostsFile {tmp}/kh\n  GlobalKnownHostsFile /dev/null\n"
                   + (f"  {extra}\n" if extra else ""))
    return cfg


def _ssh(cfg: Path) -> str:
    res = subprocess.run(["ssh", "-F", str(cfg), "-o", "BatchMode=yes", "-o",
                          "StrictHostKeyChecking=yes", "certbox", "true"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    if res.returncode == 0:
        return A
    assert "Host key verification failed" in res.stderr, res.stderr
    return R


def _opskit(cfg: Path, tmp: Path) -> tuple[str, str]:
    (tmp / "inv.yaml").write_text("")
    spec = load_inventory(str(tmp / "inv.yaml"), str(cfg)).resolve("certbox")
    try:
        with SSHTransport(spec) as t:
            t.run(["true"], check=True)
    except HostKeyError as exc:
        return R, str(exc)
    except HostError as exc:
        raise AssertionError(f"not a host-key decision: {exc}") from exc
    return A, ""


@pytest.mark.parametrize("name", sorted(CASES, key=lambda n: CASES[n][0]))
def test_host_certificates_like_openssh(certbed, tmp_path: Path, name: str) -> None:
    variant, known, extra, expected = CASES[name]
    _install(certbed, variant)
    cfg = _config(certbed, tmp_path, known, extra)
    theirs = _ssh(cfg)
    ours, message = _opskit(cfg, tmp_path)
    assert theirs == expected, f"the case's expectation is wrong: ssh says {theirs}"
    assert ours == theirs, message
