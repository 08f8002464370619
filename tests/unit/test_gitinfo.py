"""opskit.gitinfo: the commit, dirty flag and changes hash behind image labels and run cards."""

import subprocess
from pathlib import Path

from opskit.gitinfo import UNKNOWN, git_facts

ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid", "PATH": "/usr/bin:/bin"}  # fmt: skip


def repo(tmp_path: Path) -> str:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "a.py").write_text("A = 1\n")
    (tmp_path / "other.txt").write_text("x\n")
    for argv in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "a"]):
        subprocess.run(["git", "-C", str(tmp_path), *argv], check=True, env=ENV)
    return subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def test_outside_a_work_tree_everything_is_unknown(tmp_path: Path) -> None:
    assert git_facts(str(tmp_path)) == UNKNOWN


def test_clean_then_each_change_gives_its_own_hash(tmp_path: Path) -> None:
    head = repo(tmp_path)
    assert git_facts(str(tmp_path)).to_dict() == {"commit": head, "dirty": False, "changes_sha256": None}
    (tmp_path / "proj" / "a.py").write_text("A = 2\n")
    first = git_facts(str(tmp_path))
    assert first.commit == head and first.dirty is True and len(first.changes_sha256) == 64
    (tmp_path / "proj" / "a.py").write_text("A = 3\n")
    assert git_facts(str(tmp_path)).changes_sha256 != first.changes_sha256
    (tmp_path / "proj" / "a.py").write_text("A = 1\n")
    (tmp_path / "proj" / "new.py").write_text("")  # an untracked file counts too
    assert git_facts(str(tmp_path)).dirty is True


def test_only_path_ignores_changes_elsewhere_in_the_repository(tmp_path: Path) -> None:
    head = repo(tmp_path)
    (tmp_path / "other.txt").write_text("changed\n")
    assert git_facts(str(tmp_path / "proj"), only_path=True).dirty is False
    assert git_facts(str(tmp_path / "proj")).dirty is True
    assert git_facts(str(tmp_path / "proj"), only_path=True).commit == head
