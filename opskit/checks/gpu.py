"""NVIDIA GPUs through ``nvidia-smi``: the ``--query-gpu`` / ``--query-compute-apps`` CSV and
the driver/CUDA versions. JSON keys follow gpustat's (``index``, ``uuid``, ``name``,
``temperature.gpu``, ``fan.speed``, ``utilization.gpu``, ``memory.used``, ``memory.total``
(MiB), ``power.draw``, ``enforced.power.limit`` (W), ``processes``).

The parsers accept both ``--format=csv,noheader,nounits`` (what opskit asks for) and plain
``--format=csv`` (header line, units such as ``19818 MiB`` and ``100 %``). Values nvidia-smi
cannot give (``[N/A]``, ``[Not Supported]``, ``N/A``) become None. Any other bracketed cell is
an NVML error about that GPU (``[GPU requires reset]``, ``[GPU is lost]``): the value is None
and the GPU carries the error, which the report lists as a problem naming the GPU. A GPU that
nvidia-smi cannot open at all (``Unable to determine the device handle for GPU...``) is a
problem too; the other GPUs are still listed (status ``degraded``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opskit.checks.sections import (
    DRIVER_LOADED,
    GPU_APP_FIELDS,
    GPU_FIELDS,
    NVIDIA_SMI_TIMEOUT,
    TIMED_OUT_CODES,
    Section,
)
from opskit.errors import ParseError

INT_FIELDS = frozenset({
    "index", "temperature.gpu", "fan.speed", "utilization.gpu", "utilization.memory",
    "memory.used", "memory.total", "memory.free", "pid", "used_gpu_memory",
})
FLOAT_FIELDS = frozenset({"power.draw", "enforced.power.limit", "power.limit"})
_NUMBER = re.compile(r"^(-?\d+(?:\.\d+)?)\s*(%|MiB|W|MHz|C)?$")
_UNIT_SUFFIX = re.compile(r"\s*\[[^\]]*\]$")
_NA = frozenset({"N/A", "Not Supported", "Unknown Error", "Insufficient Permissions"})
_NO_PROCESSES = "No running processes found"
_BRACKETED = re.compile(r"^\[(?P<error>[^\]]*)\]$")
_LOST = re.compile(r"^Unable to determine the device handle for GPU\s*(?P<bus>[0-9A-Fa-f:.]+)"
                   r"\s*:\s*(?P<error>.*)$")
_CUDA = re.compile(r"CUDA (?:UMD )?Version\s*:\s*(\d+(?:\.\d+)*)", re.IGNORECASE)
_DRIVER = re.compile(r"(?:Driver|DRIVER|KMD) [Vv]ersion\s*:\s*(\d+(?:\.\d+)*)")


class CellError(ValueError):
    """A bracketed NVML error in a cell (``[GPU requires reset]``): the value is unknown."""


def _value(name: str, raw: str) -> str | int | float | None:
    raw = raw.strip()
    if raw.strip("[]") in _NA:
        return None
    bracketed = _BRACKETED.match(raw)
    if bracketed:
        raise CellError(bracketed.group("error"))
    if name not in INT_FIELDS and name not in FLOAT_FIELDS:
        return raw
    m = _NUMBER.match(raw)
    if m is None:
        raise ValueError(f"{name}: {raw!r} is not a number")
    return float(m.group(1)) if name in FLOAT_FIELDS else int(float(m.group(1)))


def parse_csv_query(text: str, fields: Sequence[str], host: str = "localhost", *,
                    what: str = "nvidia-smi") -> list[dict]:
    """Rows of a ``nvidia-smi --query-*=FIELDS --format=csv[,noheader][,nounits]`` answer.

    The last field may contain commas (free text such as a name). Raises ParseError naming
    host and line when a row has too few columns or a number does not parse.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and lines[0].split(",")[0].strip() == fields[0]:
        names = [_UNIT_SUFFIX.sub("", h.strip()) for h in lines[0].split(",")]
        if names != list(fields):
            raise ParseError(host, what, lines[0], f"expected the columns {','.join(fields)}")
        lines = lines[1:]
    rows = []
    for line in lines:
        if line.strip() == _NO_PROCESSES:
            continue
        rows.append(parse_csv_row(line, fields, host, what))
    return rows


