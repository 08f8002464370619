"""The offline base image: a minimal Debian with Python 3, made by debootstrap, no registry.

Air-gapped clusters and this project's CI cannot pull ``debian`` or ``pytorch/pytorch``; this
makes an equivalent base from the host's own apt mirror and imports it with docker-py.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opskit import __version__
from opskit.errors import BuildError, UsageError
from opskit.hosts.dockererrors import docker_error, or_none

DEFAULT_SUITE = "bookworm"
DEFAULT_INCLUDE = ("python3", "python3-venv", "ca-certificates")


def default_tag(suite: str = DEFAULT_SUITE) -> str:
    return f"opskit-base:{suite}"


def suite_of(tag: str) -> str | None:
    """``opskit-base:SUITE`` -> SUITE (a tag opskit knows how to make); else None."""
    m = re.fullmatch(r"opskit-base:([a-z]+)", tag)
    return m.group(1) if m else None


def fix_command(tag: str) -> str:
    """The one command that makes the base ``tag`` on this machine."""
    suite = suite_of(tag)
    if tag == default_tag(DEFAULT_SUITE):
        return "opskit base bootstrap"
    return f"opskit base bootstrap --suite {suite} --tag {tag}" if suite else (
        f"opskit base bootstrap --tag {tag}")


def bootstrap_blocker(tag: str) -> tuple[str, str] | None:
    """Why ``bootstrap`` cannot make ``tag`` here, with the one command that fixes it; None: it can."""
    fix = fix_command(tag)
    if suite_of(tag) is None:
        return (f"opskit makes only opskit-base:SUITE images by itself, not {tag}",
                f"{fix}   (a Debian {DEFAULT_SUITE} base under that name; or 'docker load' "
                "yours from an archive)")
    if os.geteuid() != 0:
        return "making it needs root (debootstrap)", f"sudo {fix}"
    if shutil.which("debootstrap") is None:
        return "debootstrap is not installed", f"apt-get install -y debootstrap && {fix}"
    try:
        host_mirror()
    except UsageError:
        return ("this host has no Debian apt mirror to make it from",
                f"{fix} --mirror URL   (or --from-rootfs TAR)")
    return None


# debootstrap's one-line-per-package messages (not shown as progress lines).
_PER_PACKAGE = re.compile(
    r"^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) \S+( \d\S*|\.\.\.)$")


def progress_line(line: str) -> bool:
    """Whether a debootstrap output line is worth a progress line (stages, not packages)."""
    return bool(line.strip()) and not _PER_PACKAGE.match(line)


@dataclass(frozen=True)
class BaseResult:
    tag: str
    image_id: str
    size: int
    reused: bool
    source: str  # "existing", "debootstrap" or "rootfs:<path>"

    def to_dict(self) -> dict:
        return {
            "tag": self.tag, "image_id": self.image_id, "size": self.size,
            "reused": self.reused, "source": self.source,
        }


def host_mirror(sources_dir: str = "/etc/apt/sources.list.d", sources_list: str = "/etc/apt/sources.list") -> str:
    """The Debian mirror this host's apt uses (never a hard-coded address)."""
    for path in sorted(glob.glob(os.path.join(sources_dir, "*.sources"))):
        with open(path) as fh:
            text = fh.read()
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and "security" not in suites.group(1):
                return uris.group(1)
    if os.path.exists(sources_list):
        with open(sources_list) as fh:
            for line in fh:
                parts = line.split()
                uri = next((p for p in parts[1:] if "://" in p), None)
                if parts[:1] == ["deb"] and uri and "security" not in line:
                    return uri
    raise UsageError(
        "cannot find this host's Debian mirror in /etc/apt/sources.list(.d)",
        "pass --mirror URL, or --from-rootfs TAR with a root filesystem you made elsewhere",
    )


def _image_or_none(client: Any, tag: str) -> Any:
    return or_none(lambda: client.images.get(tag))


@dataclass(frozen=True)
class BaseRequest:
    """What ``bootstrap`` should make: the suite, the tag (default ``opskit-base:SUITE``), the
    mirror (default: this host's apt mirror) or a root filesystem archive to import instead."""

    suite: str = DEFAULT_SUITE
    tag: str | None = None
    mirror: str | None = None
    from_rootfs: str | None = None
    force: bool = False
    include: tuple[str, ...] = DEFAULT_INCLUDE
    log: Callable[[str], None] = lambda line: None


