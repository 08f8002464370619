"""Requirements handling and the wheelhouse cache (pip itself runs in the integration tests)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from opskit.errors import BuildError, UsageError
from opskit.images import wheelhouse as wh

# What pip 26 prints when a requirement is not in any source (captured on this machine).
PIP_NOT_FOUND = """\
Looking in links: /opt/wheels
ERROR: Could not find a version that satisfies the requirement opskit-nonexistent-pkg==1.0 (from versions: none)
ERROR: No matching distribution found for opskit-nonexistent-pkg==1.0
"""


def test_requirement_names_are_canonical() -> None:
    assert wh.requirement_name("Torch>=2.1 ; python_version > '3'") == "torch"
    assert wh.requirement_name("typing_extensions==4.16.0") == "typing-extensions"
    assert wh.requirement_name("--extra-index-url http://x") is None


def test_read_requirements_expands_includes_and_drops_comments(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("numpy==2.0  # pinned\n")
    (tmp_path / "requirements.txt").write_text("# deps\n\n-r base.txt\ntorch==2.13.0\n")
    assert wh.read_requirements(str(tmp_path / "requirements.txt")) == ["numpy==2.0", "torch==2.13.0"]


def test_self_including_requirements_are_refused(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("-r requirements.txt\n")
    with pytest.raises(UsageError, match="include themselves"):
        wh.read_requirements(str(tmp_path / "requirements.txt"))


def test_missing_include_is_a_usage_error_naming_both_files(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("torch==2.13.0\n-r extra/dev.txt\n")
    with pytest.raises(UsageError, match=r"requirements.txt includes .*extra/dev.txt.*does not exist"):
        wh.read_requirements(str(tmp_path / "requirements.txt"))


def test_torch_pin_is_added_only_when_missing() -> None:
    assert wh.with_torch(["numpy"]) == ["numpy", wh.DEFAULT_TORCH]
    assert wh.with_torch(["torch>=2.1"]) == ["torch>=2.1"]


def test_without_splits_out_what_the_base_provides() -> None:
    assert wh.without(["torch==2.5.1", "numpy"], ["torch"]) == (["numpy"], ["torch==2.5.1"])


def test_key_ignores_order_and_spaces_but_not_versions() -> None:
    a = wh.requirements_key(["torch==2.13.0", "numpy"], "3.11", "x86_64")
    assert a == wh.requirements_key(["numpy", "torch == 2.13.0"], "3.11", "x86_64")
    assert a != wh.requirements_key(["torch==2.13.1", "numpy"], "3.11", "x86_64")
    assert a != wh.requirements_key(["torch==2.13.0", "numpy"], "3.12", "x86_64")


def test_wheel_version_from_file_names() -> None:
    files = ["torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", "sympy-1.14.0-py3-none-any.whl"]
    assert wh.wheel_version(files, "torch") == "2.13.0+cpu"
    assert wh.wheel_version(files, "numpy") is None


def test_pip_failure_names_the_package() -> None:
    assert wh.pip_failure_package(PIP_NOT_FOUND) == "opskit-nonexistent-pkg==1.0"
    assert wh.pip_failure_package("ERROR: something else") is None


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPSKIT_CACHE_DIR", str(tmp_path / "a"))
    assert wh.cache_root() == tmp_path / "a"
    monkeypatch.delenv("OPSKIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
    assert wh.cache_root() == tmp_path / "b" / "opskit"


def _fake_pip(monkeypatch: pytest.MonkeyPatch, calls: list, *, fail: str | None = None) -> None:
    """Stand-in for ``pip download``: writes one wheel into --dest (or fails like pip)."""
    import subprocess

    def run(argv, capture_output, text):  # noqa: ANN001
        calls.append(argv)
        dest = Path(argv[argv.index("--dest") + 1])
        if fail:
            return subprocess.CompletedProcess(argv, 1, "", fail)
        (dest / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"w" * 10)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(wh.subprocess, "run", run)


def test_wheelhouse_is_made_once_then_reused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list = []
    _fake_pip(monkeypatch, calls)
    first = wh.ensure_wheelhouse(["torch==2.13.0"], cache_dir=tmp_path)
    second = wh.ensure_wheelhouse(["torch==2.13.0"], cache_dir=tmp_path)
    assert len(calls) == 1 and calls[0][:4] == [sys.executable, "-m", "pip", "download"]
    assert not first.reused and second.reused
    assert first.path == second.path == str(tmp_path / "wheelhouse" / first.key)
    assert first.version_of("torch") == "2.13.0+cpu" and first.bytes == 10
    assert (Path(first.path) / "requirements.txt").read_text() == "torch==2.13.0\n"
    manifest = json.loads((Path(first.path) / "manifest.json").read_text())
    assert manifest["requirements"] == ["torch==2.13.0"]
    assert [p.name for p in (tmp_path / "wheelhouse").iterdir()] == [first.key]  # no temp left


def test_other_python_version_downloads_binaries_for_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list = []
    _fake_pip(monkeypatch, calls)
    wh.ensure_wheelhouse(["torch==2.13.0"], python_version="3.99", cache_dir=tmp_path)
    assert calls[0][-3:] == ["--python-version", "3.99", "--only-binary=:all:"]


def test_unresolvable_requirement_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_pip(monkeypatch, [], fail=PIP_NOT_FOUND)
    with pytest.raises(UsageError, match="opskit-nonexistent-pkg==1.0") as info:
        wh.ensure_wheelhouse(["opskit-nonexistent-pkg==1.0"], cache_dir=tmp_path)
    assert "pip config list" in (info.value.hint or "")
    assert list((tmp_path / "wheelhouse").iterdir()) == []  # nothing half-made left behind


def test_other_pip_failures_are_build_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_pip(monkeypatch, [], fail="ERROR: disk full")
    with pytest.raises(BuildError, match="disk full") as info:
        wh.ensure_wheelhouse(["x>=1 ; python_version>'3'"], cache_dir=tmp_path)
    # The hint is a command that works on its own (the temporary -r file and --dest are gone).
    assert info.value.hint == "run this by hand to see why: " + shlex.join(
        [sys.executable, "-m", "pip", "download", "--dest", "wheelhouse", "x>=1 ; python_version>'3'"])


def test_damaged_wheelhouse_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_pip(monkeypatch, [])
    made = wh.ensure_wheelhouse(["torch==2.13.0"], cache_dir=tmp_path)
    (Path(made.path) / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"w")
    with pytest.raises(BuildError, match="damaged"):
        wh.ensure_wheelhouse(["torch==2.13.0"], cache_dir=tmp_path)
