"""opskit scp against real sshd containers: bytes, sha256 and modes checked inside the container.

Faults: the SSH connection dies mid-transfer; the source changes during the copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from opskit.errors import ChecksumMismatch, TransferError
from opskit.files.transfer import PART_SUFFIX, Endpoint, copy
from opskit.hosts.local import LocalTransport
from opskit.hosts.ssh import SSHTransport

HOME = "/home/opskit"


def opskit(bed, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **bed.env(), **(env or {})}
    return subprocess.run([sys.executable, "-m", "opskit", *args], capture_output=True,
                          text=True, env=full_env, timeout=120)


def in_host(host, *argv: str) -> str:
    code, out = host.exec(list(argv), user="opskit")
    assert code == 0, f"{argv}: {out}"
    return out


def remote_sha(host, path: str) -> str:
    return in_host(host, "sha256sum", "--", path).split()[0]


def remote_mode(host, path: str) -> str:
    return in_host(host, "stat", "-c", "%a", "--", path).strip()


def leftovers(host, folder: str) -> str:
    code, out = host.exec(["find", folder, "-name", f"*{PART_SUFFIX}*"], user="opskit")
    return out.strip()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def rdir(ssh_testbed):
    """A fresh folder in the login user's home on both hosts (removed afterwards)."""
    name = f"scp-{secrets.token_hex(4)}"
    for h in ssh_testbed.hosts:
        in_host(h, "mkdir", "-p", f"{HOME}/{name}")
    yield name
    for h in ssh_testbed.hosts:
        h.exec(["rm", "-rf", f"{HOME}/{name}"])


@pytest.fixture
def local_tree(tmp_path: Path) -> Path:
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (src / "sub" / "data.bin").write_bytes(os.urandom(1_500_000))
    (src / "sub" / "empty").write_bytes(b"")
    os.chmod(src / "run.sh", 0o754)
    os.chmod(src / "sub", 0o750)
    return src


def test_upload_and_download_a_file_with_the_cli(ssh_testbed, rdir, local_tree, tmp_path):
    h1 = ssh_testbed.hosts[0]
    src = local_tree / "run.sh"
    up = opskit(ssh_testbed, "scp", "--json", str(src), f"{h1.name}:{rdir}/")
    assert up.returncode == 0, up.stderr
    data = json.loads(up.stdout)
    assert data["destination"] == f"{h1.name}:{rdir}/run.sh" and data["verified"] == "sha256"
    assert remote_sha(h1, f"{HOME}/{rdir}/run.sh") == sha(src) == data["files"][0]["sha256"]
    assert remote_mode(h1, f"{HOME}/{rdir}/run.sh") == "754"
    # ~/ means the login folder; download to a new local name
    down = opskit(ssh_testbed, "scp", f"{h1.name}:~/{rdir}/run.sh", str(tmp_path / "back.sh"))
    assert down.returncode == 0, down.stderr
    assert f"{sha(src)}  {tmp_path / 'back.sh'}" in down.stdout and "sha256 verified" in down.stdout
    assert (tmp_path / "back.sh").read_bytes() == src.read_bytes()
    assert oct((tmp_path / "back.sh").stat().st_mode & 0o7777) == "0o754"
    assert leftovers(h1, f"{HOME}/{rdir}") == "" and not list(tmp_path.glob(f"*{PART_SUFFIX}*"))


def test_folder_up_down_and_host_to_host(ssh_testbed, rdir, local_tree, tmp_path):
    h1, h2 = ssh_testbed.hosts
    up = opskit(ssh_testbed, "scp", "-r", str(local_tree), f"{h1.name}:{rdir}/tree")
    assert up.returncode == 0, up.stderr
    listing = in_host(h1, "sh", "-c", f"cd {HOME}/{rdir}/tree && find . -type f | sort | xargs sha256sum")
    want = {f"./{p.relative_to(local_tree)}": sha(p) for p in local_tree.rglob("*") if p.is_file()}
    got = {line.split()[1]: line.split()[0] for line in listing.splitlines()}
    assert got == want
    assert remote_mode(h1, f"{HOME}/{rdir}/tree/sub") == "750"
    # host to host is relayed through this machine
    relay = opskit(ssh_testbed, "scp", "-r", f"{h1.name}:{rdir}/tree", f"{h2.name}:{rdir}/")
    assert relay.returncode == 0, relay.stderr
    assert remote_sha(h2, f"{HOME}/{rdir}/tree/sub/data.bin") == want["./sub/data.bin"]
    # and back down from the second host
    down = opskit(ssh_testbed, "scp", "-r", f"{h2.name}:{rdir}/tree", str(tmp_path / "back"))
    assert down.returncode == 0, down.stderr
    for rel, digest in want.items():
        assert sha(tmp_path / "back" / rel) == digest
    assert (tmp_path / "back" / "sub").stat().st_mode & 0o777 == 0o750
    assert leftovers(h2, f"{HOME}/{rdir}") == ""


