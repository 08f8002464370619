"""Mode parsing and explaining (pure), and apply_mode checked against the real GNU chmod."""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest

from opskit.errors import UnsafeInputError
from opskit.files.modes import apply_mode, explain_mode, explain_octal, ls_form, parse_mode, rwx


def test_explain_755_as_the_seed_teaches_it():
    assert explain_octal(0o755) == (
        "755 = user rwx (4+2+1=7), group r-x (4+0+1=5), other r-x (4+0+1=5)"
    )
    lines = explain_mode("755")
    assert lines[0] == explain_octal(0o755)
    assert "-rwxr-xr-x" in lines[1] and "drwxr-xr-x" in lines[1]


def test_explain_644_and_600():
    assert explain_octal(0o644) == (
        "644 = user rw- (4+2+0=6), group r-- (4+0+0=4), other r-- (4+0+0=4)"
    )
    assert explain_mode("0600")[0] == (
        "600 = user rw- (4+2+0=6), group --- (0+0+0=0), other --- (0+0+0=0)"
    )


def test_explain_special_bits():
    lines = explain_mode("4755")
    assert lines[0].startswith("4755 = special setuid (4+0+0=4), user rwx (4+2+1=7)")
    assert "-rwsr-xr-x" in lines[1]
    assert any(line.startswith("setuid (4): the program runs as the file's owner") for line in lines)
    sticky = explain_mode("1777")
    assert sticky[0].startswith("1777 = special sticky (0+0+1=1)")
    assert "drwxrwxrwt" in sticky[1]
    both = explain_mode("6750")
    assert both[0].startswith("6750 = special setuid+setgid (4+2+0=6)")
    assert sum("setuid (4)" in x or "setgid (2)" in x for x in both) == 2


def test_explain_symbolic_says_what_each_clause_changes():
    lines = explain_mode("u+x,go-w")
    assert lines[1] == "  u+x: adds x (execute; for a folder: enter it) for user"
    assert lines[2] == "  go-w: removes w (write) for group and other"
    assert lines[3].startswith("on a file with 644 (-rw-r--r--): 744 (-rwxr--r--) = user rwx (4+2+1=7)")
    assert "o=" in explain_mode("o=")[1] and "removes every permission of other" in explain_mode("o=")[1]
    assert "umask" in explain_mode("+x", umask=0o027)[1] and "027" in explain_mode("+x", umask=0o027)[1]
    assert "the permissions user has now" in explain_mode("g=u")[1]
    assert "s (setuid)" in explain_mode("u+s")[1]
    assert "s (setgid)" in explain_mode("g+s")[1]


@pytest.mark.parametrize("bad", ["", "999", "8", "77777", "u+q", "u+x;rm", "-rf", "u+x\n", "x+u", "a=r w",
                                 "u=755", "=7779", "u", "u+x,", ",u+x", "=755,", "0o755",
                                 "=17777", "+x7", "ug"])