def parse_csv_row(line: str, fields: Sequence[str], host: str, what: str) -> dict:
    """One CSV row -> {field: value}; NVML errors in cells under the key ``_errors``
    ({field: error}). ParseError for a row of the wrong shape or a bad number."""
    cells = line.split(",", len(fields) - 1)
    if len(cells) != len(fields):
        raise ParseError(host, what, line, f"expected {len(fields)} comma-separated values")
    row: dict = {}
    errors: dict[str, str] = {}
    for name, cell in zip(fields, cells, strict=True):
        try:
            row[name] = _value(name, cell)
        except CellError as exc:
            row[name], errors[name] = None, str(exc)
        except ValueError as exc:
            raise ParseError(host, what, line, str(exc)) from exc
    if errors:
        row["_errors"] = errors
    return row


def parse_cuda_version(text: str) -> str | None:
    """CUDA version from ``nvidia-smi --version`` or the plain ``nvidia-smi`` table header."""
    m = _CUDA.search(text)
    return m.group(1) if m else None


def parse_driver_version(text: str) -> str | None:
    m = _DRIVER.search(text)
    return m.group(1) if m else None


@dataclass(frozen=True)
class GpuProcess:
    gpu_uuid: str | None
    pid: int
    process_name: str
    used_memory: int | None  # MiB
    gpu_index: int | None = None
    username: str | None = None
    cpu_percent: float | None = None
    cpu_memory_usage: int | None = None  # bytes (RSS)

    @property
    def command(self) -> str:
        return self.process_name.replace("\\", "/").rsplit("/", 1)[-1]

    def to_dict(self) -> dict:
        """gpustat's process keys (plus ``process_name`` as nvidia-smi gives it)."""
        return {
            "pid": self.pid,
            "username": self.username,
            "command": self.command,
            "process_name": self.process_name,
            "gpu_memory_usage": self.used_memory,
            "cpu_percent": self.cpu_percent,
            "cpu_memory_usage": self.cpu_memory_usage,
            "gpu_uuid": self.gpu_uuid,
            "gpu_index": self.gpu_index,
        }


@dataclass(frozen=True)
class Gpu:
    """One GPU row; ``values`` holds every queried field by nvidia-smi's name."""

    values: dict
    processes: tuple[GpuProcess, ...] = ()
    errors: tuple[tuple[str, str], ...] = ()  # (field, NVML error) for bracketed cells

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def problem(self) -> str | None:
        """``GPU 0 (00000000:4A:00.0): GPU requires reset (temperature.gpu, ...)`` or None."""
        if not self.errors:
            return None
        by_error: dict[str, list[str]] = {}
        for name, error in self.errors:
            by_error.setdefault(error, []).append(name)
        what = "; ".join(f"{e} ({', '.join(names)})" for e, names in by_error.items())
        return f"GPU {self.values.get('index')} ({self.values.get('pci.bus_id') or '?'}): {what}"

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.values.items() if k != "driver_version"}
        d["processes"] = [p.to_dict() for p in self.processes]
        d["errors"] = {name: error for name, error in self.errors}
        return d


@dataclass(frozen=True)
class GpuReport:
    """``status``: ``ok``; ``degraded`` (GPUs listed, and problems: a GPU lost or reporting
    an NVML error); ``absent`` (no nvidia-smi and no NVIDIA driver); ``error`` (nvidia-smi
    failed, hung, or is missing although the driver is loaded: no GPU listed)."""

    status: str
    message: str | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    gpus: tuple[Gpu, ...] = field(default_factory=tuple)
    problems: tuple[str, ...] = ()

    @property
    def processes(self) -> list[GpuProcess]:
        return [p for g in self.gpus for p in g.processes]

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "message": self.message,
            "driver_version": self.driver_version,
            "cuda_version": self.cuda_version,
            "gpus": [g.to_dict() for g in self.gpus],
            "problems": list(self.problems),
        }


