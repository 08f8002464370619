"""``status``: one snapshot of a host, gathered in ONE round trip (one ``sh -s`` script), made
of independent sections: one that fails (a hung ``df``, BusyBox ``ps``, a GPU in a fault
state) carries its own error and every other section is still filled.

``snapshot(transport) -> Snapshot``; ``Snapshot.to_dict()`` has these stable keys:

``host`` (the name opskit used), ``hostname``, ``os`` {id, name, version_id, pretty_name},
``kernel`` {name, release, machine}, ``uptime_seconds``, ``load`` {1m, 5m, 15m, running,
tasks}, ``cpus``, ``cpu_model``, ``memory`` {total, available, used, percent, swap_total,
swap_used} (bytes), ``disks`` [{filesystem, type, size, used, free, percent, mount}] (bytes,
disks as a user means them, see ``opskit.checks.disk``), ``top_processes`` [{pid, ppid, user,
cpu_percent, mem_percent, rss, elapsed, elapsed_text, command, name, gpu_memory, gpu_index}],
``gpu`` {status: ok|degraded|absent|error, message, driver_version, cuda_version, gpus:
[gpustat keys + errors], problems}, ``docker`` {state, message, client_version,
server_version, api_version, images {count, active, size, size_bytes, reclaimable},
containers, volumes, build_cache}, ``section_errors`` {SECTION: {message, hint}} for the
sections that failed (their value above is null; SECTION is one of :data:`REPORT_SECTIONS`),
``problems`` [strings: what makes ``opskit status`` exit 1 for this host].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from opskit.checks.disk import Filesystem, filesystems_from_sections
from opskit.checks.dockerinfo import DockerInfo, docker_info
from opskit.checks.gpu import GpuProcess, GpuReport, gpu_report
from opskit.checks.procs import (
    Process,
    ProcessFilter,
    processes_from_section,
    sort_processes,
    with_gpu_usage,
)
from opskit.checks.sections import Section, run_sections
from opskit.checks.system import (
    Kernel,
    Load,
    Memory,
    OsInfo,
    parse_cpu_model,
    parse_cpus,
    parse_loadavg,
    parse_meminfo,
    parse_os_release,
    parse_uname,
    parse_uptime,
)
from opskit.errors import HostError, OpskitError
from opskit.hosts.transport import Transport

TOP_PROCESSES = 5
STATUS_SECTIONS = (
    "self", "hostname", "os_release", "uname", "uptime", "loadavg", "nproc", "cpu_model",
    "meminfo", "df", "mounts", "long_users", "ps", "gpu_query", "gpu_apps",
    "gpu_version", "docker_version", "docker_df", "docker_images",  # images only if df failed
)


# The parts of a report that fail independently (keys of ``section_errors``).
REPORT_SECTIONS = ("hostname", "os", "kernel", "uptime", "load", "cpus", "memory", "disks",
                   "processes", "gpu", "docker")
V = TypeVar("V")


@dataclass(frozen=True)
class SectionError:
    """Why one section of a report has no value."""

    section: str
    message: str
    hint: str | None = None

    def to_dict(self) -> dict:
        return {"message": self.message, "hint": self.hint}


@dataclass(frozen=True)
class Snapshot:
    host: str
    hostname: str | None
    os: OsInfo | None
    kernel: Kernel | None
    uptime_seconds: float | None
    load: Load | None
    cpus: int | None
    cpu_model: str | None
    memory: Memory | None
    disks: list[Filesystem] | None
    top_processes: list[Process] | None
    gpu: GpuReport
    docker: DockerInfo | None
    section_errors: dict[str, SectionError] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        def d(value: object) -> object:
            return None if value is None else value.to_dict()  # type: ignore[attr-defined]

        return {
            "host": self.host,
            "hostname": self.hostname,
            "os": d(self.os),
            "kernel": d(self.kernel),
            "uptime_seconds": self.uptime_seconds,
            "load": d(self.load),
            "cpus": self.cpus,
            "cpu_model": self.cpu_model,
            "memory": d(self.memory),
            "disks": None if self.disks is None else [x.to_dict() for x in self.disks],
            "top_processes": (None if self.top_processes is None
                              else [p.to_dict() for p in self.top_processes]),
            "gpu": self.gpu.to_dict(),
            "docker": d(self.docker),
            "section_errors": {k: e.to_dict() for k, e in self.section_errors.items()},
            "problems": list(self.problems),
        }


def _required(host: str, sections: dict[str, Section], name: str, what: str) -> str:
    section = sections[name]
    if not section.ok or not section.stdout.strip():
        raise HostError(host, f"could not read {what}: {section.message()}")
    return section.stdout


class _Sections:
    """Fills report sections one by one; a section that raises gets its error instead."""

    def __init__(self, host: str):
        self.host = host
        self.errors: dict[str, SectionError] = {}

    def get(self, name: str, fn: Callable[[], V]) -> V | None:
        try:
            return fn()
        except OpskitError as exc:
            message = exc.message
            if message.startswith(f"{self.host}: "):
                message = message[len(self.host) + 2:]
            self.errors[name] = SectionError(name, " ".join(message.split()), exc.hint)
        except (ValueError, KeyError, IndexError) as exc:  # output of an unexpected shape
            self.errors[name] = SectionError(name, f"could not read it: {exc!r}")
        return None
def _self_pid(sections: dict[str, Section]) -> int | None:
    text = sections["self"].stdout.strip() if "self" in sections else ""
    return int(text) if text.isdigit() else None


def join_gpu_processes(report: GpuReport, processes: list[Process]) -> GpuReport:
    """Fill user, cpu% and RSS of GPU processes from ps (gpustat's process keys)."""
    by_pid = {p.pid: p for p in processes}

    def fill(gp: GpuProcess) -> GpuProcess:
        p = by_pid.get(gp.pid)
        if p is None:
            return gp
        return replace(gp, username=p.user, cpu_percent=p.cpu_percent, cpu_memory_usage=p.rss)

    gpus = tuple(replace(g, processes=tuple(fill(gp) for gp in g.processes)) for g in report.gpus)
    return replace(report, gpus=gpus)


def processes_with_gpu(host: str, sections: dict[str, Section]) -> tuple[list[Process], GpuReport]:
    """The ``ps`` section (opskit's own script left out) joined with the nvidia-smi ones:
    GPU processes get user, cpu% and RSS; processes get their GPU and GPU memory (pure).
    Raises for a failed ps (``opskit ps`` has nothing to show then)."""
    processes = processes_from_section(host, sections["ps"], _self_pid(sections),
                                       sections.get("long_users"))
    gpu = join_gpu_processes(_gpu(host, sections), processes)
    return with_gpu_usage(processes, gpu.processes), gpu


PS_SECTIONS = ("self", "long_users", "ps", "gpu_query", "gpu_apps")


def process_list(transport: Transport, flt: ProcessFilter) -> dict:
    """``opskit ps`` of one host in one round trip: ``{"processes": [Process] (filtered,
    sorted, limited by ``flt``), "gpu": GpuReport}`` (GPU processes joined in)."""
    sections = run_sections(transport, PS_SECTIONS)
    procs, gpu = processes_with_gpu(transport.host, sections)
    return {"processes": flt.apply(procs), "gpu": gpu}


def _gpu(host: str, sections: dict[str, Section]) -> GpuReport:
    return gpu_report(host, sections["gpu_query"], sections.get("gpu_apps"),
                      sections.get("gpu_version"))


def build_snapshot(host: str, sections: dict[str, Section]) -> Snapshot:
    """Sections of one script run -> Snapshot (pure). A section that does not parse or
    failed on the host is recorded in ``section_errors`` (and ``problems``); never raises."""
    s = _Sections(host)

    def req(name: str, what: str) -> Callable[[], str]:
        return lambda: _required(host, sections, name, what)

    processes = s.get("processes", lambda: processes_from_section(
        host, sections["ps"], _self_pid(sections), sections.get("long_users")))
    gpu = s.get("gpu", lambda: _gpu(host, sections)) or GpuReport("error", s.errors["gpu"].message)
    if processes is not None:
        gpu = join_gpu_processes(gpu, processes)
        processes = sort_processes(with_gpu_usage(processes, gpu.processes), "cpu")
    release = s.get("os", lambda: parse_os_release(sections["os_release"].stdout, host))
    snap = Snapshot(
        host=host,
        hostname=s.get("hostname", lambda: req("hostname", "hostname")().strip()),
        os=OsInfo.from_release(release) if release is not None else None,
        kernel=s.get("kernel", lambda: parse_uname(req("uname", "uname -srm")(), host)),
        uptime_seconds=s.get("uptime", lambda: parse_uptime(req("uptime", "/proc/uptime")(), host)),
        load=s.get("load", lambda: parse_loadavg(req("loadavg", "/proc/loadavg")(), host)),
        cpus=s.get("cpus", lambda: parse_cpus(req("nproc", "the CPU count")(), host)),
        cpu_model=parse_cpu_model(sections["cpu_model"].stdout) if "cpu_model" in sections else None,
        memory=s.get("memory", lambda: parse_meminfo(req("meminfo", "/proc/meminfo")(), host)),
        disks=s.get("disks", lambda: filesystems_from_sections(host, sections)),
        top_processes=None if processes is None else processes[:TOP_PROCESSES],
        gpu=gpu,
        docker=s.get("docker", lambda: docker_info(host, sections["docker_version"],
                                                   sections.get("docker_df"),
                                                   sections.get("docker_images"))),
        section_errors=s.errors,
    )
    problems = [f"{name}: {err.message}" for name, err in s.errors.items()]
    problems += list(gpu.problems) if "gpu" not in s.errors else []
    return replace(snap, problems=problems)


def snapshot(transport: Transport) -> Snapshot:
    """One snapshot of the transport's host, in one round trip."""
    return build_snapshot(transport.host, run_sections(transport, STATUS_SECTIONS))
