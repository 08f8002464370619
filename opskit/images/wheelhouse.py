"""Python dependencies without network inside the build: a wheelhouse fetched on the build host.

``pip download`` runs here, on the host, with the host's own package sources (an index, a
mirror or local folders: whatever ``pip config list`` says). The wheels land in
``<cache>/wheelhouse/<key>/`` where ``key`` is a sha256 of the normalised requirements, the
target Python version and the machine. A wheelhouse is made once (into a temporary folder,
renamed into place when complete) and reused while the requirements do not change. The image
installs from it with ``pip install --no-index --find-links``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from opskit.errors import BuildError, UsageError

DEFAULT_TORCH = "torch==2.13.0"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_NOT_FOUND = re.compile(
    r"(?:No matching distribution found for|Could not find a version that satisfies the requirement)\s+(\S+)"
)


@dataclass(frozen=True)
class Wheelhouse:
    path: str
    key: str
    requirements: tuple[str, ...]
    files: tuple[str, ...]
    bytes: int
    reused: bool

    def version_of(self, name: str) -> str | None:
        """The version of ``name``'s wheel in this wheelhouse (e.g. ``2.13.0+cpu``)."""
        return wheel_version(self.files, name)

    def to_dict(self) -> dict:
        return {
            "path": self.path, "key": self.key, "requirements": list(self.requirements),
            "files": len(self.files), "bytes": self.bytes, "reused": self.reused,
        }


def cache_root() -> Path:
    """``$OPSKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/opskit``, else ``~/.cache/opskit``."""
    from opskit import settings

    if settings.get("cache_dir"):
        return Path(settings.get("cache_dir"))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "opskit"


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str | None:
    """``"Torch>=2.1 ; python_version>'3'"`` -> ``"torch"``; option lines -> None."""
    if line.lstrip().startswith("-"):
        return None
    m = _NAME.match(line)
    return canonical_name(m.group(1)) if m else None


def read_requirements(path: str, _seen: frozenset[str] = frozenset()) -> list[str]:
    """Requirement lines of a requirements file, ``-r`` includes expanded, comments dropped."""
    real = os.path.realpath(path)
    if real in _seen:
        raise UsageError(f"{path}: requirements include themselves")
    out: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            include = re.match(r"^(?:-r|--requirement)[\s=]+(\S+)$", line)
            if include:
                target = os.path.join(os.path.dirname(path), include.group(1))
                if not os.path.isfile(target):
                    raise UsageError(f"{path} includes {target} ('{line}'), which does not exist",
                                     "fix the -r line, or create the file it names")
                out.extend(read_requirements(target, _seen | {real}))
            else:
                out.append(line)
    return out


def with_torch(requirements: Iterable[str], torch: str = DEFAULT_TORCH) -> list[str]:
    """The training entry needs torch: add the default pin when no requirement names it."""
    reqs = list(requirements)
    if not any(requirement_name(r) == "torch" for r in reqs):
        reqs.append(torch)
    return reqs


def without(requirements: Iterable[str], names: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split requirements into (kept, dropped) by package name (e.g. what the base provides)."""
    drop = {canonical_name(n) for n in names}
    kept, dropped = [], []
    for r in requirements:
        (dropped if requirement_name(r) in drop else kept).append(r)
    return kept, dropped


def requirements_key(requirements: Iterable[str], python_version: str, machine: str | None = None) -> str:
    """A sha256 of what decides the wheelhouse's content (order and spacing do not count)."""
    norm = sorted({re.sub(r"\s+", "", r) for r in requirements})
    payload = json.dumps({"requirements": norm, "python": python_version,
                          "machine": machine or platform.machine()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def wheel_version(files: Iterable[str], name: str) -> str | None:
    want = canonical_name(name)
    for f in files:
        if f.endswith(".whl"):
            parts = f.split("-")
            if len(parts) >= 2 and canonical_name(parts[0]) == want:
                return parts[1]
    return None


def pip_failure_package(output: str) -> str | None:
    """The requirement pip named when it could not resolve one, from pip's own output."""
    found = _NOT_FOUND.findall(output)
    return found[-1] if found else None


def host_python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def ensure_wheelhouse(
    requirements: list[str],
    *,
    python_version: str | None = None,
    cache_dir: Path | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> Wheelhouse:
    """The wheelhouse for ``requirements`` (made with ``pip download`` unless cached)."""
    python_version = python_version or host_python_version()
    key = requirements_key(requirements, python_version)
    root = (cache_dir or cache_root()) / "wheelhouse"
    final = root / key
    if (final / "manifest.json").is_file():
        return _load(final, key, reused=True)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=root))
    try:
        _download(requirements, tmp, python_version, log)
        files = sorted(f for f in os.listdir(tmp) if not f.startswith("."))
        (tmp / "requirements.txt").write_text("".join(r + "\n" for r in requirements))
        manifest = {"key": key, "python": python_version, "requirements": requirements,
                    "files": {f: (tmp / f).stat().st_size for f in files}}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "manifest.json").is_file():  # not a concurrent twin: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return _load(final, key, reused=False)


def _download(requirements: list[str], dest: Path, python_version: str, log: Callable[[str], None]) -> None:
    req_file = dest / ".requirements.in"
    req_file.write_text("".join(r + "\n" for r in requirements))
    target = ([] if python_version == host_python_version()
              else ["--python-version", python_version, "--only-binary=:all:"])
    argv = [sys.executable, "-m", "pip", "download", "--dest", str(dest), "--progress-bar", "off",
            "-r", str(req_file), *target]
    log("$ " + shlex.join(argv[1:]))
    proc = subprocess.run(argv, capture_output=True, text=True)
    req_file.unlink()
    if proc.returncode == 0:
        return
    output = proc.stdout + proc.stderr
    tail = "\n  ".join(output.strip().splitlines()[-8:])
    package = pip_failure_package(output)
    if package:
        raise UsageError(
            f"pip cannot resolve the requirement {package} from this host's package sources:\n  {tail}",
            "check the name and version in requirements.txt; offline, pip sees only the sources in "
            "'pip config list' (a local index or --find-links folder), so add the wheel there",
        )
    # The temporary -r file and --dest folder are gone by now: a command that works on its own.
    again = shlex.join([sys.executable, "-m", "pip", "download", "--dest", "wheelhouse", *target,
                        *requirements])
    raise BuildError(f"pip download failed (exit {proc.returncode}):\n  {tail}",
                     f"run this by hand to see why: {again}")


def _load(path: Path, key: str, *, reused: bool) -> Wheelhouse:
    manifest = json.loads((path / "manifest.json").read_text())
    files = manifest["files"]
    missing = [f for f, size in files.items()
               if not (path / f).is_file() or (path / f).stat().st_size != size]
    if missing:
        raise BuildError(
            f"wheelhouse {path} is damaged: {', '.join(missing[:3])} missing or changed",
            f"remove {path} and build again (it will be downloaded anew)",
        )
    return Wheelhouse(str(path), key, tuple(manifest["requirements"]), tuple(sorted(files)),
                      sum(files.values()), reused)