def test_bad_input_and_failures_are_clear(ssh_testbed, rdir, local_tree, tmp_path):
    h1 = ssh_testbed.hosts[0]
    cases = [
        ((f"{h1.name}:{rdir}/nope", str(tmp_path)), 2, f"source {h1.name}:{rdir}/nope does not exist"),
        ((str(local_tree / "run.sh"), f"{h1.name}:{rdir}/no/such/x"), 2,
         f"destination folder {h1.name}:{rdir}/no/such does not exist"),
        ((str(local_tree / "run.sh"), f"{h1.name}:/root/x"), 1, "permission denied"),
        ((f"{h1.name}:{rdir}", str(tmp_path)), 2, "add -r"),
        ((str(local_tree / "run.sh"), "nosuchhost:x"), 2, "unknown host 'nosuchhost'"),
        ((str(local_tree / "run.sh"), f"{h1.name}:-x"), 2, "could be read as an option"),
    ]
    for args, code, text in cases:
        res = opskit(ssh_testbed, "scp", *args)
        assert (res.returncode, text in res.stderr) == (code, True), (args, res.stderr)
    # an unreachable host (a closed port on loopback) fails within its timeout, naming it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    inv = tmp_path / "inv.yaml"
    inv.write_text(f"hosts:\n  deadhost:\n    hostname: 127.0.0.1\n    port: {closed_port}\n"
                   "    connect_timeout: 3\n")
    res = opskit(ssh_testbed, "scp", str(local_tree / "run.sh"), "deadhost:x",
                 env={"OPSKIT_INVENTORY": str(inv)})
    assert res.returncode == 1 and "error: deadhost: connection refused" in res.stderr, res.stderr


def test_unsafe_remote_file_names_are_left_out_the_rest_copied(ssh_testbed, rdir, tmp_path):
    """hosts/23 over SFTP: one name with a newline is named and left out, exit 1."""
    h1 = ssh_testbed.hosts[0]
    in_host(h1, "mkdir", f"{HOME}/{rdir}/evil")
    in_host(h1, "touch", f"{HOME}/{rdir}/evil/ok", f"{HOME}/{rdir}/evil/bad\nname",
            f"{HOME}/{rdir}/evil/R&D $5 \"q\"")
    res = opskit(ssh_testbed, "scp", "-r", f"{h1.name}:{rdir}/evil", str(tmp_path / "evil"))
    assert res.returncode == 1 and "not copied 'bad\\nname'" in res.stderr, res.stderr
    assert sorted(p.name for p in (tmp_path / "evil").iterdir()) == ['R&D $5 "q"', "ok"]


def test_copies_from_a_host_take_the_umask_not_its_special_bits(ssh_testbed, rdir, tmp_path):
    """security/07 over SFTP: 4777 and 6755 files and a 1777 folder arrive without setuid,
    setgid, sticky or group/other bits under umask 077; --preserve-mode keeps them (cp -p)."""
    h1 = ssh_testbed.hosts[0]
    kit = f"{HOME}/{rdir}/kit"
    in_host(h1, "mkdir", "-p", f"{kit}/bin")
    in_host(h1, "sh", "-c", f"echo x > {kit}/helper && echo y > {kit}/bin/run && "
            f"chmod 4777 {kit}/helper && chmod 6755 {kit}/bin/run && chmod 1777 {kit}")
    script = ("import os, sys; os.umask(0o077); from opskit.cli.main import main; "
              "sys.argv = ['opskit'] + sys.argv[1:]; main()")
    for args, dest in ((["scp", f"{h1.name}:{kit}/helper"], "helper"),
                       (["scp", "-r", f"{h1.name}:{kit}"], "kit")):
        res = subprocess.run([sys.executable, "-c", script, *args, str(tmp_path / dest)],
                             capture_output=True, text=True, env={**os.environ, **ssh_testbed.env()},
                             timeout=120)
        assert res.returncode == 0, res.stderr
    modes = {p: os.stat(tmp_path / p).st_mode & 0o7777 for p in ("helper", "kit/bin/run", "kit")}
    assert modes == {"helper": 0o700, "kit/bin/run": 0o700, "kit": 0o700}
    res = opskit(ssh_testbed, "scp", "--preserve-mode", f"{h1.name}:{kit}/helper",
                 str(tmp_path / "kept"))
    assert res.returncode == 0 and os.stat(tmp_path / "kept").st_mode & 0o7777 == 0o4777
    assert "setuid/setgid/sticky bits kept" in res.stderr


# -- faults over a real connection ---------------------------------------------------------------
def _killer(t: SSHTransport, after: int):
    """A progress callback that cuts the TCP connection once ``after`` bytes have moved."""
    moved = 0

    def on_bytes(n: int) -> None:
        nonlocal moved
        moved += n
        if moved >= after:
            t.client().get_transport().sock.shutdown(socket.SHUT_RDWR)

    return on_bytes


