"""``df``: filesystems with size, used, free and percent, in bytes exactly as ``df -B1``.

What counts as a REAL filesystem (shown by default): one that stores data, i.e. every
filesystem ``df`` lists except

- pseudo and memory filesystems (``proc``, ``sysfs``, ``tmpfs``, ``devtmpfs``, ``cgroup``,
  ``squashfs`` snap images, ...) listed in :data:`PSEUDO_TYPES`;
- filesystems of size 0 (nothing to report);
- mounts that a container engine makes for its containers BELOW its own directories
  (``/var/lib/docker/overlay2/*/merged``, ``/run/containerd/...``): on a Docker host they
  repeat the root filesystem once per running container.

- mount points that are single files: Docker, Podman and Kubernetes bind-mount
  ``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf`` (and more) from the host's disk
  into every container, and ``df`` lists each with that disk's size. The host's ``mounts``
  section (mountinfo in the same pass) names every mount point that is not a folder;
  :data:`KNOWN_FILE_MOUNTS` covers a df text read without it.

The same filesystem mounted twice (bind mounts, BusyBox ``df``, which does not deduplicate) is
shown once, chosen by GNU df's rule for its default view (device from /proc/self/mountinfo:
a device-like source wins, then the mount point nearest the root).
``overlay`` is real: inside a container the root filesystem is an overlay and must show.
``--all`` (``df -a``) shows everything, unfiltered and every mount of a filesystem.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from opskit.checks.sections import (  # noqa: F401 - ENGINE_DIRS is part of this module's API
    DF_TIMEOUT,
    ENGINE_DIRS,
    FILE_MOUNT,
    TIMED_OUT_CODES,
    Section,
    run_sections,
)
from opskit.errors import HostError, ParseError, UsageError
from opskit.hosts.transport import Transport

PSEUDO_TYPES = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "efivarfs", "fusectl", "fuse.gvfsd-fuse", "fuse.lxcfs", "fuse.portal",
    "hugetlbfs", "mqueue", "none", "nsfs", "proc", "pstore", "ramfs", "rpc_pipefs",
    "securityfs", "selinuxfs", "squashfs", "sysfs", "tmpfs", "tracefs", "nfsd", "rootfs",
})


# Mount points that container engines fill with a single file from the host's disk.
KNOWN_FILE_MOUNTS = frozenset({"/etc/hosts", "/etc/hostname", "/etc/resolv.conf",
                               "/run/.containerenv", "/dev/termination-log"})
_NETWORK_TYPES = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre",
                  "afs", "davfs", "fuse.sshfs")

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


def is_real(fs: Filesystem, file_mounts: frozenset[str] | set[str] = frozenset()) -> bool:
    """True for a filesystem that stores data (see the module docstring for the rules)."""
    if fs.type in PSEUDO_TYPES or fs.size == 0:
        return False
    if fs.mount in KNOWN_FILE_MOUNTS or fs.mount in file_mounts:
        return False
    return not any(fs.mount.startswith(d) for d in ENGINE_DIRS)


def real_filesystems(filesystems: list[Filesystem],
                     file_mounts: frozenset[str] | set[str] = frozenset()) -> list[Filesystem]:
    return [fs for fs in filesystems if is_real(fs, file_mounts)]


@dataclass(frozen=True)
class MountInfo:
    """One line of /proc/self/mountinfo: the device (``major:minor``) and the mount's root
    inside that filesystem (``/`` unless a bind mount of a folder or file)."""

    device: str
    root: str
    mount: str


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as ``\\ooo`` octal."""
    if "\\" not in field:
        return field
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> dict[str, MountInfo]:
    """mount point -> MountInfo (the last mount on a point wins, as the kernel shows it)."""
    result: dict[str, MountInfo] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or ":" not in parts[2]:
            continue  # not a mountinfo line: nothing to deduplicate by
        info = MountInfo(parts[2], _unescape(parts[3]), _unescape(parts[4]))
        result[info.mount] = info
    return result


