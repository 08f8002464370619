"""Docker's .dockerignore rules (reader, matcher, walk) without an engine.

The same rules are compared with the real engine on a corpus in
tests/integration/test_dockerignore_engine.py; these pin the field cases and the corner rules.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opskit.errors import UsageError
from opskit.images.context import project_files
from opskit.images.dockerignore import (
    PatternMatcher,
    go_clean,
    go_match_is_bad,
    read_ignore_bytes,
)


def _tree(root: Path, files: list[str], ignore: bytes) -> Path:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    (root / ".dockerignore").write_bytes(ignore)
    return root


def _files(root: Path) -> list[str]:
    return sorted(k for k, v in project_files(str(root)).items() if os.path.isfile(v))


def test_field_case_01_matching_is_case_sensitive(tmp_path: Path) -> None:
    root = _tree(tmp_path, ["src/train.py", "src/data/__init__.py", "src/Data/big.bin",
                            "test/t.py", "weights.pt"], b"src/Data\n*.PT\n")
    assert _files(root) == [".dockerignore", "src/data/__init__.py", "src/train.py",
                            "test/t.py", "weights.pt"]


def test_field_case_02_a_bom_is_dropped(tmp_path: Path) -> None:
    root = _tree(tmp_path, ["secret.txt", "src/a.py", "test/t.py"], b"\xef\xbb\xbfsecret.txt\n")
    assert _files(root) == [".dockerignore", "src/a.py", "test/t.py"]


def test_field_case_04_latin1_comment_is_a_comment(tmp_path: Path) -> None:
    root = _tree(tmp_path, ["secret.txt", "src/a.py", "test/t.py"],
                 b"# caf\xe9\nsecret.txt\n")
    assert _files(root) == [".dockerignore", "src/a.py", "test/t.py"]


def test_latin1_pattern_matches_the_same_bytes_on_disk(tmp_path: Path) -> None:
    base = os.fsencode(tmp_path)
    for name in (b"caf\xe9.txt", "caf\u00e9.txt".encode()):
        with open(os.path.join(base, name), "wb") as fh:
            fh.write(b"x")
    (tmp_path / ".dockerignore").write_bytes(b"caf\xe9.txt\n")
    assert _files(tmp_path) == [".dockerignore", "caf\u00e9.txt"]


def test_reader_follows_ignorefile_readall() -> None:
    lines = read_ignore_bytes(b"\xef\xbb\xbf/a/\r\n # b\n#c\n\n  ! /d/../e  \nf\t\n\\!g")
    assert [(x.pattern, x.line) for x in lines] == [
        ("a", 1), ("# b", 2), ("!e", 5), ("f", 6), ("\\!g", 7)]


def test_go_clean() -> None:
    assert [go_clean(p) for p in ("", "/", "a//b/", "/../a", "a/../..", "./x", "//a")] == [
        ".", "/", "a/b", "/a", "..", "x", "/a"]


@pytest.mark.parametrize(("patterns", "path", "excluded"), [
    (["**/*.bin"], "a/b/c.bin", True),
    (["**/*.bin"], "c.bin", True),
    (["dir/**"], "dir", False),
    (["dir/**"], "dir/x/y", True),
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "docs/README.md", False),  # parent "docs" does not match *.md
    (["*"], "a/b", True),  # the parent "a" matches
    (["a\\*b"], "a*b", True),
    (["a\\*b"], "axb", False),
    (["[^a-z]*.md"], "B.md", True),
    (["[^a-z]*.md"], "b.md", False),
    (["src/Data"], "src/data/x", False),
    (["a.|)$(}+{bc"], "a.|)$(}+{bc", True),
    (["?x"], "ax\n", False),  # Go's $ is the end of the text, not before a final newline
])
def test_matcher(patterns: list[str], path: str, excluded: bool) -> None:
    assert PatternMatcher(patterns).excluded(path) is excluded


@pytest.mark.parametrize("pattern", ["[", "a[", "a\\", "[a-", "[]", "a[-b]"])
def test_bad_patterns_are_what_go_calls_bad(pattern: str) -> None:
    assert go_match_is_bad(pattern)


@pytest.mark.parametrize("pattern", ["*", "a*b", "[a-c]x", "\\[", "**/x", "a[\\]]"])
def test_good_patterns(pattern: str) -> None:
    assert not go_match_is_bad(pattern)


@pytest.mark.parametrize(("ignore", "shown"), [(b"src\n!\n", "line 2"), (b"[a-\n", "line 1")])
def test_bad_ignore_file_names_file_and_line(tmp_path: Path, ignore: bytes, shown: str) -> None:
    _tree(tmp_path, ["src/a.py"], ignore)
    with pytest.raises(UsageError, match=f"dockerignore, {shown}: pattern") as err:
        project_files(str(tmp_path))
    assert "docker build refuses it too" in (err.value.hint or "")


def test_excluded_folder_is_walked_only_for_a_literal_exception(tmp_path: Path) -> None:
    root = _tree(tmp_path, ["x/y/keep.bin", "x/y/drop.bin", "z/keep.bin"],
                 b"x\nz\n!x/y/keep.bin\n!**/keep.bin\n")
    assert _files(root) == [".dockerignore", "x/y/keep.bin"]


def test_dockerignore_is_always_sent(tmp_path: Path) -> None:
    root = _tree(tmp_path, ["a.py"], b"*\n")
    assert _files(root) == [".dockerignore"]


def test_dockerignore_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").mkdir()
    with pytest.raises(UsageError, match="is not a file"):
        project_files(str(tmp_path))
