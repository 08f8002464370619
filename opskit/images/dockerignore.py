"""Docker's own ``.dockerignore`` rules, ported line by line (not a look-alike).

Three pieces of Go decide what a ``docker build`` sends to the engine; each has its port here:

* the ignore-file reader, ``moby/patternmatcher/ignorefile.ReadAll`` (:func:`read_ignore_bytes`):
  the file is read as **bytes**, a UTF-8 BOM on the first line is dropped, lines starting with
  ``#`` are comments, the rest is trimmed (Go's ``strings.TrimSpace``), cleaned
  (``filepath.Clean``) and loses a leading ``/``. Bytes that are not UTF-8 are kept as they are
  (here: ``surrogateescape``), so a Latin-1 comment is just a comment and a Latin-1 name
  matches the same bytes on disk, as in the engine;
* the matcher, ``moby/patternmatcher`` (:class:`PatternMatcher`): case-sensitive, ``*``,
  ``?``, ``[...]``, ``**``, backslash escapes, ``!`` exceptions, the last matching line wins,
  a pattern also matches every path below what it names;
* the walk of ``archive.TarWithOptions`` (:func:`walk_context`): an excluded folder is skipped
  whole unless an exception pattern starts with its path, then it is walked (the folder entry
  itself stays out).

Bad patterns raise :class:`~opskit.errors.UsageError` naming the file and the line.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

from opskit.errors import UsageError

# Go's unicode.IsSpace for the code points strings.TrimSpace removes.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008" \
            "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_BOM = b"\xef\xbb\xbf"
_MAX_LINE = 64 * 1024  # bufio.Scanner's MaxScanTokenSize: a longer line is an error in Docker
_ESCAPE = set(".+()|{}$")


def go_trim_space(text: str) -> str:
    return text.strip(_GO_SPACE)


def go_clean(path: str) -> str:
    """Go's ``path/filepath.Clean`` on a slash-separated path."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = ("/" if rooted else "") + "/".join(out)
    return cleaned or "."


def decode(data: bytes) -> str:
    """Bytes as Go keeps them in a string: UTF-8 where valid, other bytes kept one by one."""
    return data.decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class IgnoreLine:
    pattern: str
    line: int  # 1-based line number in the file


def read_ignore_bytes(data: bytes, name: str = ".dockerignore") -> list[IgnoreLine]:
    """Port of ``ignorefile.ReadAll``: the patterns of an ignore file, with their line numbers."""
    out: list[IgnoreLine] = []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines, 1):
        if len(raw) > _MAX_LINE:
            raise UsageError(f"{name}, line {number}: the line is longer than 64 KiB, which "
                             "Docker refuses ('token too long')", f"shorten that line of {name}")
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM):]
        text = decode(raw)
        if text.startswith("#"):
            continue
        text = go_trim_space(text)
        if not text:
            continue
        invert = text.startswith("!")
        if invert:
            text = go_trim_space(text[1:])
        if text:
            text = go_clean(text)
            if len(text) > 1 and text.startswith("/"):
                text = text[1:]
        out.append(IgnoreLine(("!" if invert else "") + text, number))
    return out


# ---- Go's path/filepath.Match, only for its syntax check (patternmatcher.New calls it) ----

def _get_esc(chunk: str) -> tuple[str, str]:
    if not chunk or chunk[0] in "-]":
        raise ValueError
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise ValueError
    ch, rest = chunk[0], chunk[1:]
    if "\udc80" <= ch <= "\udcff" or not rest:
        raise ValueError
    return ch, rest


def _match_chunk(chunk: str, s: str) -> tuple[str, bool]:
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        if chunk[0] == "[":
            r = ""
            if not failed:
                r, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = bool(chunk) and chunk[0] == "^"
            if negated:
                chunk = chunk[1:]
            match, nrange = False, 0
            while True:
                if chunk and chunk[0] == "]" and nrange > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_esc(chunk[1:])
                if r and lo <= r <= hi:
                    match = True
                nrange += 1
            if match == negated:
                failed = True
            continue
        if chunk[0] == "?":
            if not failed:
                failed = s[0] == "/"
                s = s[1:]
            chunk = chunk[1:]
            continue
        if chunk[0] == "\\":
            chunk = chunk[1:]
            if not chunk:
                raise ValueError
        if not failed:
            failed = chunk[0] != s[0]
            s = s[1:]
        chunk = chunk[1:]
    return ("", False) if failed else (s, True)


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern.startswith("*"):
        pattern, star = pattern[1:], True
    inrange, i = False, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif ch == "[":
            inrange = True
        elif ch == "]":
            inrange = False
        elif ch == "*" and not inrange:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _star_skip(chunk: str, name: str, pattern: str) -> str | None:
    """What is left of ``name`` after ``*chunk`` (None: no match); raises on a bad chunk."""
    for i in range(len(name)):
        if name[i] == "/":
            break
        rest, ok = _match_chunk(chunk, name[i + 1:])
        if ok and not (not pattern and rest):
            return rest
    return None


def go_match_is_bad(pattern: str, name: str = ".") -> bool:
    """True where Go's ``filepath.Match(pattern, name)`` returns ``ErrBadPattern``."""
    try:
        while pattern:
            star, chunk, pattern = _scan_chunk(pattern)
            if star and not chunk:
                return False
            rest, ok = _match_chunk(chunk, name)
            if ok and (not rest or pattern):
                name = rest
                continue
            skipped = _star_skip(chunk, name, pattern) if star else None
            if skipped is not None:
                name = skipped
                continue
            while pattern:
                _, chunk, pattern = _scan_chunk(pattern)
                _match_chunk(chunk, "")
            return False
    except ValueError:
        return True
    return False


# ---- moby/patternmatcher ----

