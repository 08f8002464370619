"""``status``: one snapshot of a host, gathered in ONE round trip (one ``sh -c`` script).

``snapshot(transport) -> Snapshot``; ``Snapshot.to_dict()`` has these stable keys:

``host`` (the name opskit used), ``hostname``, ``os`` {id, name, version_id, pretty_name},
``kernel`` {name, release, machine}, ``uptime_seconds``, ``load`` {1m, 5m, 15m, running,
tasks}, ``cpus``, ``cpu_model``, ``memory`` {total, available, used, percent, swap_total,
swap_used} (bytes), ``disks`` [{filesystem, type, size, used, free, percent, mount}] (bytes,
real filesystems, as ``df -B1``), ``top_processes`` [{pid, ppid, user, cpu_percent,
mem_percent, rss, elapsed, elapsed_text, command, name, gpu_memory, gpu_index}],
``gpu`` {status: ok|absent|error, message, driver_version, cuda_version, gpus: [gpustat keys]},
``docker`` {state, message, client_version, server_version, api_version, images {count,
active, size, size_bytes, reclaimable}, containers, volumes, build_cache}, ``problems``
[strings: what makes ``opskit status`` exit 1 for this host].
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from opskit.checks.disk import Filesystem, filesystems_from_section
from opskit.checks.dockerinfo import DockerInfo, docker_info
from opskit.checks.gpu import Gpu, GpuProcess, GpuReport, gpu_report
from opskit.checks.procs import Process, processes_from_section, sort_processes, with_gpu_usage
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
from opskit.errors import HostError
from opskit.hosts.transport import Transport

TOP_PROCESSES = 5
STATUS_SECTIONS = (
    "self", "hostname", "os_release", "uname", "uptime", "loadavg", "nproc", "cpu_model",
    "meminfo", "df", "ps", "gpu_query", "gpu_apps", "gpu_version", "docker_version",
    "docker_images", "docker_df",
)


@dataclass(frozen=True)
class Snapshot:
    host: str
    hostname: str
    os: OsInfo
    kernel: Kernel
    uptime_seconds: float
    load: Load
    cpus: int
    cpu_model: str | None
    memory: Memory
    disks: list[Filesystem]
    top_processes: list[Process]
    gpu: GpuReport
    docker: DockerInfo
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {
            "host": self.host,
            "hostname": self.hostname,
            "os": self.os.to_dict(),
            "kernel": self.kernel.to_dict(),
            "uptime_seconds": self.uptime_seconds,
            "load": self.load.to_dict(),
            "cpus": self.cpus,
            "cpu_model": self.cpu_model,
            "memory": self.memory.to_dict(),
            "disks": [d.to_dict() for d in self.disks],
            "top_processes": [p.to_dict() for p in self.top_processes],
            "gpu": self.gpu.to_dict(),
            "docker": self.docker.to_dict(),
            "problems": list(self.problems),
        }


def _required(host: str, sections: dict[str, Section], name: str, what: str) -> str:
    section = sections[name]
    if not section.ok or not section.stdout.strip():
        raise HostError(host, f"could not read {what}: {section.message()}")
    return section.stdout


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

    gpus = tuple(Gpu(g.values, tuple(fill(gp) for gp in g.processes)) for g in report.gpus)
    return replace(report, gpus=gpus)


def processes_with_gpu(host: str, sections: dict[str, Section]) -> tuple[list[Process], GpuReport]:
    """The ``ps`` section (opskit's own script left out) joined with the nvidia-smi ones:
    GPU processes get user, cpu% and RSS; processes get their GPU and GPU memory (pure)."""
    processes = processes_from_section(host, sections["ps"], _self_pid(sections))
    gpu = gpu_report(host, sections["gpu_query"], sections.get("gpu_apps"),
                     sections.get("gpu_version"))
    gpu = join_gpu_processes(gpu, processes)
    return with_gpu_usage(processes, gpu.processes), gpu


def build_snapshot(host: str, sections: dict[str, Section]) -> Snapshot:
    """Sections of one script run -> Snapshot (pure; ParseError names host and line)."""
    processes, gpu = processes_with_gpu(host, sections)
    problems = [gpu.message] if gpu.status == "error" and gpu.message else []
    return Snapshot(
        host=host,
        hostname=_required(host, sections, "hostname", "hostname").strip(),
        os=OsInfo.from_release(parse_os_release(sections["os_release"].stdout, host)),
        kernel=parse_uname(_required(host, sections, "uname", "uname -srm"), host),
        uptime_seconds=parse_uptime(_required(host, sections, "uptime", "/proc/uptime"), host),
        load=parse_loadavg(_required(host, sections, "loadavg", "/proc/loadavg"), host),
        cpus=parse_cpus(_required(host, sections, "nproc", "the CPU count"), host),
        cpu_model=parse_cpu_model(sections["cpu_model"].stdout),
        memory=parse_meminfo(_required(host, sections, "meminfo", "/proc/meminfo"), host),
        disks=filesystems_from_section(host, sections["df"]),
        top_processes=sort_processes(processes, "cpu")[:TOP_PROCESSES],
        gpu=gpu,
        docker=docker_info(host, sections["docker_version"], sections.get("docker_df"),
                           sections.get("docker_images")),
        problems=problems,
    )


def snapshot(transport: Transport) -> Snapshot:
    """One snapshot of the transport's host, in one round trip."""
    return build_snapshot(transport.host, run_sections(transport, STATUS_SECTIONS))