ABSENT_MESSAGE = "no NVIDIA GPU (nvidia-smi not found)"


def parse_gpu_processes(text: str, host: str, gpus: Sequence[Gpu] = ()) -> list[GpuProcess]:
    index_of = {g["uuid"]: g["index"] for g in gpus}
    rows = parse_csv_query(text, GPU_APP_FIELDS, host, what="nvidia-smi --query-compute-apps")
    return [
        GpuProcess(gpu_uuid=r["gpu_uuid"], pid=r["pid"], process_name=r["process_name"] or "",
                   used_memory=r["used_gpu_memory"], gpu_index=index_of.get(r["gpu_uuid"]))
        for r in rows
    ]


def parse_gpu_rows(text: str, host: str) -> tuple[list[Gpu], list[str]]:
    """``--query-gpu`` rows -> GPUs, and problems: GPUs nvidia-smi could not open, rows that
    do not parse (named, the others kept) and GPUs whose cells hold NVML errors."""
    gpus: list[Gpu] = []
    problems: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        lost = _LOST.match(line.strip())
        if lost:
            problems.append(f"GPU {lost.group('bus')} is lost: {line.strip()}")
            continue
        try:
            rows = parse_csv_query(line, GPU_FIELDS, host, what="nvidia-smi --query-gpu")
        except ParseError as exc:
            problems.append(exc.message.partition(": ")[2].replace("\n ", ""))
            continue
        for row in rows:
            errors = tuple(sorted(row.pop("_errors", {}).items()))
            gpu = Gpu(row, errors=errors)
            gpus.append(gpu)
            if gpu.problem():
                problems.append(gpu.problem())  # type: ignore[arg-type]
    return gpus, problems


def _failed(query: Section) -> GpuReport:
    if query.exit_code in TIMED_OUT_CODES:
        msg = f"nvidia-smi did not answer within {NVIDIA_SMI_TIMEOUT}s (stopped on the host)"
    else:
        msg = f"nvidia-smi failed: {query.message()}"
    return GpuReport("error", msg, problems=(msg,))


def gpu_report(host: str, query: Section, apps: Section | None, version: Section | None
               ) -> GpuReport:
    """Sections ``gpu_query`` (+ ``gpu_apps``, ``gpu_version``) -> a GpuReport (never raises
    for what nvidia-smi says: a broken GPU or driver is a report with problems)."""
    if query.not_found:
        if DRIVER_LOADED in query.stderr:
            msg = f"nvidia-smi not found, {DRIVER_LOADED}"
            return GpuReport("error", msg, problems=(msg,))
        return GpuReport("absent", ABSENT_MESSAGE)
    if query.exit_code in TIMED_OUT_CODES:
        return _failed(query)
    gpus, problems = parse_gpu_rows(query.stdout, host)
    if not gpus and not query.ok:
        return _failed(query)
    if not query.ok and not problems:
        problems.append(f"nvidia-smi exited with {query.exit_code}: {query.message()}")
    procs: list[GpuProcess] = []
    if apps is not None and apps.ok:
        try:
            procs = parse_gpu_processes(apps.stdout, host, gpus)
        except ParseError as exc:
            problems.append(exc.message.partition(": ")[2])
    gpus = [Gpu(g.values, tuple(p for p in procs if p.gpu_uuid == g["uuid"]), g.errors)
            for g in gpus]
    version_text = version.stdout if version is not None and version.ok else ""
    driver = next((g["driver_version"] for g in gpus if g["driver_version"]), None)
    return GpuReport(
        "degraded" if problems else "ok",
        "; ".join(problems) if problems else (None if gpus else "nvidia-smi lists no GPU"),
        driver or parse_driver_version(version_text),
        parse_cuda_version(version_text),
        tuple(gpus),
        tuple(problems),
    )
