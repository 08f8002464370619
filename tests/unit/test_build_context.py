"""The build context: .dockerignore, what is always left out, a reproducible tar, its hash."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from opskit.errors import UsageError
from opskit.images.context import (
    LARGE_CONTEXT,
    make_context,
    project_files,
    read_dockerignore,
)


def _write(root: Path, rel: str, data: bytes | str = "x") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    for rel in ("src/pkg/__init__.py", "src/pkg/model.py", "test/test_pkg.py", "requirements.txt",
                ".git/HEAD", ".venv/bin/python", "runs/r1/metrics.jsonl",
                "src/pkg/__pycache__/model.cpython-311.pyc", "build/lib/x.py", "dist/pkg.whl",
                "pkg.egg-info/PKG-INFO", ".pytest_cache/v", "data/big.bin", "src/keep.bin",
                "src/drop.bin", "notes.md"):
        _write(tmp_path, rel)
    (tmp_path / ".dockerignore").write_text("# data stays home\ndata/\n*.md\nsrc/*.bin\n!src/keep.bin\n\n")
    return tmp_path


def test_dockerignore_is_read_without_comments(project: Path) -> None:
    assert read_dockerignore(str(project)) == ["data", "*.md", "src/*.bin", "!src/keep.bin"]
    assert read_dockerignore(str(project / "src")) == []


def test_project_files_honour_dockerignore_only(project: Path) -> None:
    files = set(project_files(str(project)))
    assert {"src/pkg/__init__.py", "src/pkg/model.py", "test/test_pkg.py", "requirements.txt",
            "src/keep.bin", ".dockerignore", ".git/HEAD", "runs/r1/metrics.jsonl"} <= files
    for gone in ("data/big.bin", "notes.md", "src/drop.bin"):
        assert gone not in files, gone


def test_without_dockerignore_the_defaults_apply(project: Path) -> None:
    (project / ".dockerignore").unlink()
    files = set(project_files(str(project)))
    assert {"src/pkg/model.py", "data/big.bin", "notes.md", "src/drop.bin"} <= files
    for gone in (".git/HEAD", ".venv/bin/python", "runs/r1/metrics.jsonl",
                 "src/pkg/__pycache__/model.cpython-311.pyc", "build/lib/x.py", "dist/pkg.whl",
                 "pkg.egg-info/PKG-INFO", ".pytest_cache/v"):
        assert gone not in files, gone


def test_opskit_build_folder_of_a_project_is_never_sent(tmp_path: Path) -> None:
    _write(tmp_path, ".opskit-build/Dockerfile", "FROM evil")
    _write(tmp_path, "src/a.py")
    (tmp_path / ".dockerignore").write_text("!.opskit-build\n")
    assert set(project_files(str(tmp_path))) == {".dockerignore", "src", "src/a.py"}


def test_missing_project_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        project_files(str(tmp_path / "nope"))


def test_context_tar_is_reproducible_and_hashed(project: Path) -> None:
    files = project_files(str(project))
    a = make_context(files, {"extra/file": b"hello"})
    b = make_context(files, {"extra/file": b"hello"})
    try:
        assert a.fileobj.read() == b.fileobj.read()
        assert a.source_sha256 == b.source_sha256
        a.fileobj.seek(0)
        with tarfile.open(fileobj=a.fileobj) as tar:
            members = {m.name: m for m in tar.getmembers()}
        assert "extra/file" in members and "src/pkg/model.py" in members
        assert "data/big.bin" not in members
        assert {m.mtime for m in members.values()} == {315532800}
        assert {m.uid for m in members.values()} == {0}
        assert a.files == sum(1 for m in members.values() if m.isfile())
        assert a.size > 0 and not a.large
    finally:
        a.close()
        b.close()


def test_hash_changes_with_content_but_not_mtime(project: Path) -> None:
    import os

    files = project_files(str(project))
    first = make_context(files)
    os.utime(project / "src/pkg/model.py", (1, 1))
    second = make_context(files)
    (project / "src/pkg/model.py").write_text("y")
    third = make_context(files)
    for c in (first, second, third):
        c.close()
    assert first.source_sha256 == second.source_sha256
    assert third.source_sha256 != first.source_sha256


def test_recipe_is_made_from_the_hash_and_left_out_of_it(project: Path) -> None:
    files = project_files(str(project))
    seen: list[str] = []

    def recipe(sha: str) -> bytes:
        seen.append(sha)
        return f"FROM x\nLABEL sha={sha}\n".encode()

    ctx = make_context(files, recipe=(".opskit-build/Dockerfile", recipe))
    plain = make_context(files)
    try:
        assert seen == [ctx.source_sha256] == [plain.source_sha256]
        with tarfile.open(fileobj=ctx.fileobj) as tar:
            data = tar.extractfile(".opskit-build/Dockerfile").read().decode()  # type: ignore[union-attr]
        assert ctx.source_sha256 in data
    finally:
        ctx.close()
        plain.close()


def test_largest_files_are_reported(tmp_path: Path) -> None:
    _write(tmp_path, "src/small.py", "x")
    _write(tmp_path, "src/weights.pt", b"\0" * 4096)
    ctx = make_context(project_files(str(tmp_path)))
    ctx.close()
    assert ctx.largest[0] == ("src/weights.pt", 4096)
    assert LARGE_CONTEXT > 4096 and not ctx.large


def test_symlinks_stay_links(tmp_path: Path) -> None:
    _write(tmp_path, "src/real.py")
    (tmp_path / "src/link.py").symlink_to("real.py")
    ctx = make_context(project_files(str(tmp_path)))
    try:
        with tarfile.open(fileobj=ctx.fileobj) as tar:
            link = tar.getmember("src/link.py")
        assert link.issym() and link.linkname == "real.py"
    finally:
        ctx.close()


def test_usual_excludes_that_a_dockerignore_lets_in_are_named(project: Path) -> None:
    from opskit.images.context import usual_excludes_sent

    files = project_files(str(project))
    assert usual_excludes_sent(files) == [
        ".git", ".pytest_cache", ".venv", "build", "dist", "pkg.egg-info", "runs"]
