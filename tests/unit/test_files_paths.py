"""HOST:PATH splitting, path mapping and the chmod command line (pure)."""

from __future__ import annotations

import os

import pytest

from opskit.errors import UnsafeInputError
from opskit.files.chmod import Location, chmod_argv, host_path, parse_location


@pytest.mark.parametrize(
    ("text", "host", "path"),
    [
        ("gpu1:/data/x.bin", "gpu1", "/data/x.bin"),
        ("gpu1:x.bin", "gpu1", "x.bin"),
        ("gpu1:", "gpu1", ""),
        ("ubuntu@gpu1:~/runs", "ubuntu@gpu1", "~/runs"),
        ("localhost:/tmp/a", "localhost", "/tmp/a"),
        ("/tmp/a:b", None, "/tmp/a:b"),  # a ':' after a '/' is part of a local path
        ("./a:b", None, "./a:b"),
        ("plain.txt", None, "plain.txt"),
        ("dir/sub/file", None, "dir/sub/file"),
    ],
)
def test_parse_location(text, host, path):
    loc = parse_location(text)
    assert (loc.host, loc.path) == (host, path)
    assert str(loc) == (text if host else path)


@pytest.mark.parametrize(
    "bad",
    [
        "bad;host:x", "-oProxyCommand=sh:x", "gpu1:-rf", "gpu1:a\nb", "-rf", "a\x1b]0;x",
        "ro ot@gpu1:x", "gpu1:a\rb", "",
    ],
)
def test_unsafe_locations_are_refused_before_any_connection(bad):
    with pytest.raises(UnsafeInputError):
        parse_location(bad)


@pytest.mark.parametrize("name", ["R&D notes.txt", "price $5.txt", 'say "hi".txt', "a;rm -rf b",
                                  "$(reboot)", "`id`", "a|b", "back\\slash"])
def test_any_name_the_filesystem_allows_is_a_location(name):  # field case hosts/22
    assert parse_location(name) == Location(None, name)
    assert parse_location(f"gpu1:data/{name}") == Location("gpu1", f"data/{name}")


def test_host_path_maps_home_on_hosts_and_expands_here():
    assert host_path("~/runs/a", is_local=False) == "runs/a"
    assert host_path("~", is_local=False) == "."
    assert host_path("", is_local=False) == "."
    assert host_path("/abs", is_local=False) == "/abs"
    assert host_path("~/x", is_local=True) == os.path.expanduser("~/x")
    assert host_path("rel", is_local=True) == "rel"


def test_chmod_argv_puts_double_dash_before_mode_and_paths():
    assert chmod_argv("755", ["a", "b c"]) == ["chmod", "--", "755", "a", "b c"]
    assert chmod_argv("-w", ["f"], recursive=True) == ["chmod", "-R", "--", "-w", "f"]


@pytest.mark.parametrize(("mode", "paths"), [("7;7", ["a"]), ("755", ["-rf"]), ("755", ["a\nb"]),
                                             ("u+x;id", ["a"]), ("75", ["a\x1b"])])
def test_chmod_argv_refuses_bad_input(mode, paths):
    with pytest.raises(UnsafeInputError):
        chmod_argv(mode, paths)


def test_location_str():
    assert str(Location("h", "p")) == "h:p"
    assert str(Location(None, "p")) == "p"