def _is_remote(fs: Filesystem) -> bool:
    return fs.type in _NETWORK_TYPES or ":" in fs.filesystem or fs.filesystem.startswith("//")


def _wins(new: Filesystem, seen: Filesystem, mounts: dict[str, MountInfo]) -> bool:
    """GNU df's choice between two mounts of one device (coreutils df.c filter_mount_list)."""
    nearer_root = len(seen.mount) > len(new.mount)
    below_root = len(mounts[seen.mount].root) < len(mounts[new.mount].root)
    return (("/" in new.filesystem and "/" not in seen.filesystem)
            or (nearer_root and not below_root)
            or (new.filesystem != seen.filesystem and new.mount == seen.mount))


def one_per_filesystem(filesystems: list[Filesystem], mounts: dict[str, MountInfo]
                       ) -> list[Filesystem]:
    """Each device once, as GNU df's default view shows it; mounts missing from
    ``mounts`` and remote mounts of different sources are all kept."""
    kept: list[Filesystem | None] = []
    slot_of: dict[str, int] = {}
    for fs in filesystems:
        info = mounts.get(fs.mount)
        if info is None:
            kept.append(fs)
            continue
        slot = slot_of.get(info.device)
        seen = kept[slot] if slot is not None else None
        if seen is None or (_is_remote(fs) and _is_remote(seen)
                            and fs.filesystem != seen.filesystem):
            slot_of.setdefault(info.device, len(kept))
            kept.append(fs)
        elif _wins(fs, seen, mounts):
            kept[slot] = fs  # type: ignore[index]
    return [fs for fs in kept if fs is not None]


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
    """``df -B1 -P -T`` (``-a`` with all_filesystems) on the host: disks as a user means them
    (or every mount with all_filesystems)."""
    names = ["df_all"] if all_filesystems else ["df", "mounts"]
    sections = run_sections(transport, names)
    return filesystems_from_sections(transport.host, sections, all_filesystems=all_filesystems)


def filesystems_from_sections(host: str, sections: dict[str, Section], *,
                              all_filesystems: bool = False) -> list[Filesystem]:
    """The df section (+ ``mounts``, or ``file_mounts`` and ``mountinfo``) of a script run ->
    filesystems.
    df exits 1 when it could not read some mount but still prints the rest: those rows are
    kept, the warning is not an error. A df that hung is an error saying so."""
    section = sections["df_all" if all_filesystems else "df"]
    if section.not_found:
        raise HostError(host, "df: command not found", "install coreutils on the host")
    if section.exit_code in TIMED_OUT_CODES:
        raise HostError(host, f"df did not answer within {DF_TIMEOUT}s and was stopped on the "
                        "host", "a network filesystem (NFS, CIFS) that no longer answers "
                        "is the usual cause: check 'mount -t nfs,nfs4,cifs' there")
    if not section.stdout.strip():
        raise HostError(host, f"df failed: {section.message()}")
    filesystems = parse_df(section.stdout, host)
    if all_filesystems:
        return filesystems
    file_mounts, mounts = mount_tables(sections)
    return one_per_filesystem(real_filesystems(filesystems, file_mounts), mounts)


def mount_tables(sections: dict[str, Section]) -> tuple[set[str], dict[str, MountInfo]]:
    """(mount points that are files, mountinfo by mount point) from the ``mounts`` section,
    or from the older ``file_mounts`` and ``mountinfo`` pair (the reference the tests compare
    it with). A mounts section that failed still gives the mountinfo lines it printed; its file
    list is used only when whole."""
    both = sections.get("mounts")
    if both is not None:
        lines = both.stdout.splitlines()
        files = {x[len(FILE_MOUNT):] for x in lines if x.startswith(FILE_MOUNT)} if both.ok else set()
        return files, parse_mountinfo("\n".join(x for x in lines if not x.startswith(FILE_MOUNT)))
    files_section, info = sections.get("file_mounts"), sections.get("mountinfo")
    files = set(files_section.stdout.splitlines()) if files_section and files_section.ok else set()
    return files, (parse_mountinfo(info.stdout) if info is not None and info.ok else {})
