"""The Debian mirror of `opskit base bootstrap`, read from this host's apt sources (no engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opskit.errors import UsageError
from opskit.images.base import host_mirror

SOURCES = """\
Types: deb
URIs: http://security.example.test/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: http://mirror.example.test/debian
Suites: bookworm bookworm-updates
Components: main
"""


def test_deb822_sources_give_the_first_non_security_mirror(tmp_path: Path) -> None:
    (tmp_path / "debian.sources").write_text(SOURCES)
    assert host_mirror(str(tmp_path), str(tmp_path / "none.list")) == "http://mirror.example.test/debian"


def test_one_line_sources_skip_lines_without_a_uri(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# a comment\n"
        "deb cdrom:[Debian GNU/Linux 12]/ bookworm main\n"
        "deb http://security.example.test/debian-security bookworm-security main\n"
        "deb [arch=amd64] http://mirror.example.test/debian bookworm main\n"
    )
    assert host_mirror(str(tmp_path / "d"), str(tmp_path / "sources.list")) == (
        "http://mirror.example.test/debian")


def test_no_mirror_says_what_to_pass(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text("deb cdrom:[Debian GNU/Linux 12]/ bookworm main\n")
    with pytest.raises(UsageError, match="cannot find this host's Debian mirror") as info:
        host_mirror(str(tmp_path / "d"), str(tmp_path / "sources.list"))
    assert "--mirror URL" in (info.value.hint or "")
