"""Before a job starts: is the host able to run it? Every check says what it measured.

SSH reachable; the Docker engine usable by the login user; free disk where the engine keeps
images (>= the bytes still to ship + a margin) and in the home folder (staging + results);
the GPUs asked for visible to ``nvidia-smi`` and the NVIDIA container runtime present; the
shared memory asked for within the host's memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from opskit.checks.gpu import parse_csv_query, parse_cuda_version
from opskit.errors import DockerUnavailable, JobError
from opskit.hosts.transport import Transport
from opskit.jobs.spec import GpuRequest

GPU_FIELDS = ("index", "name", "driver_version", "memory.total")
GPU_QUERY = ["nvidia-smi", f"--query-gpu={','.join(GPU_FIELDS)}", "--format=csv,noheader,nounits"]
DEFAULT_DISK_MARGIN = 1 << 30  # 1 GiB on top of what the image needs
HOME_NEED = 256 << 20  # results + staging headroom in the home folder
NVIDIA_HOOKS = ("nvidia-container-runtime-hook", "nvidia-container-toolkit", "nvidia-container-runtime")


def disk_margin() -> int:
    """The ``disk_margin`` setting (``$OPSKIT_DISK_MARGIN``; default 1 GiB)."""
    from opskit import settings

    return settings.get("disk_margin")


@dataclass
class Gpu:
    index: str
    name: str
    driver: str
    memory_mib: int | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def parse_gpu_csv(text: str, host: str = "localhost") -> list[Gpu]:
    """``nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader,nounits``
    (the CSV parser of :mod:`opskit.checks.gpu`; ParseError names host and line)."""
    rows = parse_csv_query(text, GPU_FIELDS, host, what="nvidia-smi --query-gpu")
    return [Gpu(str(r["index"]), r["name"] or "?", r["driver_version"] or "", r["memory.total"]) for r in rows]


@dataclass
class HostFacts:
    host: str
    docker_version: str = ""
    docker_root: str = "/var/lib/docker"
    runtimes: list[str] = field(default_factory=list)
    mem_total: int = 0
    ncpu: int = 0
    root_free: int | None = None
    home: str = ""
    home_free: int | None = None
    gpus: list[Gpu] = field(default_factory=list)
    cuda: str | None = None
    nvidia_hook: str | None = None
    uid: int = 0
    gid: int = 0

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["gpus"] = [g.to_dict() for g in self.gpus]
        return d


def _df_free(transport: Transport, path: str) -> int | None:
    res = transport.run(["df", "-P", "-B1", "--", path])
    lines = res.stdout.strip().splitlines()
    if not res.ok or len(lines) < 2:
        return None
    fields = lines[-1].split()
    return int(fields[3]) if len(fields) >= 4 and fields[3].isdigit() else None


def gather_facts(transport: Transport) -> HostFacts:
    """Host facts for preflight and the run card (SSH, engine, disks, GPUs)."""
    ident = transport.run(["sh", "-c", 'id -u; id -g; printf "%s\\n" "$HOME"'], check=True)
    uid, gid, home = (ident.stdout.splitlines() + ["0", "0", ""])[:3]
    if not home and transport.is_local:
        home = os.path.expanduser("~")
    if not home.startswith("/"):  # refused: this machine's home path means nothing on another host
        raise JobError(
            f"{transport.host}: the login user's $HOME is {home!r}, not an absolute path",
            "give the login user a home folder on the host (the run's results are kept there)",
        )
    facts = HostFacts(transport.host, uid=int(uid), gid=int(gid), home=home)
    info = transport.docker().info()
    facts.docker_version = str(info.get("ServerVersion", ""))
    facts.docker_root = str(info.get("DockerRootDir") or facts.docker_root)
    facts.runtimes = sorted((info.get("Runtimes") or {}).keys())
    facts.mem_total = int(info.get("MemTotal") or 0)
    facts.ncpu = int(info.get("NCPU") or 0)
    facts.root_free = _df_free(transport, facts.docker_root)
    facts.home_free = _df_free(transport, facts.home)
    gpu = transport.run(GPU_QUERY)
    if gpu.ok:
        facts.gpus = parse_gpu_csv(gpu.stdout, transport.host)
        facts.cuda = parse_cuda_version(transport.run(["nvidia-smi"]).stdout)
    hooks = transport.run(["sh", "-c", 'for p in "$@"; do command -v "$p" && break; done; true', "sh", *NVIDIA_HOOKS])
    facts.nvidia_hook = hooks.stdout.strip().splitlines()[0] if hooks.stdout.strip() else None
    return facts


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
    names = ", ".join(sorted({g.name for g in facts.gpus})) or "none"
    runtime = "nvidia" in facts.runtimes or facts.nvidia_hook is not None
    seen = f"{len(facts.gpus)} GPU(s) visible ({names})"
    if req.mode == "none" or (req.mode == "auto" and not facts.gpus):
        return Check("gpus", True, f"no GPU asked for; {seen}")
    if not facts.gpus:
        return Check("gpus", False, f"{req.describe()} asked for, but nvidia-smi shows none on this host")
    if req.mode == "count" and req.count > len(facts.gpus):
        return Check("gpus", False, f"{req.count} GPU(s) asked for; {seen}")
    if req.mode == "devices":
        have = {g.index for g in facts.gpus}
        absent = [d for d in req.devices if d not in have]
        if absent:
            return Check("gpus", False, f"GPU(s) {','.join(absent)} asked for are not there; {seen}")
    if not runtime:
        return Check(
            "gpus", False,
            f"{seen}, but the NVIDIA container runtime is missing (no 'nvidia' runtime in docker info, "
            f"none of {', '.join(NVIDIA_HOOKS)} on PATH)",
        )
    driver = facts.gpus[0].driver
    return Check("gpus", True, f"{req.describe()}: {seen}; driver {driver}, CUDA {facts.cuda or '?'}; NVIDIA runtime present")


def preflight(transport: Transport, gpus: GpuRequest, shm_size: int, ship_bytes: int) -> tuple[HostFacts, list[Check]]:
    """Gather facts and check them; raise JobError naming every failed check with numbers."""
    try:
        facts = gather_facts(transport)
    except DockerUnavailable as exc:
        raise JobError(
            f"{transport.host}: preflight: Docker is not usable by the login user: {exc.message}",
            "add the user to the 'docker' group on the host (then log in again), or start the engine",
        ) from exc
    checks = evaluate(facts, gpus, shm_size, ship_bytes, disk_margin())
    failed = [c for c in checks if not c.ok]
    if failed:
        lines = "\n  ".join(f"{c.name}: {c.detail}" for c in failed)
        raise JobError(
            f"{transport.host}: preflight refused the run:\n  {lines}",
            _hint(failed),
        )
    return facts, checks


def _hint(failed: list[Check]) -> str:
    names = {c.name for c in failed}
    if "disk" in names or "home" in names:
        return "free disk space on the host (e.g. 'docker image prune'), or pick another host"
    if "gpus" in names:
        return "ask for fewer GPUs (--gpus), use --gpus 0 on a CPU host, or install the NVIDIA container toolkit"
    return "lower --shm-size"
