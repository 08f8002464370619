"""The layers of an image as the seed explains them: instruction, size, digest; and what two
images share.

Sizes are the engine's own (``GET /images/{name}/history``, what ``docker history`` prints).
Digests are the layers' ``diff_id``s (``RootFS.Layers`` of the image). History entries and
diff_ids are matched exactly where the engine still knows each step's image (images built
here): a step added a layer when its image has one more diff_id than its parent. For entries
the engine calls ``<missing>`` (a pulled or imported base), sizes and instructions decide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from opskit.errors import UsageError
from opskit.hosts.dockererrors import or_none

_NOP = re.compile(r"^/bin/sh -c #\(nop\)\s+")
_SHELL = re.compile(r"^(?:\|\d+ (?:\S+=\S*\s+)*)?/bin/sh -c\s+")
_BUILDKIT = re.compile(r"\s*# buildkit$")
_METADATA = ("ENV", "LABEL", "ENTRYPOINT", "CMD", "ARG", "EXPOSE", "USER", "VOLUME",
             "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER", "ONBUILD")


def instruction_of(created_by: str, comment: str = "") -> str:
    """``/bin/sh -c #(nop) COPY dir:… in /app`` -> ``COPY dir:… in /app``; shell steps -> RUN."""
    text = _BUILDKIT.sub("", (created_by or "").strip())
    if not text:
        return f"({comment})" if comment else "(no instruction)"
    if _NOP.match(text):
        return _NOP.sub("", text).strip()
    if _SHELL.match(text):
        return "RUN " + _SHELL.sub("", text).strip()
    return text


def short_instruction(text: str, width: int = 60) -> str:
    """For tables: whitespace collapsed, sha256 digests cut to 12 hex digits, at most ``width``."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\b([0-9a-f]{12})[0-9a-f]{52}\b", r"\1…", text)
    return text if len(text) <= width else text[: width - 1] + "…"


def docker_size(n: int) -> str:
    """Sizes as ``docker history`` prints them (go-units HumanSizeWithPrecision(n, 3))."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    size, i = float(n), 0
    while size >= 1000.0 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.3g}{units[i]}"


@dataclass(frozen=True)
class Layer:
    index: int  # 0 = the oldest history entry
    instruction: str
    size: int
    diff_id: str | None  # None: a metadata-only step (no filesystem layer)
    history_id: str | None  # the image of this step, None where the engine says <missing>
    created: int
    created_by: str

    def to_dict(self) -> dict:
        return {
            "index": self.index, "instruction": self.instruction, "size": self.size,
            "size_human": docker_size(self.size), "diff_id": self.diff_id,
            "history_id": self.history_id, "created": self.created, "created_by": self.created_by,
        }


ID_IS = {
    "legacy": "the config digest (legacy image store)",
    "containerd": "the manifest or index digest (containerd image store; the config digest differs)",
}


@dataclass(frozen=True)
class ImageLayers:
    image_id: str
    tags: tuple[str, ...]
    size: int
    layers: tuple[Layer, ...]
    diff_ids: tuple[str, ...]
    store: str = ""  # the engine's image store: "legacy" or "containerd" ("" when not known)

    @property
    def id_is(self) -> str:
        """What ``image_id`` is: IDs differ by store; layers (diff IDs) do not."""
        return ID_IS.get(self.store, "the engine's image ID")

    def to_dict(self) -> dict:
        return {
            "image_id": self.image_id, "id_is": self.id_is, "store": self.store, "tags": list(self.tags),
            "size": self.size, "layers": [layer.to_dict() for layer in self.layers],
        }


def _is_metadata(instruction: str) -> bool:
    return instruction.split(maxsplit=1)[0].upper() in _METADATA if instruction else True


def _assign(segment: list[dict], needed: int) -> list[bool]:
    """Which entries of a run of history entries carry the ``needed`` layers."""
    flags = [e["Size"] > 0 for e in segment]
    for i, entry in enumerate(segment):  # then zero-byte steps that may still add a layer
        if sum(flags) >= needed:
            break
        if not flags[i] and not _is_metadata(entry["instruction"]):
            flags[i] = True
    if sum(flags) != needed:
        # Inconsistent with the engine's counts: trust sizes, keep the order of diff_ids.
        flags = [e["Size"] > 0 for e in segment]
    return flags