def _upload_over_a_good_copy(ssh_testbed, rdir, tmp_path) -> tuple:
    """(host, spec, big local file, final remote path): 6 MB to send over a file saying good."""
    h1 = ssh_testbed.hosts[0]
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6_000_000))
    final = f"{rdir}/big.bin"
    in_host(h1, "sh", "-c", f"printf good > {HOME}/{final}")
    return h1, ssh_testbed.specs([h1.name])[0], big, final


def test_connection_dies_mid_upload(ssh_testbed, rdir, tmp_path):
    h1, spec, big, final = _upload_over_a_good_copy(ssh_testbed, rdir, tmp_path)
    good = remote_sha(h1, f"{HOME}/{final}")
    with SSHTransport(spec) as t:
        with pytest.raises((TransferError,)) as info:
            copy(Endpoint(LocalTransport(), str(big)), Endpoint(t, final), on_bytes=_killer(t, 1_000_000))
        assert "connection lost" in str(info.value), str(info.value)
        assert f"nothing was written at {h1.name}:{final}" in str(info.value)
        assert remote_sha(h1, f"{HOME}/{final}") == good  # the good copy is untouched
        assert leftovers(h1, f"{HOME}/{rdir}") == ""  # temp removed over a fresh connection
        result = copy(Endpoint(LocalTransport(), str(big)), Endpoint(t, final))  # rerun works
    assert remote_sha(h1, f"{HOME}/{final}") == sha(big) == result.files[0].sha256


def test_connection_dies_mid_download(ssh_testbed, rdir, tmp_path):
    h1 = ssh_testbed.hosts[0]
    spec = ssh_testbed.specs([h1.name])[0]
    in_host(h1, "sh", "-c", f"head -c 6000000 /dev/urandom > {HOME}/{rdir}/big.bin")
    final = tmp_path / "big.bin"
    final.write_bytes(b"good")
    with SSHTransport(spec) as t:
        with pytest.raises(TransferError) as info:
            copy(Endpoint(t, f"{rdir}/big.bin"), Endpoint(LocalTransport(), str(final)),
                 on_bytes=_killer(t, 1_000_000))
        assert "connection lost" in str(info.value), str(info.value)
        assert f"nothing was written at {final}" in str(info.value)
        assert final.read_bytes() == b"good" and sorted(p.name for p in tmp_path.iterdir()) == ["big.bin"]
        copy(Endpoint(t, f"{rdir}/big.bin"), Endpoint(LocalTransport(), str(final)))
    assert sha(final) == remote_sha(h1, f"{HOME}/{rdir}/big.bin")


def test_source_changing_during_download_is_a_checksum_mismatch(ssh_testbed, rdir, tmp_path):
    h1 = ssh_testbed.hosts[0]
    spec = ssh_testbed.specs([h1.name])[0]
    in_host(h1, "sh", "-c", f"head -c 2000000 /dev/urandom > {HOME}/{rdir}/moving.bin")
    final = tmp_path / "moving.bin"
    final.write_bytes(b"good")
    changed = []

    def scribble(_n: int) -> None:
        if not changed:  # rewrite the first bytes, already sent, on the host
            in_host(h1, "sh", "-c", f"printf XXXX | dd of={HOME}/{rdir}/moving.bin conv=notrunc status=none")
            changed.append(True)

    with SSHTransport(spec) as t, pytest.raises(ChecksumMismatch) as info:
        copy(Endpoint(t, f"{rdir}/moving.bin"), Endpoint(LocalTransport(), str(final)), on_bytes=scribble)
    assert "changed while it was being copied" in str(info.value)
    assert final.read_bytes() == b"good" and sorted(p.name for p in tmp_path.iterdir()) == ["moving.bin"]


def test_sftp_server_killed_on_the_host_mid_upload(ssh_testbed, rdir, tmp_path):
    """The host's side dies (its sftp-server is killed by pid); the SSH connection survives."""
    h1, spec, big, final = _upload_over_a_good_copy(ssh_testbed, rdir, tmp_path)
    killed = []

    def kill_server(_n: int) -> None:
        if not killed:  # the newest sftp-server is ours: this transport opened it just now
            code, out = h1.exec(["sh", "-c", "kill -9 $(pgrep -n -u opskit -x sftp-server) && echo ok"])
            killed.append(out.strip())

    with SSHTransport(spec) as t:
        with pytest.raises(TransferError) as info:
            copy(Endpoint(LocalTransport(), str(big)), Endpoint(t, final), on_bytes=kill_server)
        assert killed == ["ok"] and "nothing was written" in str(info.value), str(info.value)
        assert in_host(h1, "cat", f"{HOME}/{final}") == "good"
        assert leftovers(h1, f"{HOME}/{rdir}") == ""
        copy(Endpoint(LocalTransport(), str(big)), Endpoint(t, final))
    assert remote_sha(h1, f"{HOME}/{final}") == sha(big)
