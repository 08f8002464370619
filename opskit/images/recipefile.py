"""Reading a recipe (Dockerfile) with Docker's own parser, and checking it before a build.

The parser is BuildKit's (``github.com/moby/buildkit/frontend/dockerfile/parser``) through the
``dockerfile`` package, so every valid form is read as Docker reads it: JSON-form
``COPY``/``ADD``, flags, line continuations, the ``escape`` directive, ``ARG`` before ``FROM``,
heredocs. On top of it:

* :func:`buildkit_only` lists what the engine's classic builder (the one opskit drives through
  the Engine API) does not have: heredocs, ``RUN --mount`` (secrets, caches, ssh),
  ``RUN --network``/``--security``, ``COPY``/``ADD --chmod``, ``--link``, ``--parents``,
  ``--exclude``, ``ADD --checksum``/``--keep-git-dir``. A recipe using them is refused up front.
* :func:`copy_sources` gives the context paths that ``COPY``/``ADD`` read (not ``--from``
  copies, URLs, heredocs, or sources with ``$VARIABLES``), so a missing folder is reported
  before the engine is asked; globs are matched like Docker matches them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from opskit.errors import UsageError

_CLASSIC_FLAGS = {"COPY": ("--from", "--chown"), "ADD": ("--chown",), "FROM": ("--platform",),
                  "RUN": (), "HEALTHCHECK": ("--interval", "--timeout", "--start-period",
                                             "--retries", "--start-interval")}


@dataclass(frozen=True)
class Instruction:
    cmd: str  # upper case: FROM, COPY ...
    flags: tuple[str, ...]
    value: tuple[str, ...]
    original: str
    line: int
    heredoc: bool
    json: bool


def parse(text: str, name: str = "recipe") -> list[Instruction]:
    """The instructions of a Dockerfile, or :class:`UsageError` naming the line Docker refuses."""
    try:
        import dockerfile
    except ImportError as exc:  # an environment made before opskit depended on it
        raise UsageError("opskit reads recipes with the 'dockerfile' package, which is not "
                         "installed", "pip install 'dockerfile>=3.3,<4' (or pip install -e .)") from exc
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as exc:
        raise UsageError(f"{name} is not a valid Dockerfile: {exc}",
                         "fix the recipe (docker build refuses it too)") from None
    return [Instruction(c.cmd.upper(), tuple(c.flags), tuple(c.value), c.original, c.start_line,
                        bool(c.heredocs), bool(c.json)) for c in commands]


def buildkit_only(instructions: list[Instruction]) -> list[str]:
    """``"line N: what"`` for each use of syntax that needs BuildKit."""
    out = []
    for ins in instructions:
        if ins.heredoc:
            out.append(f"line {ins.line}: a heredoc ({ins.cmd} <<...)")
        allowed = _CLASSIC_FLAGS.get(ins.cmd)
        if allowed is None:
            continue
        for flag in ins.flags:
            name = flag.split("=", 1)[0]
            if name not in allowed:
                out.append(f"line {ins.line}: {ins.cmd} {name}")
    return out


def has_buildx() -> bool:
    """Whether this machine's docker CLI has the buildx plugin (BuildKit)."""
    import shutil
    import subprocess

    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "buildx", "version"], capture_output=True, timeout=20,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def check_classic_builder(instructions: list[Instruction], name: str,
                          buildx: Callable[[], bool] = has_buildx) -> None:
    """Refuse BuildKit-only syntax up front: opskit builds with the engine's classic builder."""
    found = buildkit_only(instructions)
    if not found:
        return
    where = "; ".join(found[:6]) + (f" (and {len(found) - 6} more)" if len(found) > 6 else "")
    hint = ("rewrite those lines without BuildKit syntax (e.g. COPY a file from the project "
            "instead of a heredoc, RUN without --mount)")
    if buildx():
        hint += ("; or build the image yourself with 'docker buildx build' (this machine has "
                 "it) and run it by tag")
    raise UsageError(
        f"{name} uses syntax that needs BuildKit, which opskit's builder (the engine's classic "
        f"builder, driven through the Engine API) does not have: {where}", hint)


def copy_sources(instructions: list[Instruction], reserved: str = "") -> list[str]:
    """Context paths (or globs) that COPY/ADD read, cleaned (``./src/`` -> ``src``)."""
    out: list[str] = []
    for ins in instructions:
        if ins.cmd not in ("COPY", "ADD") or ins.heredoc or len(ins.value) < 2:
            continue
        if any(f.startswith("--from") for f in ins.flags):
            continue
        for src in ins.value[:-1]:
            if "://" in src or src.startswith("git@") or src.startswith("<<") or "$" in src:
                continue
            cleaned = _clean(src)
            if reserved and (cleaned == reserved or cleaned.startswith(reserved + "/")):
                continue
            out.append(cleaned)
    return out


def _clean(src: str) -> str:
    from opskit.images.dockerignore import go_clean

    cleaned = go_clean("/" + src).lstrip("/")
    return cleaned or "."


def is_glob(src: str) -> bool:
    return any(ch in src for ch in "*?[")


def source_present(src: str, arcnames: set[str]) -> bool:
    """Whether the context holds ``src`` (a path, a folder, or a glob with a match)."""
    if src == "." or src in arcnames or any(a.startswith(src + "/") for a in arcnames):
        return True
    if not is_glob(src):
        return False
    from opskit.images.dockerignore import Pattern

    pattern = Pattern(src, False)
    folders = {a.rsplit("/", i)[0] for a in arcnames for i in range(1, a.count("/") + 1)}
    return any(pattern.match(a) for a in arcnames | folders)