def bootstrap(client: Any, request: BaseRequest | None = None) -> BaseResult:
    """Make (or reuse) the base image. Idempotent: an existing tag is reused unless ``force``."""
    from docker.utils.build import match_tag

    req = request or BaseRequest()
    tag = req.tag or default_tag(req.suite)
    if not match_tag(tag):
        raise UsageError(f"image tag {tag!r} is not valid", "use lowercase NAME[:TAG], e.g. opskit-base:bookworm")
    existing = _image_or_none(client, tag)
    if existing is not None and not req.force:
        return BaseResult(tag, existing.id, existing.attrs.get("Size", 0), True, "existing")
    repo, _, version = tag.partition(":")
    changes = [
        "ENV LANG=C.UTF-8",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        'CMD ["/bin/bash"]',
        f"LABEL org.opskit.base.suite={req.suite} org.opskit.version={__version__}",
    ]
    if req.from_rootfs:
        _check_rootfs_archive(req.from_rootfs)
        image = _import(client, req.from_rootfs, repo, version or "latest", changes)
        return BaseResult(tag, image.id, image.attrs.get("Size", 0), False,
                          f"rootfs:{req.from_rootfs}")
    _check_debootstrap_possible()
    mirror = req.mirror or host_mirror()
    with tempfile.TemporaryDirectory(prefix="opskit-rootfs-") as tmp:
        archive = _debootstrap_archive(req, mirror, tmp)
        req.log(f"importing {tag}")
        image = _import(client, archive, repo, version or "latest", changes)
    return BaseResult(tag, image.id, image.attrs.get("Size", 0), False, "debootstrap")


def _check_rootfs_archive(path: str) -> None:
    if not os.path.isfile(path):
        raise UsageError(f"root filesystem archive {path} does not exist")
    if not tarfile.is_tarfile(path):
        raise UsageError(
            f"{path} is not a tar archive",
            "make one with 'tar -C ROOTFS -cf rootfs.tar .' (gzip, bzip2 and xz also work)",
        )


def _check_debootstrap_possible() -> None:
    if shutil.which("debootstrap") is None:
        raise UsageError(
            "debootstrap is not installed",
            "install it ('apt-get install -y debootstrap'), or pass --from-rootfs TAR",
        )
    if os.geteuid() != 0:
        raise UsageError("debootstrap needs root", "run as root, or pass --from-rootfs TAR")


def _debootstrap_archive(req: BaseRequest, mirror: str, tmp: str) -> str:
    """debootstrap SUITE into TMP/rootfs and pack it as TMP/rootfs.tar (the path returned)."""
    rootfs = os.path.join(tmp, "rootfs")
    argv = [
        "debootstrap", "--variant=minbase", f"--include={','.join(req.include)}",
        req.suite, rootfs, mirror,
    ]
    req.log(f"$ {' '.join(argv)}")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        req.log(line.rstrip())
        tail = (tail + [line.rstrip()])[-15:]
    if proc.wait() != 0:
        raise BuildError(
            f"debootstrap {req.suite} from {mirror} failed (exit {proc.returncode}):\n  "
            + "\n  ".join(tail),
            "check that the mirror is reachable from this host",
        )
    # Leave out what a fresh apt-get update brings back anyway.
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_Packages"):
        for f in glob.glob(os.path.join(rootfs, pattern)):
            os.unlink(f)
    archive = os.path.join(tmp, "rootfs.tar")
    subprocess.run(["tar", "-C", rootfs, "-cf", archive, "."], check=True)
    return archive


def _import(client: Any, archive: str, repo: str, version: str, changes: list[str]) -> Any:
    from docker.errors import APIError

    try:
        client.api.import_image_from_file(archive, repository=repo, tag=version, changes=changes)
    except APIError as exc:
        raise docker_error(exc, f"the engine could not import {archive} as {repo}:{version}",
                           error=BuildError,
                           hint="check that the archive holds a whole root filesystem") from exc
    return client.images.get(f"{repo}:{version}")