EXACT, PREFIX, SUFFIX, REGEXP = "exact", "prefix", "suffix", "regexp"


def _regex_char(ch: str) -> str:
    """One literal character in the regex (a byte that was not UTF-8 matches like Go's U+FFFD)."""
    if "\udc80" <= ch <= "\udcff" or ch == "\ufffd":
        return "[\udc80-\udcff\ufffd]"
    return ch


@dataclass
class Pattern:
    cleaned: str
    exclusion: bool
    line: int = 0
    kind: str = ""
    regex: re.Pattern[str] | None = field(default=None, repr=False)

    def compile(self) -> None:  # noqa: C901 - a line-by-line port of Pattern.compile
        reg, kind, p, i = "^", EXACT, self.cleaned, 0
        pos = 0
        while pos < len(p):
            ch = p[pos]
            pos += 1
            if ch == "*":
                if pos < len(p) and p[pos] == "*":
                    pos += 1
                    if pos < len(p) and p[pos] == "/":
                        pos += 1
                    if pos >= len(p):
                        if kind == EXACT:
                            kind = PREFIX
                        else:
                            reg, kind = reg + ".*", REGEXP
                    else:
                        reg, kind = reg + "(.*/)?", REGEXP
                    if i == 0:
                        kind = SUFFIX
                else:
                    reg, kind = reg + "[^/]*", REGEXP
            elif ch == "?":
                reg, kind = reg + "[^/]", REGEXP
            elif ch in _ESCAPE:
                reg += "\\" + ch
            elif ch == "\\":
                if pos < len(p):
                    reg, kind = reg + "\\" + _regex_char(p[pos]), REGEXP
                    pos += 1
                else:
                    reg += "\\\\"
            elif ch in "[]":
                reg, kind = reg + ch, REGEXP
            else:
                reg += _regex_char(ch)
            i += 1
        if kind == REGEXP:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                try:
                    self.regex = re.compile(reg + "\\Z")
                except re.error as exc:
                    raise _bad(self, f"Docker cannot read it ({exc})") from None
        self.kind = kind

    def match(self, path: str) -> bool:
        if not self.kind:
            self.compile()
        if self.kind == EXACT:
            return path == self.cleaned
        if self.kind == PREFIX:
            return path.startswith(self.cleaned[:-2])
        if self.kind == SUFFIX:
            suffix = self.cleaned[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regex is not None
        return self.regex.match(path) is not None


def _bad(pattern: Pattern, why: str) -> UsageError:
    shown = ("!" if pattern.exclusion else "") + pattern.cleaned
    where = f".dockerignore, line {pattern.line}" if pattern.line else ".dockerignore"
    return UsageError(f"{where}: pattern {shown!r} is not valid: {why}",
                      "fix or remove that line (docker build refuses it too)")


class PatternMatcher:
    """Port of ``patternmatcher.New`` + ``MatchesUsingParentResults`` (+ ``MatchesOrParentMatches``)."""

    def __init__(self, patterns: Iterable[str | IgnoreLine]):
        self.patterns: list[Pattern] = []
        for item in patterns:
            text, line = (item.pattern, item.line) if isinstance(item, IgnoreLine) else (item, 0)
            text = go_trim_space(text)
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise _bad(Pattern("", True, line), 'a lone "!" excludes nothing '
                               '(Docker: illegal exclusion pattern)')
                text = text[1:]
            pattern = Pattern(text, exclusion, line)
            if go_match_is_bad(text):
                raise _bad(pattern, "syntax error in pattern (an unclosed '[', a trailing '\\' ...)")
            self.patterns.append(pattern)
        self.exclusions = any(p.exclusion for p in self.patterns)

    def matches(self, file: str, parent: list[bool] | None = None) -> tuple[bool, list[bool]]:
        """(excluded, match info for the children) of a slash-separated relative path."""
        matched = False
        info = [False] * len(self.patterns)
        for i, pattern in enumerate(self.patterns):
            match = bool(parent) and parent[i]  # type: ignore[index]
            if not match:
                if pattern.exclusion != matched:
                    continue
                match = pattern.match(file)
                if not match and not parent:
                    match = self._parent_matches(pattern, file)
            info[i] = match
            if match:
                matched = not pattern.exclusion
        return matched, info

    @staticmethod
    def _parent_matches(pattern: Pattern, file: str) -> bool:
        parent = os.path.dirname(file)
        if not parent or parent == ".":
            return False
        dirs = parent.split("/")
        return any(pattern.match("/".join(dirs[:i + 1])) for i in range(len(dirs)))

    def excluded(self, file: str) -> bool:
        """``MatchesOrParentMatches`` of a slash-separated relative path."""
        file = go_clean(file)
        return file != "." and self.matches(file)[0]


def walk_context(root: str, matcher: PatternMatcher) -> list[str]:
    """Port of the walk in ``archive.TarWithOptions``: relative paths sent, in walk order."""
    out: list[str] = []
    stack: list[tuple[str, list[bool]]] = []

    def visit(folder: str, prefix: str) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: os.fsencode(e.name))
        except OSError as exc:
            raise UsageError(f"cannot read {folder} for the build context: {exc.strerror}",
                             "make it readable, or list it in .dockerignore") from exc
        for entry in entries:
            rel = prefix + entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            while stack and not rel.startswith(stack[-1][0] + "/"):
                stack.pop()
            skip, info = matcher.matches(rel, stack[-1][1] if stack else None)
            if is_dir:
                stack.append((rel, info))
            if skip:
                if is_dir and matcher.exclusions and any(
                        p.exclusion and (p.cleaned + "/").startswith(rel + "/")
                        for p in matcher.patterns):
                    visit(entry.path, rel + "/")
                continue
            out.append(rel)
            if is_dir:
                visit(entry.path, rel + "/")

    visit(root, "")
    return out
