"""The facts a playbook's ``when:`` reads, from opskit's one host-facts gatherer
(:mod:`opskit.checks.facts`: one round trip per host, gathered on first use).

Flat names for the usual questions, plus ``status``: everything ``opskit status --json``
reports for the host. :data:`FACT_NAMES` lists them (a ``when:`` naming anything else is
refused before the play runs). Sizes are bytes, GPU memory MiB, temperatures degrees C.
"""

from __future__ import annotations

import json
from typing import Any

from opskit.checks.facts import FACT_SECTIONS, build_facts
from opskit.checks.sections import Section, run_sections
from opskit.checks.status import STATUS_SECTIONS, Snapshot, build_snapshot
from opskit.errors import OpskitError
from opskit.hosts.transport import Transport

FACT_NAMES: dict[str, str] = {
    "hostname": "the host's own name",
    "os_id": "os-release ID (debian, ubuntu, ...)",
    "os_version": "os-release VERSION_ID",
    "kernel": "kernel release",
    "cpus": "number of CPUs",
    "load1": "1-minute load average",
    "memory_total": "bytes of RAM", "memory_available": "bytes of RAM available",
    "disks": "[{mount, size, used, free, percent}] as opskit df shows them",
    "disk_max_percent": "the fullest disk's use in percent",
    "docker_root_free": "free bytes where the engine keeps images (null without an engine)",
    "home_free": "free bytes in the login user's home folder",
    "gpu_count": "usable GPUs (no NVML error)",
    "gpus": "[{index, name, memory_total, memory_used, memory_free, temperature, utilization}]",
    "gpu_free_mib": "the most free memory on one GPU (MiB; 0 without GPUs)",
    "gpu_max_temp": "the hottest GPU's temperature (null without GPUs)",
    "gpu_status": "ok | degraded | absent | error",
    "driver_version": "NVIDIA driver version (null without one)",
    "cuda_version": "the CUDA version the driver supports (null without one)",
    "docker_version": "engine version (null when the login user cannot use an engine)",
    "docker_error": "why there is no engine (null when there is one)",
    "image_store": "containerd | legacy (null without an engine)",
    "runtimes": "the engine's runtimes (nvidia when the NVIDIA runtime is set up)",
    "nvidia_hook": "path of the NVIDIA container hook (null when missing)",
    "images_count": "images on the engine",
    "status": "everything opskit status --json reports for this host",
}


def gather(transport: Transport) -> dict[str, Any]:
    """The facts of one host (one round trip)."""
    sections = run_sections(transport, (*STATUS_SECTIONS, *FACT_SECTIONS))
    return facts_from_sections(transport.host, sections)


def facts_from_sections(host: str, sections: dict[str, Section]) -> dict[str, Any]:
    """Sections -> facts (pure; unit-tested on captured sections)."""
    snap = build_snapshot(host, sections)
    out = _snapshot_facts(snap)
    out.update(docker_version=None, docker_error=None, image_store=None, runtimes=[],
               nvidia_hook=None, docker_root_free=None, home_free=None)
    try:
        hf = build_facts(host, sections)
    except OpskitError as exc:
        out["docker_error"] = exc.message
        return out
    out.update(docker_version=hf.docker_version or None, runtimes=list(hf.runtimes),
               nvidia_hook=hf.nvidia_hook, docker_root_free=hf.root_free,
               home_free=hf.home_free, image_store=_image_store(sections["docker_info"]))
    return out


def _image_store(section: Section) -> str | None:
    """``containerd`` when the engine stores images in containerd (DriverStatus names the
    snapshotter), else ``legacy``."""
    try:
        info = json.loads(section.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    status = json.dumps(info.get("DriverStatus") or [])
    return "containerd" if "io.containerd.snapshotter" in status else "legacy"


def _gpu_row(g: Any) -> dict:
    v = g.values
    total, used = v.get("memory.total"), v.get("memory.used")
    free = total - used if isinstance(total, int) and isinstance(used, int) else None
    return {"index": v.get("index"), "name": v.get("name"), "memory_total": total,
            "memory_used": used, "memory_free": free, "temperature": v.get("temperature.gpu"),
            "utilization": v.get("utilization.gpu")}


def _snapshot_facts(s: Snapshot) -> dict[str, Any]:
    gpus = [_gpu_row(g) for g in s.gpu.gpus if not g.errors]
    temps = [g["temperature"] for g in gpus if isinstance(g["temperature"], (int, float))]
    disks = [{"mount": d.mount, "size": d.size, "used": d.used, "free": d.free,
              "percent": d.percent} for d in (s.disks or [])]
    images = s.docker.to_dict().get("images") if s.docker is not None else None
    return {
        "hostname": s.hostname,
        "os_id": s.os.id if s.os else None,
        "os_version": s.os.version_id if s.os else None,
        "kernel": s.kernel.release if s.kernel else None,
        "cpus": s.cpus,
        "load1": s.load.load1 if s.load else None,
        "memory_total": s.memory.total if s.memory else None,
        "memory_available": s.memory.available if s.memory else None,
        "disks": disks,
        "disk_max_percent": max((d["percent"] or 0 for d in disks), default=None),
        "gpu_count": len(gpus), "gpus": gpus,
        "gpu_free_mib": max((g["memory_free"] or 0 for g in gpus), default=0),
        "gpu_max_temp": max(temps, default=None),
        "gpu_status": s.gpu.status,
        "driver_version": s.gpu.driver_version, "cuda_version": s.gpu.cuda_version,
        "images_count": (images or {}).get("count"),
        "status": s.to_dict(),
    }
