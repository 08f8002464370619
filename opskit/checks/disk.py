"""``df``: filesystems with size, used, free and percent, in bytes exactly as ``df -B1``.

What counts as a REAL filesystem (shown by default): one that stores data, i.e. every
filesystem ``df`` lists except

- pseudo and memory filesystems (``proc``, ``sysfs``, ``tmpfs``, ``devtmpfs``, ``cgroup``,
  ``squashfs`` snap images, ...) listed in :data:`PSEUDO_TYPES`;
- filesystems of size 0 (nothing to report);
- mounts that a container engine makes for its containers BELOW its own directories
  (``/var/lib/docker/overlay2/*/merged``, ``/run/containerd/...``): on a Docker host they
  repeat the root filesystem once per running container.

``overlay`` is real: inside a container the root filesystem is an overlay and must show.
``--all`` (``df -a``) shows everything, unfiltered.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from opskit.checks.sections import Section, run_sections
from opskit.errors import HostError, ParseError, UsageError
from opskit.hosts.transport import Transport

PSEUDO_TYPES = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "efivarfs", "fusectl", "fuse.gvfsd-fuse", "fuse.lxcfs", "fuse.portal",
    "hugetlbfs", "mqueue", "none", "nsfs", "proc", "pstore", "ramfs", "rpc_pipefs",
    "securityfs", "selinuxfs", "squashfs", "sysfs", "tmpfs", "tracefs", "nfsd", "rootfs",
})

# Mount points strictly below these directories belong to a container engine's internals.
ENGINE_DIRS = (
    "/var/lib/docker/", "/var/lib/containerd/", "/run/containerd/", "/run/docker/",
    "/var/lib/containers/storage/", "/run/containers/storage/", "/var/lib/kubelet/pods/",
    "/run/k3s/containerd/", "/var/snap/docker/common/var-lib-docker/",
)

_ROW = re.compile(
    r"^(?P<source>.+?)\s+(?P<type>\S+)\s+(?P<size>\d+)\s+(?P<used>\d+)\s+(?P<free>\d+)\s+"
    r"(?P<percent>\d+%|-)\s+(?P<mount>/.*)$"
)
_HEADER = re.compile(r"^Filesystem\s+Type\s+(?P<block>\d+)-blocks\s+Used\s+Available\s+"
                     r"(Capacity|Use%)\s+Mounted on\s*$")


@dataclass(frozen=True)
class Filesystem:
    """One line of ``df -B1 -P -T``. Sizes in bytes; ``percent`` as df rounds it (or None)."""

    filesystem: str
    type: str
    size: int
    used: int
    free: int
    percent: int | None
    mount: str

    @property
    def real(self) -> bool:
        return is_real(self)

    def to_dict(self) -> dict:
        return asdict(self)


def parse_df(text: str, host: str = "localhost") -> list[Filesystem]:
    """Parse ``df -P -T`` output in any block size (``-B1``, ``-k``): the header says which.

    Raises ParseError naming host and line for anything that is not df's POSIX format.
    Lines df prints on stderr (``df: /x: Permission denied``) are not part of ``text``.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ParseError(host, "df", "", "no output (expected a 'Filesystem Type ...' header)")
    header = _HEADER.match(lines[0])
    if header is None:
        raise ParseError(host, "df", lines[0], "not the header of 'df -P -T'")
    block = int(header.group("block"))
    result = []
    for line in lines[1:]:
        m = _ROW.match(line)
        if m is None:
            raise ParseError(host, "df", line, "expected: source type size used available "
                                               "percent mount")
        pct = m.group("percent")
        result.append(Filesystem(
            filesystem=m.group("source"),
            type=m.group("type"),
            size=int(m.group("size")) * block,
            used=int(m.group("used")) * block,
            free=int(m.group("free")) * block,
            percent=None if pct == "-" else int(pct[:-1]),
            mount=m.group("mount"),
        ))
    return result


def is_real(fs: Filesystem) -> bool:
    """True for a filesystem that stores data (see the module docstring for the rules)."""
    if fs.type in PSEUDO_TYPES or fs.size == 0:
        return False
    return not any(fs.mount.startswith(d) for d in ENGINE_DIRS)


def real_filesystems(filesystems: list[Filesystem]) -> list[Filesystem]:
    return [fs for fs in filesystems if is_real(fs)]


def parse_threshold(text: str) -> int:
    """``90%`` or ``90`` -> 90. A bad value is a UsageError (exit 2) naming it."""
    raw = text.strip()
    value = raw[:-1] if raw.endswith("%") else raw
    if not value.isdigit() or not 0 <= int(value) <= 100:
        raise UsageError(f"invalid --warn value {text!r}: expected a percentage from 0 to 100",
                         "for example: --warn 90%")
    return int(value)


def over_threshold(filesystems: list[Filesystem], percent: int) -> list[Filesystem]:
    """Filesystems whose use (as df rounds it) is above ``percent``."""
    return [fs for fs in filesystems if fs.percent is not None and fs.percent > percent]


def disk_usage(transport: Transport, *, all_filesystems: bool = False) -> list[Filesystem]:
    """``df -B1 -P -T`` (``-a`` with all_filesystems) on the host, filtered to real ones."""
    name = "df_all" if all_filesystems else "df"
    section = run_sections(transport, [name])[name]
    return filesystems_from_section(transport.host, section, all_filesystems=all_filesystems)


def filesystems_from_section(host: str, section: Section, *, all_filesystems: bool = False
                             ) -> list[Filesystem]:
    """The df section of a script run -> filesystems. df exits 1 when it could not read some
    mount but still prints the rest: those rows are kept, the warning is not an error."""
    if section.not_found:
        raise HostError(host, "df: command not found", "install coreutils on the host")
    if not section.stdout.strip():
        raise HostError(host, f"df failed: {section.message()}")
    filesystems = parse_df(section.stdout, host)
    return filesystems if all_filesystems else real_filesystems(filesystems)