def test_bad_modes_are_refused(bad, tmp_path):
    if "\n" not in bad and ";" not in bad:  # GNU chmod refuses each of them too
        (tmp_path / "f").write_bytes(b"")
        assert subprocess.run(["chmod", "--", bad, str(tmp_path / "f")],
                              capture_output=True).returncode != 0, bad
    with pytest.raises(UnsafeInputError) as info:
        parse_mode(bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("mode, folder_after", [("00755", 0o755), ("=755", 0o755),
                                                ("-6000", 0o775), ("755", 0o2755)])
def test_numeric_ways_to_clear_a_folders_setgid(mode, folder_after):  # field case hosts/20
    assert apply_mode(parse_mode(mode), 0o2775, is_dir=True) == folder_after
    assert explain_mode(mode)  # each can be explained too


def test_rwx_and_ls_form():
    assert rwx(0o4755) == "rwsr-xr-x"
    assert rwx(0o1770) == "rwxrwx--T"
    assert ls_form(0o750, is_dir=True) == "drwxr-x---"
    assert ls_form(0o644) == "-rw-r--r--"


# apply_mode must agree with the real chmod (coreutils on this machine) on files and folders.
MODES = [
    "755", "0644", "600", "4755", "2750", "1777", "7777", "0",
    "u+x", "go-w", "a=rX", "u=rw,go=r", "+x", "-w", "=r", "g=u", "o=g", "u+s", "g+s,o+t",
    "a-x", "ug=rwx,o=", "o+X", "u-s", "g-s", "=", "a+rwxst", "u=g,g=o",
    # every form GNU chmod accepts (field case hosts/20 and its class)
    "00755", "000644", "07777", "=755", "-6000", "+4000", "-0", "=0", "u+x-w", "u=g+x",
    "a+X-r", "go=u-w", "=rX", "-t", "+t", "g-s+x", "ug+s", "+", "-", "u+x,g-w,o=", "o=g,g+s",
    "a=,u+rwX", "+X,-w", "ugo-x+X",
]
STARTS = [0o644, 0o755, 0o600, 0o6755, 0o1700, 0o000, 0o750, 0o2775, 0o4711]


def _real_chmod_all(path: str, umask: int) -> list[int]:
    """Every (mode, start) pair through the real chmod, in one shell (fast), in MODES order.

    The start mode is set with 5 octal digits: a folder keeps setuid/setgid otherwise.
    """
    lines = [f"umask {umask:03o}"]
    for mode in MODES:
        for start in STARTS:
            lines.append(f"chmod 0{start:04o} {shlex.quote(path)} && chmod -- {shlex.quote(mode)} "
                         f"{shlex.quote(path)} && stat -c %a {shlex.quote(path)}")
    out = subprocess.run(["sh", "-ec", "\n".join(lines)], capture_output=True, text=True, check=True)
    return [int(x, 8) for x in out.stdout.split()]


@pytest.mark.parametrize("is_dir", [False, True], ids=["file", "folder"])
def test_apply_mode_matches_real_chmod(tmp_path, is_dir):
    path = tmp_path / "target"
    if is_dir:
        path.mkdir()
    else:
        path.write_bytes(b"x")
    mismatches = []
    for umask in (0o022, 0o077):
        real = iter(_real_chmod_all(str(path), umask))
        for mode in MODES:
            changes = parse_mode(mode)
            for start in STARTS:
                want = next(real)
                got = apply_mode(changes, start, is_dir=is_dir, umask=umask)
                if got != want:
                    mismatches.append(f"{mode} on {start:04o} umask {umask:03o}: {got:04o} != {want:04o}")
    os.chmod(path, 0o700)
    assert mismatches == []


@pytest.mark.parametrize("mode", ["755", "00755", "=755", "4755", "04755", "1777", "0600", "00600", "2755"])
def test_explain_octal_says_what_a_setgid_folder_becomes(mode, tmp_path):
    """The last --explain line of an octal mode: a 2775 folder after it, as GNU chmod leaves it
    (4 digits or fewer keep a folder's setuid/setgid, five digits set them as written)."""
    import shutil
    import subprocess

    if not mode.isdigit():
        assert not explain_mode(mode)[-1].startswith("on a folder with setgid")
        return
    note = explain_mode(mode)[-1]
    assert note.startswith("on a folder with setgid 2775 (drwxrwsr-x): ")
    if shutil.which("chmod") is None:
        pytest.skip("GNU chmod is the reference")
    d = tmp_path / "d"
    d.mkdir()
    subprocess.run(["chmod", "2775", str(d)], check=True)
    subprocess.run(["chmod", "--", mode, str(d)], check=True)
    gnu = d.stat().st_mode & 0o7777
    assert note.split(": ", 2)[1].split(" ")[0] == f"{gnu:0{4 if gnu >> 9 else 3}o}"
    if mode in ("755", "0600"):
        assert f"0{int(mode, 8):04o} or ={mode.lstrip('0')} sets them exactly as written" in note
    if mode == "00755":
        assert note.endswith("five digits set a folder's setuid/setgid exactly as written")


@pytest.mark.parametrize("bad, why", [("999", "9 is a digit but not an octal one"),
                                      ("0789", "8 is a digit but not an octal one"),
                                      ("u+9", "9 is a digit but not an octal one"),
                                      ("7a5", "digits 0-7 only, not 'a'"),
                                      ("=7a", "'7a' after '=' is not octal"),
                                      ("u+q", "'q' is not a character of a mode"),
                                      ("", "invalid mode: empty")])
def test_refusals_say_invalid_mode_as_gnu_chmod_and_why(bad, why, tmp_path):
    """GNU chmod says "invalid mode: 'MODE'" for each; ours says so too, and names the culprit."""
    (tmp_path / "f").write_bytes(b"")
    gnu = subprocess.run(["chmod", "--", bad, str(tmp_path / "f")], capture_output=True, text=True,
                         env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
    assert gnu.returncode != 0 and "invalid mode" in gnu.stderr
    with pytest.raises(UnsafeInputError) as info:
        parse_mode(bad)
    assert "invalid mode" in info.value.message and why in info.value.message
