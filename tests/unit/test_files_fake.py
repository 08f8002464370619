"""Control flow of chmod and of downloads with FakeTransport (the real path: tests/integration)."""

from __future__ import annotations

import hashlib
import stat

import pytest

from opskit.errors import CommandFailed, UnsafeInputError
from opskit.files.chmod import change_mode
from opskit.files.modes import apply_mode, parse_mode
from opskit.files.transfer import Endpoint, copy
from opskit.hosts.local import LocalTransport
from opskit.testing.fake import FakeReply, FakeTransport


def _chmod_like_gnu(fake: FakeTransport):
    """An answer for ``chmod -- MODE PATH...`` that changes the fake's modes as chmod would."""

    def answer(argv, _stdin):
        rest = argv[argv.index("--") + 1 :]
        mode, paths = rest[0], rest[1:]
        changes = parse_mode(mode)
        for p in paths:
            st = fake.stat(p)
            if st is None:
                return FakeReply(stderr=f"chmod: cannot access '{p}': No such file or directory\n",
                                 exit_code=1)
            fake.modes[p] = apply_mode(changes, stat.S_IMODE(st.mode), is_dir=st.is_dir)
        return ""

    return answer


def test_change_mode_runs_one_argv_and_reads_modes_back():
    fake = FakeTransport("gpu1", files={"/srv/a b.sh": b"#!/bin/sh\n", "/srv/d/x": b""})
    fake.add(["chmod", "--", "u+x,go-w", "/srv/a b.sh", "/srv/d"], _chmod_like_gnu(fake))
    result = change_mode(fake, "u+x,go-w", ["/srv/a b.sh", "/srv/d"])
    assert [c[0] for c in fake.calls] == [("chmod", "--", "u+x,go-w", "/srv/a b.sh", "/srv/d")]
    assert [(p.path, p.octal, p.ls) for p in result.paths] == [
        ("/srv/a b.sh", "744", "-rwxr--r--"), ("/srv/d", "755", "drwxr-xr-x"),
    ]
    assert result.to_dict()["host"] == "gpu1"


def test_change_mode_failure_names_host_and_path():
    fake = FakeTransport("gpu1")
    fake.add(["chmod", "-R", "--", "700", "/nope"], _chmod_like_gnu(fake))
    with pytest.raises(CommandFailed) as info:
        change_mode(fake, "700", ["/nope"], recursive=True)
    assert "gpu1:" in str(info.value) and "No such file or directory" in str(info.value)
    assert info.value.hint


def test_change_mode_refuses_bad_input_before_running_anything():
    fake = FakeTransport("gpu1")
    with pytest.raises(UnsafeInputError):
        change_mode(fake, "755; reboot", ["/x"])
    with pytest.raises(UnsafeInputError):
        change_mode(fake, "755", ["-rf"])
    assert fake.calls == []


def test_download_file_and_folder_from_a_fake_host(tmp_path):
    data = {"/runs/r1/metrics.jsonl": b'{"loss": 1}\n', "/runs/r1/ckpt/last.pt": b"\x00" * 5000}
    fake = FakeTransport("gpu1", files=data)
    fake.modes["/runs/r1/ckpt/last.pt"] = 0o600
    one = copy(Endpoint(fake, "/runs/r1/metrics.jsonl"), Endpoint(LocalTransport(), str(tmp_path)))
    assert (tmp_path / "metrics.jsonl").read_bytes() == data["/runs/r1/metrics.jsonl"]
    assert one.source == "gpu1:/runs/r1/metrics.jsonl"
    copy(Endpoint(fake, "/runs/r1"), Endpoint(LocalTransport(), str(tmp_path / "r1")), recursive=True)
    got = tmp_path / "r1" / "ckpt" / "last.pt"
    assert hashlib.sha256(got.read_bytes()).hexdigest() == hashlib.sha256(b"\x00" * 5000).hexdigest()
    assert stat.S_IMODE(got.stat().st_mode) == 0o600
    assert fake.calls == []  # reads and sha256 only: no commands needed on the source


def test_hostile_host_names_never_reach_the_disk(tmp_path):
    fake = FakeTransport("evil", files={"/f/ok": b"1", "/f/bad\x1b[2Jname": b"2"})
    result = copy(Endpoint(fake, "/f"), Endpoint(LocalTransport(), str(tmp_path / "f")),
                  recursive=True)
    assert "control characters" in result.refused["bad\x1b[2Jname"]
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["ok"]
