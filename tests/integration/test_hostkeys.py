"""Host keys against real sshd: unknown refused, `opskit hosts trust` pins, changed refused."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from opskit.errors import HostKeyError
from opskit.hosts.ssh import SSHTransport
from opskit.testing.sshd import make_client_key, restart_with_new_host_keys, start_ssh_hosts


def fp(key_line: str) -> str:
    blob = base64.b64decode(key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@pytest.fixture(scope="module")
def bed(docker_client, base_image, tmp_path_factory):
    bed = start_ssh_hosts(docker_client, 1, name_prefix="opskit-hk",
                          workdir=tmp_path_factory.mktemp("hostkeys"), base_image=base_image)
    yield bed
    bed.close()


def opskit(bed, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSKIT_")}
    env.update(bed.env())
    return subprocess.run([sys.executable, "-m", "opskit", *args], capture_output=True,
                          text=True, env=env, input=input, timeout=60)


def test_host_keys_flow(bed) -> None:
    host = bed.hosts[0]
    kh = bed.known_hosts_path
    other_pub = make_client_key(bed.workdir / "other_key").split()[:2]
    other = f"[10.0.0.9]:2222 {' '.join(other_pub)}\n"
    kh.write_text("# kept comment\n" + other)
    before = kh.read_bytes()
    before_mode = kh.stat().st_mode & 0o777
    fingerprints = {line.split()[0]: fp(line) for line in host.host_keys}

    # 1. unknown key: refused with its fingerprint and the trust command; nothing pinned
    with pytest.raises(HostKeyError) as info, SSHTransport(bed.specs()[0]) as t:
        t.run(["true"])
    msg = str(info.value)
    assert "unknown host key" in msg and f"[127.0.0.1]:{host.port}" in msg
    assert any(f in msg for f in fingerprints.values())
    assert f"opskit hosts trust {host.name}" in info.value.hint
    assert kh.read_bytes() == before
    res = opskit(bed, "df", "--host", host.name)  # the CLI says it too
    assert res.returncode == 1 and "unknown host key" in res.stderr, res.stderr
    assert f"opskit hosts trust {host.name}" in res.stderr

    # 2. trust with a wrong fingerprint, or answering no: refused, nothing pinned
    res = opskit(bed, "hosts", "trust", host.name, "--fingerprint", "SHA256:" + "A" * 43)
    assert res.returncode == 1 and "nothing was pinned" in res.stderr
    res = opskit(bed, "hosts", "trust", host.name, input="n\n")
    assert res.returncode == 2 and "fingerprint: SHA256:" in res.stderr
    assert kh.read_bytes() == before

    # 3. trust with the right fingerprint: pinned, old lines kept, commands work
    shown = res.stderr.split("fingerprint: ")[1].split()[0]
    assert shown in fingerprints.values()
    res = opskit(bed, "hosts", "trust", host.name, "--fingerprint", shown, "--json")
    assert res.returncode == 0, res.stderr
    text = kh.read_text()
    assert text.startswith("# kept comment\n" + other)
    assert f"[127.0.0.1]:{host.port} " in text.splitlines()[-1]
    assert kh.stat().st_mode & 0o777 == before_mode  # the file's mode is kept
    with SSHTransport(bed.specs()[0]) as t:
        assert t.run(["id", "-un"]).stdout == "opskit\n"
    res = opskit(bed, "hosts", "trust", host.name, "--yes")
    assert res.returncode == 0 and "already pinned" in res.stdout
    if shutil.which("ssh"):  # OpenSSH accepts the line opskit wrote
        ok = subprocess.run(["ssh", "-F", str(bed.ssh_config_path), "-o", "BatchMode=yes",
                             host.name, "true"], capture_output=True, timeout=30)
        assert ok.returncode == 0, ok.stderr

    # 4. the host gets new keys (reinstalled, or someone in the middle): always refused
    pinned = kh.read_bytes()
    restart_with_new_host_keys(bed, host)
    with pytest.raises(HostKeyError) as info, SSHTransport(bed.specs()[0]) as t:
        t.run(["true"])
    assert "HOST KEY CHANGED" in str(info.value) and "ssh-keygen -R" in info.value.hint
    for args in (["--yes"], ["--fingerprint", fp(host.host_keys[0])]):
        res = opskit(bed, "hosts", "trust", host.name, *args)
        assert res.returncode == 1 and "HOST KEY CHANGED" in res.stderr, res.stderr
        assert "ssh-keygen -R" in res.stderr
    assert kh.read_bytes() == pinned


def test_broken_lines_skipped_and_revoked_key_refused(bed) -> None:
    host = bed.hosts[0]
    kh = bed.known_hosts_path
    pinned = "\n".join(host.known_hosts_lines())
    kh.write_text("garbage line\n[x]:1 ssh-ed25519 !!notbase64!!\n" + pinned + "\n")
    with SSHTransport(bed.specs()[0]) as t:  # OpenSSH skips broken lines; so do we
        assert t.run(["true"]).ok
    revoked = "".join(f"@revoked * {key}\n" for key in host.host_keys)
    kh.write_text(revoked + pinned + "\n")
    before = kh.read_bytes()
    with pytest.raises(HostKeyError, match="@revoked"), SSHTransport(bed.specs()[0]) as t:
        t.run(["true"])
    kh.write_text(revoked)
    res = opskit(bed, "hosts", "trust", host.name, "--yes")
    assert res.returncode == 1 and "@revoked" in res.stderr
    assert kh.read_bytes() == revoked.encode()
    kh.write_bytes(before)
