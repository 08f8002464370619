"""The build context: which files are sent to the engine, as a deterministic tar.

* The files are exactly what ``docker build`` sends for the same folder: the project's
  ``.dockerignore`` is read and matched by :mod:`opskit.images.dockerignore`, a port of Docker's
  own reader, matcher and walk (case-sensitive, BOM dropped, bytes that are not UTF-8 kept as
  bytes, ``!`` exceptions, ``**``, escapes), and ``.dockerignore`` itself is always sent, as the
  docker CLI does. Proven against the real engine by ``tests/integration/test_dockerignore_engine.py``.
* A project **without** a ``.dockerignore`` gets :data:`DEFAULT_EXCLUDES` as if it were its
  ``.dockerignore`` (``.git``, virtual environments, ``runs/``, caches, build outputs); a project
  with one gets only what it says.
* ``.opskit-build/`` is opskit's own folder in every context (its recipe and runtime): a project
  folder of that name is never sent.
* Entries are sorted, owned by root and carry a fixed mtime, so the same sources give the same
  tar and the same layer digests on every machine. The engine's cache keys on content only.
* :class:`BuildContext` reports the bytes sent, the file count, the largest files (for the
  "large context" warning) and a sha256 of the sources that went in (an image label).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from opskit.errors import UsageError
from opskit.images.dockerignore import IgnoreLine, PatternMatcher, read_ignore_bytes, walk_context

# The .dockerignore of a project that has none (dockerignore syntax).
DEFAULT_EXCLUDES = (
    ".git", ".hg", ".svn", ".venv", "venv", "runs", ".opskit",
    "build", "dist", "*.egg-info", "**/__pycache__", "**/*.pyc", "**/*.pyo",
    ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", ".nox", ".ipynb_checkpoints",
    "node_modules", "**/.DS_Store", "*.opskit-part",
)
# opskit's own folder in every context: never taken from the project.
RESERVED = ".opskit-build"
DOCKERIGNORE = ".dockerignore"
# A context above this many bytes gets a warning naming its largest files.
LARGE_CONTEXT = 50 * 1024 * 1024
FIXED_MTIME = 315532800  # 1980-01-01: reproducible tars (the cache keys on content, not mtime)
SPOOL_LIMIT = 32 * 1024 * 1024


@dataclass
class BuildContext:
    """A ready-to-send tar. ``fileobj`` is positioned at 0; close it when the build is over."""

    fileobj: IO[bytes]
    size: int
    files: int
    source_sha256: str
    largest: list[tuple[str, int]] = field(default_factory=list)

    @property
    def large(self) -> bool:
        return self.size > LARGE_CONTEXT

    def close(self) -> None:
        self.fileobj.close()

    def to_dict(self) -> dict:
        return {
            "bytes": self.size, "files": self.files, "source_sha256": self.source_sha256,
            "largest": [{"path": p, "bytes": n} for p, n in self.largest],
        }


def ignore_lines(root: str) -> list[IgnoreLine] | None:
    """The patterns of ``root/.dockerignore`` as Docker reads them; None when there is none."""
    path = os.path.join(root, DOCKERIGNORE)
    if not os.path.exists(path):  # a dangling link too, as the docker CLI reads it
        return None
    if not os.path.isfile(path):
        raise UsageError(f"{path} is not a file", "docker build refuses it too: make it a text "
                         "file of patterns, or remove it")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", "make it readable") from exc
    return read_ignore_bytes(data, path)


def read_dockerignore(root: str) -> list[str]:
    """The patterns of ``root/.dockerignore`` (comments and blank lines dropped, cleaned)."""
    return [line.pattern for line in ignore_lines(root) or []]


def context_paths(root: str, patterns: Iterable[str | IgnoreLine] = ()) -> list[str]:
    """Relative paths (files, folders, links) under ``root`` that go into the context, sorted.

    ``patterns`` are a ``.dockerignore``'s; as the docker CLI does, ``.dockerignore`` itself is
    sent even where they leave it out (the engine reads it, then drops it).
    """
    matcher = PatternMatcher(patterns)
    if matcher.excluded(DOCKERIGNORE):
        matcher = PatternMatcher([*patterns, "!" + DOCKERIGNORE])
    return sorted(rel for rel in walk_context(root, matcher)
                  if rel != RESERVED and not rel.startswith(RESERVED + "/"))


def project_files(root: str) -> dict[str, str]:
    """``{arcname: local path}`` for a project directory, as ``docker build`` would send it."""
    if not os.path.isdir(root):
        raise UsageError(f"project directory {root} does not exist")
    lines = ignore_lines(root)
    patterns: Iterable[str | IgnoreLine] = DEFAULT_EXCLUDES if lines is None else lines
    return {rel: os.path.join(root, rel) for rel in context_paths(root, patterns)}


def usual_excludes_sent(arcnames: Iterable[str]) -> list[str]:
    """Top-level names of a context that :data:`DEFAULT_EXCLUDES` would leave out (``.git``,
    ``runs`` ...): worth a word when the project's own .dockerignore lets them in."""
    defaults = PatternMatcher(DEFAULT_EXCLUDES)
    tops = {a.split("/", 1)[0] for a in arcnames}
    return sorted(t for t in tops if t != DOCKERIGNORE and defaults.excluded(t))


