"""File modes, the way the seed teaches them: r=4, w=2, x=1 for user, group and other.

Pure functions only (no files, no hosts):

- ``parse_mode(text)`` turns any mode GNU chmod accepts into a list of :class:`ModeChange`,
  with gnulib's grammar (``modechange.c``): octal of any length up to 07777 (``755``,
  ``00755``: five digits or more also clear a folder's setuid/setgid), symbolic clauses
  separated by commas, each ``[ugoa]*`` then one or more ``[-+=]`` operations
  (``u+x-w``, ``g=u``, ``a=rX``, ``+t``, ``u+s``), and an operator followed by octal digits
  when no who is given (``=755``, ``-6000``, ``+4000``: all bits, no umask);
- ``apply_mode(changes, old, is_dir=..., umask=...)`` computes the new mode exactly as GNU
  ``chmod`` does (including its rules for directories' setuid/setgid bits and for clauses that
  name no user class, which leave the umask's bits alone);
- ``explain_mode(text)`` spells a mode out in words, e.g.
  ``755 = user rwx (4+2+1=7), group r-x (4+0+1=5), other r-x (4+0+1=5)``.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

from opskit.errors import UnsafeInputError

ALL_BITS = 0o7777
RWX_ALL = 0o777
_R, _W, _X = 0o444, 0o222, 0o111
_WHO_BITS = {
    "u": stat.S_ISUID | stat.S_IRWXU,
    "g": stat.S_ISGID | stat.S_IRWXG,
    "o": stat.S_ISVTX | stat.S_IRWXO,
    "a": ALL_BITS,
}
_WHO_WORD = {"u": "user", "g": "group", "o": "other"}
_PERM_WORD = {
    "r": "r (read)",
    "w": "w (write)",
    "x": "x (execute; for a folder: enter it)",
    "X": "X (execute, but only for folders and files someone may already execute)",
    "s": "s (setuid with u, setgid with g)",
    "t": "t (sticky: in a folder only a file's owner may delete or rename it)",
}
_OP_WORD = {"+": "adds", "-": "removes", "=": "sets exactly"}
SPECIAL_MEANING = {
    stat.S_ISUID: "setuid (4): the program runs as the file's owner",
    stat.S_ISGID: "setgid (2): the program runs as the file's group; in a folder, new files "
    "inherit the folder's group",
    stat.S_ISVTX: "sticky (1): in a folder, only a file's owner may delete or rename it (as /tmp)",
}


@dataclass(frozen=True)
class ModeChange:
    """One clause of a mode, as GNU chmod compiles it."""

    op: str  # "+", "-" or "="
    who: str  # letters of "ugoa" as written ("" = all, minus the umask)
    affected: int  # bits the clause may touch (0 = all bits not in the umask)
    value: int  # bits named by the clause
    mentioned: int  # bits the clause explicitly names (directories keep setuid/setgid otherwise)
    flag: str = "ordinary"  # "ordinary", "copy" (u/g/o on the right) or "x_if_any_x" (X)
    text: str = ""  # the clause as written


_PERM_BITS = {"r": _R, "w": _W, "x": _X, "s": stat.S_ISUID | stat.S_ISGID, "t": stat.S_ISVTX}
_COPY = {"u": stat.S_IRWXU, "g": stat.S_IRWXG, "o": stat.S_IRWXO}


def _refuse(text: str, why: str) -> UnsafeInputError:
    return UnsafeInputError(
        f"refusing mode {text!r}: {why}",
        "use what GNU chmod accepts: octal (755, 00755), symbolic clauses like u+x,go-w or "
        "u+x-w, or an operator with octal digits (=755, -6000)",
    )


def _octal(text: str, digits: str) -> int:
    value = int(digits, 8)
    if value > ALL_BITS:
        raise _refuse(text, f"{digits} is more than 7777")
    return value


def _octal_change(text: str) -> ModeChange:
    value = _octal(text, text)
    if len(text) < 5:
        # Like GNU chmod: a short octal mode leaves a folder's setuid/setgid bits alone unless
        # it sets them.
        mentioned = (value & (stat.S_ISUID | stat.S_ISGID)) | stat.S_ISVTX | RWX_ALL
    else:
        mentioned = ALL_BITS
    return ModeChange("=", "a", ALL_BITS, value, mentioned, text=text)


def _operations(text: str, clause: str, who: str, affected: int) -> list[ModeChange]:
    """The ``[-+=]perms`` operations after a clause's who letters (gnulib's inner loop)."""
    changes = []
    i = len(who)
    while i < len(clause):
        op = clause[i]
        if op not in "+-=":
            raise _refuse(text, f"expected +, - or = at {clause[i:]!r}")
        j = i + 1
        if j < len(clause) and clause[j] in "01234567":
            if affected:
                raise _refuse(text, f"octal digits after {who!r}{op}: write {op}DIGITS alone")
            digits = clause[j:]
            if not digits.isdigit() or "8" in digits or "9" in digits:
                raise _refuse(text, f"invalid mode: {digits!r} after {op!r} is not octal (digits 0-7 only)")
            changes.append(ModeChange(op, who, ALL_BITS, _octal(text, digits), ALL_BITS,
                                      text=clause[i:]))
            break
        if j < len(clause) and clause[j] in _COPY:
            value, flag, j = _COPY[clause[j]], "copy", j + 1
        else:
            value, flag = 0, "ordinary"
            while j < len(clause) and clause[j] in "rwxXst":
                if clause[j] == "X":
                    flag = "x_if_any_x"
                else:
                    value |= _PERM_BITS[clause[j]]
                j += 1
        mentioned = affected & value if affected else value
        changes.append(ModeChange(op, who, affected, value, mentioned, flag=flag,
                                  text=who + clause[i:j]))
        i = j
    return changes


def _symbolic_changes(text: str, clause: str) -> list[ModeChange]:
    who = ""
    while len(who) < len(clause) and clause[len(who)] in "ugoa":
        who += clause[len(who)]
    if len(who) == len(clause):
        raise _refuse(text, f"{clause!r} has no operator (+, - or =)" if clause else
                      "an empty clause")
    affected = 0
    for letter in who:
        affected |= _WHO_BITS[letter]
    return _operations(text, clause, who, affected)


def parse_mode(text: str) -> list[ModeChange]:
    """Any mode GNU chmod accepts -> its operations, in order; UnsafeInputError (naming the
    mode) for anything it refuses, before any host is contacted."""
    if not text:
        raise _refuse(text, "invalid mode: empty")
    bad = next((c for c in text if c not in "01234567ugoarwxXst+-=,"), None)
    if bad is not None:
        raise _refuse(text, _why_not(bad))
    if text[0] in "01234567":
        if not text.isdigit():
            raise _refuse(text, f"invalid mode: an octal mode is digits 0-7 only, not {text.lstrip('01234567')[0]!r}")
        return [_octal_change(text)]
    changes: list[ModeChange] = []
    for clause in text.split(","):
        changes += _symbolic_changes(text, clause)
    return changes


def _why_not(char: str) -> str:
    """Why GNU chmod says "invalid mode" for a mode holding ``char``."""
    if char in "89":
        return f"invalid mode: {char} is a digit but not an octal one (octal digits are 0-7)"
    return (f"invalid mode: {char!r} is not a character of a mode (octal digits 0-7, who ugoa, "
            "operators +-=, permissions rwxXst, clauses separated by commas)")


def is_octal(text: str) -> bool:
    return text.isdigit()


def _copy_bits(value: int) -> int:
    """Spread the r, w and x bits found in any class to all three classes."""
    out = 0
    for bits in (_R, _W, _X):
        if value & bits:
            out |= bits
    return out


def apply_mode(changes: list[ModeChange], old: int, *, is_dir: bool = False, umask: int = 0o022) -> int:
    """The mode ``chmod`` gives a file that had ``old`` (GNU coreutils' rules)."""
    new = old & ALL_BITS
    for ch in changes:
        omit = (stat.S_ISUID | stat.S_ISGID if is_dir else 0) & ~ch.mentioned
        value = ch.value
        if ch.flag == "copy":
            value = _copy_bits(value & new)
        elif ch.flag == "x_if_any_x" and (new & _X or is_dir):
            value |= _X
        value &= (ch.affected if ch.affected else ~umask) & ~omit
        if ch.op == "=":
            preserved = (~ch.affected if ch.affected else 0) | omit
            new = (new & preserved) | value
        elif ch.op == "+":
            new |= value
        else:
            new &= ~value
    return new & ALL_BITS


def rwx(mode: int) -> str:
    """Nine-letter ``ls -l`` permissions (``rwsr-xr-t`` style), without the file type."""
    return stat.filemode(stat.S_IFREG | (mode & ALL_BITS))[1:]


def ls_form(mode: int, *, is_dir: bool = False) -> str:
    """Ten-letter ``ls -l`` form, e.g. ``-rwxr-xr-x`` or ``drwxr-x---``."""
    kind = stat.S_IFDIR if is_dir else stat.S_IFREG
    return stat.filemode(kind | (mode & ALL_BITS))


def _digit_sum(letters: str) -> str:
    weights = [4 if letters[0] == "r" else 0, 2 if letters[1] == "w" else 0,
               1 if letters[2] == "x" else 0]
    return f"{'+'.join(str(w) for w in weights)}={sum(weights)}"


def explain_octal(value: int) -> str:
    """``755 = user rwx (4+2+1=7), group r-x (4+0+1=5), other r-x (4+0+1=5)``."""
    parts = []
    special = (value >> 9) & 0o7
    if special:
        bits = [4 if special & 4 else 0, 2 if special & 2 else 0, 1 if special & 1 else 0]
        names = [n for n, b in zip(("setuid", "setgid", "sticky"), bits, strict=True) if b]
        parts.append(
            f"special {'+'.join(names)} ({'+'.join(str(b) for b in bits)}={special})"
        )
    for shift, word in ((6, "user"), (3, "group"), (0, "other")):
        digit = (value >> shift) & 0o7
        letters = ("r" if digit & 4 else "-") + ("w" if digit & 2 else "-") + ("x" if digit & 1 else "-")
        parts.append(f"{word} {letters} ({_digit_sum(letters)})")
    width = 4 if special else 3
    return f"{value:0{width}o} = " + ", ".join(parts)


def _who_words(who: str) -> str:
    if not who or "a" in who:
        return "user, group and other"
    words = [_WHO_WORD[c] for c in "ugo" if c in who]
    return " and ".join(words) if len(words) < 3 else "user, group and other"


def explain_clause(ch: ModeChange, umask: int = 0o022) -> str:
    who = _who_words(ch.who)
    perms = ch.text[len(ch.who) + 1 :]
    if perms.isdigit():
        return (f"{ch.text}: {_OP_WORD[ch.op]} the bits {explain_octal(ch.value)} "
                "(every bit, the umask plays no part; a folder's setuid/setgid too)")
    if ch.flag == "copy":
        what = f"the permissions {_WHO_WORD[perms]} has now"
    elif perms:
        words = dict(_PERM_WORD)
        if ch.who and set(ch.who) <= {"u", "g"} and len(ch.who) == 1:
            words["s"] = "s (setuid)" if ch.who == "u" else "s (setgid)"
        what = ", ".join(words[p] for p in perms)
    else:
        what = "nothing"
    if ch.op == "=" and not perms:
        line = f"{ch.text}: removes every permission of {who}"
    else:
        line = f"{ch.text}: {_OP_WORD[ch.op]} {what} for {who}"
    if not ch.who:
        line += f" (no u/g/o/a given: bits in the umask, {umask:03o}, are left alone)"
    return line


def _folder_special_note(text: str, changes: list[ModeChange]) -> str:
    """What an octal mode does to a folder that has setgid (2775), as GNU chmod: up to four
    digits keep a folder's setuid/setgid unless they set them; five digits set them as written."""
    old = 0o2775
    new = apply_mode(changes, old, is_dir=True)
    head = (f"on a folder with setgid {old:o} ({ls_form(old, is_dir=True)}): "
            f"{new:0{4 if new >> 9 else 3}o} ({ls_form(new, is_dir=True)})")
    if (new ^ changes[0].value) & (stat.S_ISUID | stat.S_ISGID):
        return (f"{head}: a mode of 4 digits or fewer keeps a folder's setuid/setgid unless it "
                f"sets them (GNU chmod); 0{changes[0].value:04o} or ={text.lstrip('0') or '0'} "
                "sets them exactly as written")
    if len(text) >= 5:
        return f"{head}: five digits set a folder's setuid/setgid exactly as written"
    return f"{head}: this mode sets them itself"


def explain_mode(text: str, umask: int = 0o022) -> list[str]:
    """Lines that spell ``text`` out; the first is the summary line."""
    changes = parse_mode(text)
    if is_octal(text):
        value = changes[0].value
        lines = [explain_octal(value), f"ls -l shows: {ls_form(value)} (file), {ls_form(value, is_dir=True)} (folder)"]
        lines += [SPECIAL_MEANING[bit] for bit in SPECIAL_MEANING if value & bit]
        return lines + [_folder_special_note(text, changes)]
    lines = [f"{text} changes the mode clause by clause:"]
    lines += ["  " + explain_clause(ch, umask) for ch in changes]
    for old, is_dir in ((0o644, False), (0o755, True)):
        new = apply_mode(changes, old, is_dir=is_dir, umask=umask)
        kind = "a folder" if is_dir else "a file"
        lines.append(
            f"on {kind} with {old:03o} ({ls_form(old, is_dir=is_dir)}): "
            f"{new:03o} ({ls_form(new, is_dir=is_dir)}) = {explain_octal(new).split(' = ', 1)[1]}"
        )
    return lines
