"""Before a job starts: is the host able to run it? Every check says what it measured.

SSH reachable; the Docker engine usable by the login user; free disk where the engine keeps
images (>= the bytes still to ship + a margin) and in the home folder (staging + results);
the GPUs asked for visible to ``nvidia-smi`` and the NVIDIA container runtime present; the
shared memory asked for within the host's memory. The facts come from the one host-facts
gatherer (:mod:`opskit.checks.facts`: one round trip, the status snapshot included);
``evaluate`` is pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from opskit.checks.facts import HostFacts, gather_facts, gpu_index
from opskit.errors import DockerUnavailable, JobError
from opskit.hosts.transport import Transport
from opskit.jobs.spec import GpuRequest

DEFAULT_DISK_MARGIN = 1 << 30  # 1 GiB on top of what the image needs (the disk_margin setting)
HOME_NEED = 256 << 20  # results + staging headroom in the home folder
NVIDIA_HOOKS = ("nvidia-container-runtime-hook", "nvidia-container-toolkit", "nvidia-container-runtime")

__all__ = ["Check", "HostFacts", "evaluate", "gather", "preflight"]


def disk_margin() -> int:
    """The ``disk_margin`` setting (``$OPSKIT_DISK_MARGIN``; default 1 GiB)."""
    from opskit import settings

    return settings.get("disk_margin")


def gather(transport: Transport) -> HostFacts:
    """The host's facts and status snapshot in one round trip (opskit.checks.facts); an engine
    the login user cannot use is a preflight refusal that says so."""
    try:
        return gather_facts(transport)
    except DockerUnavailable as exc:
        raise JobError(
            f"{transport.host}: preflight: Docker is not usable by the login user: {exc.message}",
            "add the user to the 'docker' group on the host (then log in again), or start the engine",
        ) from exc


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def human(n: int | None) -> str:
    """Bytes as 1.5G / 512M / 300K (powers of 1024), for messages."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if abs(value) < 1024 or unit == "T":
            return f"{int(value)}B" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}T"


def evaluate(facts: HostFacts, gpus: GpuRequest, shm_size: int, ship_bytes: int, margin: int) -> list[Check]:
    """The preflight checks for these facts (pure: unit-tested on made-up hosts)."""
    checks = [Check("docker", True, f"engine {facts.docker_version} usable by uid {facts.uid}")]
    need = ship_bytes + margin
    free = facts.root_free
    checks.append(Check(
        "disk", free is not None and free >= need,
        f"{human(free)} free at {facts.docker_root}; need {human(need)} "
        f"({human(ship_bytes)} of image layers to load + {human(margin)} margin)"
        if free is not None else f"cannot read free space at {facts.docker_root}",
    ))
    home_need = min(ship_bytes, ship_bytes // 2 + (1 << 20)) + HOME_NEED
    checks.append(Check(
        "home", facts.home_free is None or facts.home_free >= home_need,
        f"{human(facts.home_free)} free in {facts.home}; need {human(home_need)} (staging + results)",
    ))
    checks.append(_gpu_check(facts, gpus))
    limit = facts.mem_total // 2 if facts.mem_total else None
    checks.append(Check(
        "shm", limit is None or shm_size <= limit,
        f"shm {human(shm_size)} asked; host memory {human(facts.mem_total)} (limit: half of it)",
    ))
    return checks


def _gpu_check(facts: HostFacts, req: GpuRequest) -> Check:
    names = ", ".join(sorted({str(g.values.get("name") or "?") for g in facts.gpus})) or "none"
    runtime = "nvidia" in facts.runtimes or facts.nvidia_hook is not None
    seen = f"{len(facts.gpus)} GPU(s) visible ({names})"
    if req.mode == "none" or (req.mode == "auto" and not facts.gpus):
        return Check("gpus", True, f"no GPU asked for; {seen}")
    if not facts.gpus:
        return Check("gpus", False, f"{req.describe()} asked for, but nvidia-smi shows none on this host")
    if req.mode == "count" and req.count > len(facts.gpus):
        return Check("gpus", False, f"{req.count} GPU(s) asked for; {seen}")
    if req.mode == "devices":
        have = {gpu_index(g) for g in facts.gpus}
        absent = [d for d in req.devices if d not in have]
        if absent:
            return Check("gpus", False, f"GPU(s) {','.join(absent)} asked for are not there; {seen}")
    if not runtime:
        return Check(
            "gpus", False,
            f"{seen}, but the NVIDIA container runtime is missing (no 'nvidia' runtime in docker info, "
            f"none of {', '.join(NVIDIA_HOOKS)} on PATH)",
        )
    driver = facts.gpus[0].values.get("driver_version") or "?"
    return Check("gpus", True, f"{req.describe()}: {seen}; driver {driver}, CUDA {facts.cuda or '?'}; NVIDIA runtime present")


def preflight(facts: HostFacts, gpus: GpuRequest, shm_size: int, ship_bytes: int) -> list[Check]:
    """Check gathered facts; raise JobError naming every failed check with numbers."""
    checks = evaluate(facts, gpus, shm_size, ship_bytes, disk_margin())
    failed = [c for c in checks if not c.ok]
    if failed:
        lines = "\n  ".join(f"{c.name}: {c.detail}" for c in failed)
        raise JobError(
            f"{facts.host}: preflight refused the run:\n  {lines}",
            _hint(failed),
        )
    return checks


def _hint(failed: list[Check]) -> str:
    names = {c.name for c in failed}
    if "disk" in names or "home" in names:
        return "free disk space on the host (e.g. 'docker image prune'), or pick another host"
    if "gpus" in names:
        return "ask for fewer GPUs (--gpus), use --gpus 0 on a CPU host, or install the NVIDIA container toolkit"
    return "lower --shm-size"
