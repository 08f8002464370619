"""scp: any name the filesystem allows is copied whole, alone or inside -r (field case
hosts/22); a name that cannot travel safely inside a folder is left out and named, the rest
copied, exit 1 (hosts/23); copies take the user's umask and never the source's setuid, setgid
or sticky bits unless --preserve-mode (security/07). Real files, the real CLI; the host of
security/07 is opskit's FakeTransport (its modes are what a hostile host reports)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from opskit.files.transfer import Endpoint, copy
from opskit.hosts.local import LocalTransport
from opskit.testing.cli import run_cli
from opskit.testing.fake import FakeTransport

NAMES = ["R&D notes.txt", "price $5.txt", 'say "hi".txt', "a;b|c`d`", "it's (1) [x] {y} *?"]


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inv.yaml").write_text("hosts: {}\n")
    (tmp_path / "ssh_config").write_text(
        "Host labbox\n  HostName 127.0.0.1\n  Port 9\n  UserKnownHostsFile /dev/null\n")
    monkeypatch.setenv("OPSKIT_INVENTORY", str(tmp_path / "inv.yaml"))
    monkeypatch.setenv("OPSKIT_SSH_CONFIG", str(tmp_path / "ssh_config"))
    return tmp_path


def test_names_with_shell_characters_are_copied_whole(here, capsys):  # hosts/22
    (here / "src").mkdir()
    (here / "dst").mkdir()
    for i, name in enumerate(NAMES):
        (here / "src" / name).write_bytes(b"x" * (i + 1))
    for name in NAMES:
        code, out, err = run_cli(capsys, "scp", f"src/{name}", "dst/")
        assert code == 0, err
        assert (here / "dst" / name).read_bytes() == (here / "src" / name).read_bytes()
    code, out, err = run_cli(capsys, "scp", "-r", "src", "dst2")
    assert code == 0 and sorted(os.listdir(here / "dst2")) == sorted(NAMES)
    # to a host: the name is accepted and the attempt reaches the network (nothing listens)
    code, out, err = run_cli(capsys, "scp", f"src/{NAMES[0]}", "labbox:data/")
    assert code == 1 and "connection refused" in err and "refusing" not in err


def test_a_newline_name_is_left_out_and_named_the_rest_copied(here, capsys):  # hosts/23
    (here / "run" / "ckpt").mkdir(parents=True)
    for i in (1, 2, 3):
        (here / "run" / "ckpt" / f"step{i}.pt").write_bytes(f"weights {i}".encode())
    (here / "run" / "notes\ndraft.txt").write_bytes(b"x")
    (here / "dst").mkdir()
    code, out, err = run_cli(capsys, "scp", "-r", "run", "dst/")
    assert code == 1
    assert "not copied 'notes\\ndraft.txt'" in err and "control characters" in err
    assert sorted(p.name for p in (here / "dst" / "run" / "ckpt").iterdir()) == [
        "step1.pt", "step2.pt", "step3.pt"]
    assert sorted(p.name for p in (here / "dst" / "run").iterdir()) == ["ckpt"]
    code, out, err = run_cli(capsys, "scp", "-r", "--json", "run", "dst3")
    refused = json.loads(out)["refused"]
    assert code == 1 and refused[0]["path"] == "notes\ndraft.txt"


@pytest.fixture
def hostile_host():
    host = FakeTransport("gpu1", files={"/srv/tools/helper": b"#!/bin/sh\necho helper\n",
                                        "/srv/tools/lib/data.bin": b"x" * 10})
    host.modes["/srv/tools/helper"] = 0o4777   # setuid + world-writable, as the host says
    host.modes["/srv/tools/lib"] = 0o1777      # a sticky world-writable folder
    return host


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o077, 0o022])
def test_copies_from_a_host_take_the_umask(tmp_path, hostile_host, umask):  # security/07
    local = LocalTransport()
    copy(Endpoint(hostile_host, "/srv/tools/helper"), Endpoint(local, str(tmp_path / "helper")),
         umask=umask)
    copy(Endpoint(hostile_host, "/srv/tools"), Endpoint(local, str(tmp_path / "tools")),
         recursive=True, umask=umask)
    assert mode(tmp_path / "helper") == 0o777 & ~umask
    assert mode(tmp_path / "tools" / "helper") == 0o777 & ~umask
    assert mode(tmp_path / "tools" / "lib") == 0o777 & ~umask
    for p in (tmp_path / "helper", tmp_path / "tools" / "helper", tmp_path / "tools" / "lib"):
        assert mode(p) & 0o7000 == 0


def test_preserve_mode_keeps_every_bit_as_cp_p(tmp_path, hostile_host):
    copy(Endpoint(hostile_host, "/srv/tools"), Endpoint(LocalTransport(), str(tmp_path / "t")),
         recursive=True, umask=0o077, preserve_mode=True)
    assert mode(tmp_path / "t" / "helper") == 0o4777 and mode(tmp_path / "t" / "lib") == 0o1777


def test_the_cli_uses_this_process_umask(tmp_path, capsys, monkeypatch):
    src = tmp_path / "s"
    src.write_bytes(b"x")
    os.chmod(src, 0o6777)
    old = os.umask(0o027)
    try:
        code, _, err = run_cli(capsys, "scp", str(src), str(tmp_path / "d"))
        assert code == 0 and mode(tmp_path / "d") == 0o750
        code, _, err = run_cli(capsys, "scp", "-p", str(src), str(tmp_path / "p"))
        assert code == 0 and mode(tmp_path / "p") == 0o6777 and "bits kept" in err
    finally:
        os.umask(old)