def match_layers(history: list[dict], diff_ids: list[str], counts: dict[str, int]) -> list[Layer]:
    """Pure: history (newest first, as the API gives it) + diff_ids -> layers, oldest first.

    ``counts`` maps a history Id to the number of diff_ids of that step's image.
    """
    entries = []
    for h in reversed(history):
        hid = h.get("Id") if h.get("Id") not in (None, "", "<missing>") else None
        entries.append({**h, "Id": hid, "Size": int(h.get("Size") or 0),
                        "instruction": instruction_of(h.get("CreatedBy", ""), h.get("Comment", ""))})
    adds: list[bool] = []
    segment: list[dict] = []
    done = 0
    for entry in entries:
        segment.append(entry)
        if entry["Id"] is not None and entry["Id"] in counts:
            adds.extend(_assign(segment, counts[entry["Id"]] - done))
            done = counts[entry["Id"]]
            segment = []
    if segment:
        adds.extend(_assign(segment, len(diff_ids) - done))
    layers, pos = [], 0
    for i, (entry, add) in enumerate(zip(entries, adds, strict=True)):
        diff = diff_ids[pos] if add and pos < len(diff_ids) else None
        pos += 1 if diff else 0
        layers.append(Layer(i, entry["instruction"], entry["Size"], diff, entry["Id"],
                            int(entry.get("Created") or 0), entry.get("CreatedBy", "")))
    return layers


def image_layers(client: Any, ref: str) -> ImageLayers:
    """The layers of image ``ref`` on the engine of ``client`` (docker-py)."""
    api = client.api
    info = or_none(lambda: api.inspect_image(ref))
    history = or_none(lambda: api.history(ref)) if info is not None else None
    if info is None or history is None:
        raise UsageError(f"image {ref} is not on this engine", "see 'docker images'")
    counts: dict[str, int] = {}
    for h in history:
        hid = h.get("Id")
        if hid and hid != "<missing>":
            layer = or_none(lambda hid=hid: api.inspect_image(hid))
            if layer is not None:
                counts[hid] = len(layer["RootFS"].get("Layers") or [])
    diff_ids = list(info.get("RootFS", {}).get("Layers") or [])
    layers = match_layers(history, diff_ids, counts)
    from opskit.images.contentstore import store_kind

    return ImageLayers(info["Id"], tuple(info.get("RepoTags") or ()), int(info.get("Size") or 0),
                       tuple(layers), tuple(diff_ids), store_kind(client.info()))


@dataclass(frozen=True)
class Comparison:
    """Two images layer by layer. Layers are shared only as a common prefix of diff_ids: the
    engine stores a layer by its whole chain, so an equal diff on a different parent is not
    shared (and is shipped again)."""

    image: ImageLayers
    other: ImageLayers
    shared: int  # number of shared filesystem layers (from the bottom)

    def _split(self, img: ImageLayers) -> tuple[list[Layer], list[Layer]]:
        fs = [layer for layer in img.layers if layer.diff_id]
        return fs[: self.shared], fs[self.shared:]

    @property
    def shared_bytes(self) -> int:
        return sum(layer.size for layer in self._split(self.image)[0])

    @property
    def only_image(self) -> list[Layer]:
        return self._split(self.image)[1]

    @property
    def only_other(self) -> list[Layer]:
        return self._split(self.other)[1]

    @property
    def only_image_bytes(self) -> int:
        return sum(layer.size for layer in self.only_image)

    @property
    def only_other_bytes(self) -> int:
        return sum(layer.size for layer in self.only_other)

    def to_dict(self) -> dict:
        return {
            "image": self.image.to_dict(), "other": self.other.to_dict(),
            "shared_layers": self.shared, "shared_bytes": self.shared_bytes,
            "only_image": [x.diff_id for x in self.only_image],
            "only_other": [x.diff_id for x in self.only_other],
            "only_image_bytes": self.only_image_bytes,
            "only_other_bytes": self.only_other_bytes,
            "differing_bytes": self.only_image_bytes + self.only_other_bytes,
        }


def compare(image: ImageLayers, other: ImageLayers) -> Comparison:
    shared = 0
    for a, b in zip(image.diff_ids, other.diff_ids, strict=False):
        if a != b:
            break
        shared += 1
    return Comparison(image, other, shared)
