"""What git says about a project: commit, dirty flag, and a hash of the uncommitted changes.

One helper for the image labels (``opskit build``) and the run card (``opskit run-remote``).
Every git call has a timeout and any failure (no git, not a work tree, a git that hangs)
gives ``None`` fields: nothing opskit does ever waits on git or fails because of it.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass

GIT_TIMEOUT = 20.0  # seconds for each git command


@dataclass(frozen=True)
class GitFacts:
    commit: str | None
    dirty: bool | None
    changes_sha256: str | None  # of the tracked diff and the untracked names; None when clean

    def to_dict(self) -> dict:
        return {"commit": self.commit, "dirty": self.dirty, "changes_sha256": self.changes_sha256}


UNKNOWN = GitFacts(None, None, None)


def git_facts(path: str | None = None, *, only_path: bool = False) -> GitFacts:
    """Facts of the work tree holding ``path`` (default: the current folder). With
    ``only_path``, changes count only below ``path`` (a project inside a larger repository)."""
    spec = ["--", "."] if only_path else []

    def git(*argv: str) -> str | None:
        cmd = ["git", *(["-C", path] if path else []), *argv]
        try:
            res = subprocess.run(cmd, capture_output=True, timeout=GIT_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return res.stdout.decode("utf-8", "replace") if res.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return UNKNOWN
    diff = git("diff", "HEAD", "--binary", *spec)
    untracked = git("ls-files", "--others", "--exclude-standard", *spec)
    if diff is None or untracked is None:
        return GitFacts(commit.strip(), None, None)
    dirty = bool(diff.strip() or untracked.strip())
    digest = hashlib.sha256((diff + "\0" + untracked).encode()).hexdigest() if dirty else None
    return GitFacts(commit.strip(), dirty, digest)
