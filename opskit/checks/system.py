"""Small pure parsers for /etc/os-release, ``uname -srm``, /proc/uptime, /proc/loadavg and
/proc/meminfo. Each raises ParseError naming the host and the line that did not parse."""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass

from opskit.errors import ParseError


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def parse_os_release(text: str, host: str = "localhost") -> dict[str, str]:
    """``KEY=value`` lines (values may be quoted, shell style) -> dict. Comments skipped."""
    result: dict[str, str] = {}
    for line in _lines(text):
        if line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip().replace("_", "").isalnum():
            raise ParseError(host, "/etc/os-release", line, "expected KEY=value")
        result[key.strip()] = _shell_value(value, host, line)
    return result


def _shell_value(value: str, host: str, line: str) -> str:
    """A value as ``sh`` reads it (words joined by one space). The usual forms (a bare word,
    or one quoted string with nothing to unescape) are read directly; the rest by shlex."""
    v = value.strip()
    if not any(c in v for c in " \t\"'\\"):
        return v
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'" and not any(
            c in v[1:-1] for c in "\"'\\"):
        return v[1:-1]
    try:
        return " ".join(shlex.split(value))
    except ValueError as exc:
        raise ParseError(host, "/etc/os-release", line, str(exc)) from exc


@dataclass(frozen=True)
class OsInfo:
    id: str | None
    name: str | None
    version_id: str | None
    pretty_name: str | None

    @classmethod
    def from_release(cls, release: dict[str, str]) -> OsInfo:
        return cls(release.get("ID"), release.get("NAME"), release.get("VERSION_ID"),
                   release.get("PRETTY_NAME") or release.get("NAME"))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Kernel:
    name: str
    release: str
    machine: str

    def to_dict(self) -> dict:
        return asdict(self)


def parse_uname(text: str, host: str = "localhost") -> Kernel:
    """``uname -srm`` -> Kernel (``Linux 6.1.0-18-amd64 x86_64``)."""
    parts = text.split()
    if len(parts) != 3:
        raise ParseError(host, "uname -srm", text.strip(), "expected: name release machine")
    return Kernel(*parts)


def parse_uptime(text: str, host: str = "localhost") -> float:
    """/proc/uptime -> seconds since boot."""
    try:
        return float(text.split()[0])
    except (IndexError, ValueError) as exc:
        raise ParseError(host, "/proc/uptime", text.strip(), "expected two numbers") from exc


@dataclass(frozen=True)
class Load:
    load1: float
    load5: float
    load15: float
    running: int
    total: int

    def to_dict(self) -> dict:
        return {"1m": self.load1, "5m": self.load5, "15m": self.load15,
                "running": self.running, "tasks": self.total}


def parse_loadavg(text: str, host: str = "localhost") -> Load:
    """/proc/loadavg (``0.12 0.16 0.09 7/126 17294``) -> Load."""
    parts = text.split()
    try:
        running, total = parts[3].split("/")
        return Load(float(parts[0]), float(parts[1]), float(parts[2]), int(running), int(total))
    except (IndexError, ValueError) as exc:
        raise ParseError(host, "/proc/loadavg", text.strip(), "expected '1m 5m 15m r/t pid'") from exc


@dataclass(frozen=True)
class Memory:
    """Bytes. ``used`` = total - available (what ``free`` calls used, roughly)."""

    total: int
    available: int
    swap_total: int
    swap_free: int

    @property
    def used(self) -> int:
        return self.total - self.available

    @property
    def percent(self) -> float:
        return round(100.0 * self.used / self.total, 1) if self.total else 0.0

    def to_dict(self) -> dict:
        return {"total": self.total, "available": self.available, "used": self.used,
                "percent": self.percent, "swap_total": self.swap_total,
                "swap_used": self.swap_total - self.swap_free}


def parse_meminfo(text: str, host: str = "localhost") -> Memory:
    """/proc/meminfo -> Memory. MemAvailable falls back to MemFree+Buffers+Cached (< 3.14)."""
    values: dict[str, int] = {}
    for line in _lines(text):
        key, sep, rest = line.partition(":")
        words = rest.split()
        if not sep or not words or not words[0].isdigit():
            raise ParseError(host, "/proc/meminfo", line, "expected 'Key: number [kB]'")
        scale = 1024 if words[1:] == ["kB"] else 1
        values[key.strip()] = int(words[0]) * scale
    if "MemTotal" not in values:
        raise ParseError(host, "/proc/meminfo", text.strip()[:80], "no MemTotal line")
    available = values.get("MemAvailable")
    if available is None:
        available = sum(values.get(k, 0) for k in ("MemFree", "Buffers", "Cached"))
    return Memory(values["MemTotal"], available, values.get("SwapTotal", 0),
                  values.get("SwapFree", 0))


def parse_cpu_model(text: str) -> str | None:
    """``model name : AMD EPYC ...`` (first line of /proc/cpuinfo's) -> the name, or None."""
    _, sep, value = text.partition(":")
    return value.strip() or None if sep else None


def parse_cpus(text: str, host: str = "localhost") -> int:
    """The ``nproc`` section -> usable CPUs: ``list 0-3,8`` (Cpus_allowed_list) or ``count 4``."""
    kind, _, value = text.strip().partition(" ")
    try:
        if kind == "count":
            return int(value)
        if kind == "list":
            total = 0
            for part in value.split(","):
                lo, _, hi = part.partition("-")
                total += int(hi or lo) - int(lo) + 1
            return total
    except ValueError as exc:
        raise ParseError(host, "CPU count", text.strip(), "expected 'list 0-3,8' or 'count 4'") from exc
    raise ParseError(host, "CPU count", text.strip(), "expected 'list 0-3,8' or 'count 4'")