def tree_files(root: str, prefix: str, *, skip: Iterable[str] = ()) -> dict[str, str]:
    """``{prefix/rel: local path}`` for every file under ``root`` (``DEFAULT_EXCLUDES`` applied)."""
    return {f"{prefix}/{rel}": os.path.join(root, rel)
            for rel in context_paths(root, [*DEFAULT_EXCLUDES, *skip])}


def _tarinfo(arcname: str, local: str) -> tarfile.TarInfo | None:
    st = os.lstat(local)
    info = tarfile.TarInfo(arcname)
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(local)
        info.mode = 0o777
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    elif stat.S_ISREG(st.st_mode):
        info.size = st.st_size
        info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    else:  # sockets, fifos, devices: never part of a build
        return None
    return info


def make_context(
    files: Mapping[str, str],
    extra: Mapping[str, bytes] | None = None,
    recipe: tuple[str, Callable[[str], bytes]] | None = None,
) -> BuildContext:
    """A tar of ``files`` (``{arcname: local path}``) plus ``extra`` (``{arcname: bytes}``).

    ``extra`` entries win over files of the same name. ``recipe`` is ``(arcname, make)``: the
    Dockerfile, made by ``make(source_sha256)`` once the sources are hashed (so that it can
    carry the hash as a label) and left out of the hash itself.
    """
    extra = dict(extra or {})
    fileobj: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_LIMIT)  # noqa: SIM115
    digest = hashlib.sha256()
    sizes: list[tuple[str, int]] = []
    count = 0
    try:
        with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for arcname in sorted(files):
                if arcname in extra:
                    continue
                info = _tarinfo(arcname, files[arcname])
                if info is None:
                    continue
                if info.isfile():
                    with open(files[arcname], "rb") as fh:
                        _add_file(tar, info, fh, digest)
                    sizes.append((arcname, info.size))
                    count += 1
                else:
                    digest.update(f"{info.type!r} {arcname} {info.linkname}\n".encode("utf-8", "surrogateescape"))
                    tar.addfile(info)
            for arcname in sorted(extra):
                info = tarfile.TarInfo(arcname)
                info.size, info.mtime, info.mode = len(extra[arcname]), FIXED_MTIME, 0o644
                _add_file(tar, info, io.BytesIO(extra[arcname]), digest)
                count += 1
            if recipe is not None:
                data = recipe[1](digest.hexdigest())
                info = tarfile.TarInfo(recipe[0])
                info.size, info.mtime, info.mode = len(data), FIXED_MTIME, 0o644
                tar.addfile(info, io.BytesIO(data))
                count += 1
        size = fileobj.tell()
        fileobj.seek(0)
    except BaseException:
        fileobj.close()
        raise
    sizes.sort(key=lambda item: (-item[1], item[0]))
    return BuildContext(fileobj, size, count, digest.hexdigest(), sizes[:5])


class _HashingReader:
    """Hands bytes to tarfile while feeding them to a digest (one read of each file)."""

    def __init__(self, fh: IO[bytes], digest: Any):
        self.fh = fh
        self.digest = digest

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.digest.update(data)
        return data


def _add_file(tar: tarfile.TarFile, info: tarfile.TarInfo, fh: IO[bytes], digest: Any) -> None:
    """Add one regular file, hashing its name, mode and bytes as they are written."""
    digest.update(f"file {info.name} {info.mode:o} {info.size}\n".encode("utf-8", "surrogateescape"))
    tar.addfile(info, _HashingReader(fh, digest))  # type: ignore[arg-type]
