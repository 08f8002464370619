"""The verified copy's control flow on this machine: local transports, some with faults injected.

The same code path runs over SSH in tests/integration/test_scp.py.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from opskit.errors import ChecksumMismatch, TransferError, UsageError
from opskit.files.transfer import PART_SUFFIX, Endpoint, copy, plan_copy
from opskit.hosts.local import LocalTransport


class _FailingWriter:
    """A file that dies like a dropped connection after ``limit`` bytes."""

    def __init__(self, fh, limit: int):
        self._fh, self._left = fh, limit

    def write(self, data: bytes) -> int:
        if len(data) > self._left:
            self._fh.write(data[: self._left])
            self._left = 0
            raise OSError("Socket is closed")
        self._left -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


class FaultyTransport(LocalTransport):
    """This machine, posing as a host named ``faulty`` with optional faults."""

    is_local = False  # exercises the non-local branches (chmod through a command)

    def __init__(self, *, fail_after: int | None = None, corrupt: bool = False,
                 extra_names: list[str] | None = None, deny_write: bool = False):
        super().__init__("faulty")
        self.fail_after, self.corrupt, self.extra_names = fail_after, corrupt, extra_names or []
        self.deny_write = deny_write

    def open(self, path, mode="rb"):
        if "w" in mode and self.deny_write:
            raise PermissionError(13, "Permission denied", path)
        fh = super().open(path, mode)
        if "w" in mode and self.fail_after is not None:
            return _FailingWriter(fh, self.fail_after)
        return fh

    def sha256(self, path):
        real = super().sha256(path)
        if self.corrupt and path.endswith(PART_SUFFIX):
            return "0" * 64
        return real

    def listdir(self, path):
        return super().listdir(path) + self.extra_names


def _ep(t, path) -> Endpoint:
    return Endpoint(t, str(path))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(f"*{PART_SUFFIX}*"))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha\n")
    (src / "sub" / "b.bin").write_bytes(os.urandom(700_000))
    (src / "sub" / "deeper" / "c").write_bytes(b"")
    os.chmod(src / "a.txt", 0o4751)
    os.chmod(src / "sub", 0o750)
    return src


def test_file_copy_verifies_and_takes_the_umask(tmp_path, tree):
    local = LocalTransport()
    seen = []
    result = copy(_ep(local, tree / "a.txt"), _ep(local, tmp_path / "out.txt"), on_bytes=seen.append,
                  umask=0o027)
    out = tmp_path / "out.txt"
    assert out.read_bytes() == b"alpha\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o750  # 4751: no setuid, umask 027 (as cp)
    copy(_ep(local, tree / "a.txt"), _ep(local, tmp_path / "kept.txt"), preserve_mode=True)
    assert stat.S_IMODE((tmp_path / "kept.txt").stat().st_mode) == 0o4751  # as cp -p
    assert result.files[0].sha256 == _sha(out) and result.bytes == 6 and sum(seen) == 6
    assert _leftovers(tmp_path) == []


def test_copy_into_existing_folder_uses_source_name(tmp_path, tree):
    local = LocalTransport()
    (tmp_path / "dest").mkdir()
    result = copy(_ep(local, tree / "a.txt"), _ep(local, tmp_path / "dest"))
    assert result.destination == str(tmp_path / "dest" / "a.txt")
    assert (tmp_path / "dest" / "a.txt").read_bytes() == b"alpha\n"


def test_folder_copy_staged_then_renamed(tmp_path, tree):
    local = LocalTransport()
    plan = plan_copy(_ep(local, tree), _ep(local, tmp_path / "copy"), recursive=True)
    assert not plan.merge and plan.total_bytes == 700_006
    assert [f.rel for f in plan.files] == ["a.txt", "sub/b.bin", "sub/deeper/c"]
    result = copy(_ep(local, tree), _ep(local, tmp_path / "copy"), recursive=True)
    for rel in ("a.txt", "sub/b.bin", "sub/deeper/c"):
        assert _sha(tmp_path / "copy" / rel) == _sha(tree / rel)
    assert stat.S_IMODE((tmp_path / "copy" / "sub").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "copy" / "a.txt").stat().st_mode) == 0o751
    assert len(result.files) == 3 and result.is_dir
    assert _leftovers(tmp_path) == []


def test_folder_into_existing_folder_merges(tmp_path, tree):
    local = LocalTransport()
    dest = tmp_path / "dest"
    (dest / "src").mkdir(parents=True)
    (dest / "src" / "keep.txt").write_text("mine")
    plan = plan_copy(_ep(local, tree), _ep(local, dest), recursive=True)
    assert plan.merge and plan.final == str(dest / "src")
    copy(_ep(local, tree), _ep(local, dest), recursive=True)
    assert (dest / "src" / "keep.txt").read_text() == "mine"
    assert _sha(dest / "src" / "sub" / "b.bin") == _sha(tree / "sub" / "b.bin")


def test_relay_between_two_transports(tmp_path, tree):
    # host -> host is relayed through this machine: two transports, same path
    copy(_ep(FaultyTransport(), tree), _ep(FaultyTransport(), tmp_path / "relay"), recursive=True)
    assert _sha(tmp_path / "relay" / "sub" / "b.bin") == _sha(tree / "sub" / "b.bin")
    assert stat.S_IMODE((tmp_path / "relay" / "a.txt").stat().st_mode) & 0o7000 == 0


# -- bad input: clear errors, nothing written ---------------------------------------------------
def test_errors_name_the_thing_at_fault(tmp_path, tree):
    local = LocalTransport()
    cases = [
        (tmp_path / "missing", tmp_path / "x", "source {} does not exist".format(tmp_path / "missing")),
        (tree / "a.txt", tmp_path / "no" / "x", "destination folder {} does not exist".format(tmp_path / "no")),
        (tree, tmp_path / "x", "is a folder"),
        (tree / "a.txt", str(tmp_path / "nodir") + "/", "destination folder"),
    ]
    for src, dst, text in cases:
        with pytest.raises(UsageError) as info:
            copy(_ep(local, src), _ep(local, dst))
        assert text in str(info.value)
        assert info.value.exit_code == 2 and info.value.hint
    (tmp_path / "f").write_text("file")
    with pytest.raises(UsageError, match="is a file; the source .* is a folder"):
        copy(_ep(local, tree), _ep(local, tmp_path / "f"), recursive=True)
    assert not (tmp_path / "x").exists()


def test_permission_denied_is_clear(tmp_path, tree):
    with pytest.raises(TransferError) as info:
        copy(_ep(LocalTransport(), tree / "a.txt"), _ep(FaultyTransport(deny_write=True), tmp_path / "o"))
    assert "permission denied" in str(info.value)
    assert not (tmp_path / "o").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["../evil", "x\nname", "a/../../b", "t\x1b]0;x\x07"])
def test_unsafe_names_are_left_out_and_named_the_rest_copied(tmp_path, tree, name):
    result = copy(_ep(FaultyTransport(extra_names=[name]), tree), _ep(LocalTransport(), tmp_path / "d"),
                  recursive=True)
    # listed in every folder of the tree: left out (and named) in each
    assert name in result.refused and len(result.refused) == 3 and not result.ok  # CLI: exit 1
    assert all(rel.endswith(name) for rel in result.refused)
    assert (tmp_path / "d" / "sub" / "deeper" / "c").exists() and len(result.files) == 3
    assert not (tmp_path / "evil").exists() and not (tmp_path / "d" / name).exists()
    assert name in [r["path"] for r in result.to_dict()["refused"]]


# -- faults: no partial file at the final path, a good copy untouched, rerun works --------------
def test_dropped_connection_leaves_good_copy_and_no_temp(tmp_path, tree):
    src = tree / "sub" / "b.bin"
    final = tmp_path / "b.bin"
    final.write_bytes(b"the good old copy")
    with pytest.raises(TransferError) as info:
        copy(_ep(LocalTransport(), src), _ep(FaultyTransport(fail_after=300_000), final))
    assert "connection lost" in str(info.value) and "nothing was written" in str(info.value)
    assert final.read_bytes() == b"the good old copy"
    assert _leftovers(tmp_path) == []
    copy(_ep(LocalTransport(), src), _ep(FaultyTransport(), final))
    assert _sha(final) == _sha(src)


def test_dropped_connection_during_folder_copy_leaves_nothing(tmp_path, tree):
    with pytest.raises(TransferError):
        copy(_ep(LocalTransport(), tree), _ep(FaultyTransport(fail_after=1000), tmp_path / "d"),
             recursive=True)
    assert not (tmp_path / "d").exists() and _leftovers(tmp_path) == []


def test_corrupted_copy_is_reported_and_final_untouched(tmp_path, tree):
    final = tmp_path / "a.txt"
    final.write_text("good")
    with pytest.raises(ChecksumMismatch) as info:
        copy(_ep(LocalTransport(), tree / "a.txt"), _ep(FaultyTransport(corrupt=True), final))
    assert "differs from the bytes sent" in str(info.value)
    assert final.read_text() == "good" and _leftovers(tmp_path) == []


def test_source_changing_during_copy_is_reported(tmp_path, tree):
    src = tree / "sub" / "b.bin"
    final = tmp_path / "b.bin"
    final.write_text("good")

    def scribble(_n: int) -> None:  # someone rewrites the part already sent
        with open(src, "r+b") as fh:
            fh.write(b"changed")

    with pytest.raises(ChecksumMismatch) as info:
        copy(_ep(LocalTransport(), src), _ep(LocalTransport(), final), on_bytes=scribble)
    assert "changed while it was being copied" in str(info.value)
    assert final.read_text() == "good" and _leftovers(tmp_path) == []


def test_cleanup_failure_is_reported_not_swallowed(tmp_path, tree):
    class NoRemove(FaultyTransport):
        def remove(self, path):
            raise OSError("Socket is closed")

    with pytest.raises(TransferError) as info:
        copy(_ep(LocalTransport(), tree / "sub" / "b.bin"),
             _ep(NoRemove(fail_after=10), tmp_path / "b.bin"))
    assert "could not be removed" in str(info.value) and "remove it by hand" in str(info.value)
    assert not (tmp_path / "b.bin").exists()


def test_symlink_loops_end_in_an_error_not_a_hang(tmp_path, monkeypatch):
    import opskit.files.copyplan as copyplan

    src = tmp_path / "loopy"
    src.mkdir()
    (src / "f").write_text("x")
    (src / "self").symlink_to(".")
    with pytest.raises(TransferError, match="symlink loop"):
        copy(_ep(LocalTransport(), src), _ep(LocalTransport(), tmp_path / "out"), recursive=True)
    wide = tmp_path / "wide"  # a huge tree (or a loop that fans out) meets the entry cap
    wide.mkdir()
    for i in range(60):
        (wide / f"f{i}").write_text("x")
    monkeypatch.setattr(copyplan, "MAX_ENTRIES", 50)
    with pytest.raises(TransferError, match="more than 50 files and folders"):
        copy(_ep(LocalTransport(), wide), _ep(LocalTransport(), tmp_path / "out"), recursive=True)
    assert not (tmp_path / "out").exists()


def test_special_files_and_old_temporaries_are_skipped_and_said(tmp_path, tree):
    os.mkfifo(tree / "pipe")
    (tree / ".old.1234abcd.opskit-part").write_text("half")
    (tree / "dangling").symlink_to(tree / "nowhere")
    result = copy(_ep(LocalTransport(), tree), _ep(LocalTransport(), tmp_path / "out"), recursive=True)
    assert result.skipped == {
        ".old.1234abcd.opskit-part": "an unfinished opskit copy (temporary file)",
        "dangling": "vanished, or a symlink to nothing",
        "pipe": "not a regular file or folder",
    }
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.txt", "sub"]
    assert result.to_dict()["skipped"][2] == {"path": "pipe", "reason": "not a regular file or folder"}


def test_ctrl_c_mid_copy_removes_the_temporary_and_propagates(tmp_path, tree):
    final = tmp_path / "b.bin"
    final.write_text("good")

    def interrupt(_n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy(_ep(LocalTransport(), tree / "sub" / "b.bin"), _ep(LocalTransport(), final),
             on_bytes=interrupt)
    with pytest.raises(KeyboardInterrupt):
        copy(_ep(LocalTransport(), tree), _ep(LocalTransport(), tmp_path / "d"), recursive=True,
             on_bytes=interrupt)
    assert final.read_text() == "good" and _leftovers(tmp_path) == []
    assert not (tmp_path / "d").exists()


def test_a_connection_dying_while_looking_is_named(tmp_path, tree):
    class DeadOnStat(FaultyTransport):
        def stat(self, path):
            raise EOFError

    class DeadOnList(FaultyTransport):
        def listdir(self, path):
            raise EOFError

    with pytest.raises(TransferError, match=r"cannot look at faulty:.*connection lost"):
        copy(_ep(DeadOnStat(), tree / "a.txt"), _ep(LocalTransport(), tmp_path / "x"))
    with pytest.raises(TransferError, match=r"cannot list faulty:.*connection lost"):
        copy(_ep(DeadOnList(), tree), _ep(LocalTransport(), tmp_path / "x"), recursive=True)
    assert list(tmp_path.iterdir()) == [tree]
