"""One host's archive as it travels: the frames of the layer blobs it needs (shared between
hosts), the tail frame (config, manifest, index.json, oci-layout, manifest.json), its size and
its sha256 (computed once per distinct archive however many hosts get it)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opskit.images.shiptar import ImageParts, tail_bytes, tail_frame

UPLOAD_CHUNK = 1 << 20


@dataclass
class Archive:
    """One host's archive: frame files (shared) + the tail frame (per tag set)."""

    frames: list[str]
    tail: bytes
    raw_bytes: int
    layers: int = 0  # layer blobs in it

    @property
    def wire_bytes(self) -> int:
        return sum(os.path.getsize(f) for f in self.frames) + len(self.tail)

    def sha256(self) -> str:
        h = hashlib.sha256()
        for chunk in self.chunks(0):
            h.update(chunk)
        return h.hexdigest()

    @property
    def key(self) -> tuple:
        return tuple(self.frames), self.tail

    def chunks(self, skip: int) -> Any:
        """The compressed stream from byte ``skip`` on (for a resumed upload)."""
        for path in self.frames:
            size = os.path.getsize(path)
            if skip >= size:
                skip -= size
                continue
            with open(path, "rb") as fh:
                fh.seek(skip)
                skip = 0
                yield from iter(lambda fh=fh: fh.read(UPLOAD_CHUNK), b"")
        if skip < len(self.tail):
            yield self.tail[skip:]


def archive_for(parts: ImageParts, indexes: Sequence[int], repo_tags: list[str]) -> Archive:
    """The hybrid archive holding the blobs of these layers (each distinct blob once)."""
    digests = list(dict.fromkeys(parts.layers[i].digest for i in sorted(indexes)))
    tail = tail_bytes(parts, repo_tags)
    raw = sum(parts.frame_raw_size(d) for d in digests) + len(tail)
    frames = [parts.frames[d] for d in digests]
    return Archive(frames, tail_frame(parts, repo_tags, parts.codec), raw, len(digests))


class ArchiveDigests:
    """sha256 of each distinct archive of one ship, computed once however many hosts get it
    (hosts that lack the same layers get byte-identical archives of up to gigabytes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[tuple, threading.Lock] = {}
        self._values: dict[tuple, str] = {}

    def of(self, archive: Archive) -> str:
        with self._lock:
            lock = self._locks.setdefault(archive.key, threading.Lock())
        with lock:  # a second host with the same archive waits for the first's hash
            if archive.key not in self._values:
                self._values[archive.key] = archive.sha256()
            return self._values[archive.key]
