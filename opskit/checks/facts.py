"""One host-facts gatherer: everything a run needs to know about a host, in ONE round trip.

The sections of ``opskit status`` (OS, CPUs, memory, disks, processes, GPUs, Docker: one
:class:`~opskit.checks.status.Snapshot`) plus a run's own (:data:`FACT_SECTIONS`): the login
user (uid, gid, ``$HOME``), the engine as that user sees it (``docker info``: version, root
folder, runtimes, memory, CPUs), free space where the engine keeps images and in ``$HOME``, and
the NVIDIA container hook. All of it goes in one ``sh -s`` script (:mod:`opskit.checks.sections`).

Preflight checks these facts (``opskit.jobs.preflight``), ``status`` shows the same snapshot,
and the run card keeps both: one data model (the GPUs are ``opskit.checks.gpu.Gpu`` rows).
``build_facts`` is pure (unit-tested on captured sections); ``gather_facts`` runs the script.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from opskit.checks.gpu import Gpu
from opskit.checks.sections import Section, run_sections
from opskit.checks.status import STATUS_SECTIONS, Snapshot, build_snapshot
from opskit.errors import DockerUnavailable, JobError, ParseError
from opskit.hosts.transport import Transport

FACT_SECTIONS = ("ident", "docker_info", "run_disks", "nvidia_hook")
DEFAULT_DOCKER_ROOT = "/var/lib/docker"


@dataclass
class HostFacts:
    """What preflight checks and the run card records about one host."""

    host: str
    docker_version: str = ""
    docker_root: str = DEFAULT_DOCKER_ROOT
    runtimes: list[str] = field(default_factory=list)
    mem_total: int = 0
    ncpu: int = 0
    root_free: int | None = None
    home: str = ""
    home_free: int | None = None
    gpus: list[Gpu] = field(default_factory=list)  # usable GPUs (no NVML error in their row)
    cuda: str | None = None
    nvidia_hook: str | None = None
    uid: int = 0
    gid: int = 0
    snapshot: Snapshot | None = None  # the status snapshot of the same round trip

    def to_dict(self) -> dict:
        """The run card's ``host_facts`` (keys kept from the first card format)."""
        return {
            "host": self.host, "docker_version": self.docker_version,
            "docker_root": self.docker_root, "runtimes": list(self.runtimes),
            "mem_total": self.mem_total, "ncpu": self.ncpu, "root_free": self.root_free,
            "home": self.home, "home_free": self.home_free,
            "gpus": [gpu_summary(g) for g in self.gpus], "cuda": self.cuda,
            "nvidia_hook": self.nvidia_hook, "uid": self.uid, "gid": self.gid,
        }


def gpu_summary(gpu: Gpu) -> dict:
    """index (as text, as ``--gpus 0,1`` names it), name, driver, memory (MiB)."""
    v = gpu.values
    return {"index": str(v.get("index")), "name": v.get("name") or "?",
            "driver": v.get("driver_version") or "", "memory_mib": v.get("memory.total")}


def gpu_index(gpu: Gpu) -> str:
    return str(gpu.values.get("index"))


def gather_facts(transport: Transport) -> HostFacts:
    """The host's facts and status snapshot, in one round trip."""
    sections = run_sections(transport, (*STATUS_SECTIONS, *FACT_SECTIONS))
    return build_facts(transport.host, sections, local_home=_local_home(transport))


def _local_home(transport: Transport) -> str | None:
    if not getattr(transport, "is_local", False):
        return None
    import os

    return os.path.expanduser("~")


def build_facts(host: str, sections: dict[str, Section], *, local_home: str | None = None
                ) -> HostFacts:
    """Sections -> HostFacts (pure). Raises JobError for a login user without an absolute
    $HOME and DockerUnavailable when the login user cannot use the engine."""
    uid, gid, home = _ident(host, sections["ident"])
    if not home and local_home:
        home = local_home
    if not home.startswith("/"):  # refused: this machine's home path means nothing on another host
        raise JobError(
            f"{host}: the login user's $HOME is {home!r}, not an absolute path",
            "give the login user a home folder on the host (the run's results are kept there)",
        )
    info = _docker_info(host, sections["docker_info"])
    snap = build_snapshot(host, sections)
    free = _run_disks(sections["run_disks"])
    hook = sections["nvidia_hook"].stdout.strip().splitlines()
    return HostFacts(
        host=host, uid=uid, gid=gid, home=home,
        docker_version=str(info.get("ServerVersion", "")),
        docker_root=str(info.get("DockerRootDir") or DEFAULT_DOCKER_ROOT),
        runtimes=sorted((info.get("Runtimes") or {}).keys()),
        mem_total=int(info.get("MemTotal") or 0), ncpu=int(info.get("NCPU") or 0),
        root_free=free.get("root"), home_free=free.get("home"),
        gpus=[g for g in snap.gpu.gpus if not g.errors], cuda=snap.gpu.cuda_version,
        nvidia_hook=hook[0] if hook else None, snapshot=snap,
    )


def _ident(host: str, section: Section) -> tuple[int, int, str]:
    lines = section.stdout.split("\n")
    if not section.ok or len(lines) < 2 or not (lines[0].isdigit() and lines[1].isdigit()):
        raise ParseError(host, "id -u; id -g; echo $HOME", section.stdout[:200],
                         section.message() if not section.ok else "expected uid, gid, home")
    return int(lines[0]), int(lines[1]), lines[2] if len(lines) > 2 else ""


def _docker_info(host: str, section: Section) -> dict:
    if not section.ok:
        raise DockerUnavailable(f"{host}: docker info: {section.message()}")
    try:
        info = json.loads(section.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise ParseError(host, "docker info --format '{{json .}}'", section.stdout[:200],
                         str(exc)) from None
    if not isinstance(info, dict):
        raise ParseError(host, "docker info --format '{{json .}}'", section.stdout[:200],
                         "not a JSON object")
    return info


def _run_disks(section: Section) -> dict[str, int | None]:
    """``@root PATH`` / ``@home PATH`` blocks, each followed by ``df -P -B1`` of the path:
    the free bytes (the 4th field of the last line), None where df said nothing usable."""
    free: dict[str, int | None] = {}
    block: str | None = None
    for line in section.stdout.split("\n"):
        if line.startswith("@root ") or line.startswith("@home "):
            block = line[1:5]
            free[block] = None
            continue
        fields = line.split()
        if block and len(fields) >= 6 and fields[3].isdigit():
            free[block] = int(fields[3])
    return free
