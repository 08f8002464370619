"""``ps``: processes with pid, user, cpu%, mem%, elapsed time and command; GPU memory too.

The host runs ``ps -eww -o pid,ppid,user:32,pcpu,pmem,rss,etimes,args`` (procps). procps shows
the uid of a user whose name is longer than 32 characters; the ``long_users`` section (local
accounts with such names) turns those uids back into names. ``%CPU`` is
what ps reports: CPU time divided by elapsed time over the process's life, not a sample.
Filtering (``--user``, ``--name``), sorting and limiting happen here, on the client: nothing the
user types is ever sent to the host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from opskit.checks.sections import PS_COLUMNS, PS_TIMEOUT, TIMED_OUT_CODES, Section
from opskit.errors import HostError, ParseError, UsageError
from opskit.safety import check_listed_name

if TYPE_CHECKING:  # pragma: no cover
    from opskit.checks.gpu import GpuProcess

_HEADER = ("PID", "PPID", "USER", "%CPU", "%MEM", "RSS", "ELAPSED", "COMMAND")
SORT_KEYS = ("cpu", "mem", "pid", "time")


@dataclass(frozen=True)
class Process:
    """One process. ``rss`` in bytes, ``elapsed`` in seconds; GPU fields when known."""

    pid: int
    ppid: int
    user: str
    cpu_percent: float
    mem_percent: float
    rss: int
    elapsed: int
    command: str
    gpu_memory: int | None = None  # MiB, as nvidia-smi reports it (gpustat's unit)
    gpu_index: int | None = None

    @property
    def name(self) -> str:
        """The program's base name (``/usr/bin/python3 x.py`` -> ``python3``)."""
        first = self.command.split(" ", 1)[0]
        return first.rsplit("/", 1)[-1] if not first.startswith("[") else first

    def to_dict(self) -> dict:
        d = asdict(self)
        d["name"] = self.name
        d["elapsed_text"] = format_elapsed(self.elapsed)
        return d


def parse_ps(text: str, host: str = "localhost") -> list[Process]:
    """Parse ``ps -o pid,ppid,user:32,pcpu,pmem,rss,etimes,args`` output (header required)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ParseError(host, "ps", "", "no output (expected a 'PID PPID USER ...' header)")
    if tuple(lines[0].split()) != _HEADER:
        raise ParseError(host, "ps", lines[0], f"expected the header {' '.join(_HEADER)}")
    result = []
    for line in lines[1:]:
        parts = line.split(None, 7)
        try:
            pid, ppid, user, cpu, mem, rss, etimes = parts[:7]
            command = parts[7] if len(parts) == 8 else ""
            result.append(Process(
                pid=int(pid), ppid=int(ppid), user=user, cpu_percent=float(cpu),
                mem_percent=float(mem), rss=int(rss) * 1024, elapsed=int(etimes),
                command=command,
            ))
        except ValueError as exc:
            raise ParseError(host, "ps", line, "expected: pid ppid user %cpu %mem rss "
                                               "elapsed-seconds command") from exc
    return result


def without_descendants(processes: list[Process], root: int | None) -> list[Process]:
    """Drop ``root`` and every process below it (opskit's own shell, ps, nvidia-smi, ...)."""
    if root is None:
        return list(processes)
    children: dict[int, list[int]] = {}
    for p in processes:
        children.setdefault(p.ppid, []).append(p.pid)
    drop, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in drop:
            drop.add(pid)
            todo.extend(children.get(pid, ()))
    return [p for p in processes if p.pid not in drop]


@dataclass(frozen=True)
class ProcessFilter:
    """What ``opskit ps`` was asked for; validated before any host is contacted."""

    sort: str = "cpu"
    user: str | None = None
    name: str | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.sort not in SORT_KEYS:
            raise UsageError(f"invalid sort key {self.sort!r}", f"use one of: {', '.join(SORT_KEYS)}")
        if self.user is not None:  # compared here, never sent: any name a directory allows
            check_listed_name(self.user, "user name")
        if self.name is not None:
            try:
                re.compile(self.name)
            except re.error as exc:
                raise UsageError(f"invalid --name pattern {self.name!r}: {exc}",
                                 "the pattern is a regular expression, as for 'pgrep -f'") from exc
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"invalid --limit {self.limit}: must be 1 or more")

    def apply(self, processes: Iterable[Process]) -> list[Process]:
        selected = list(processes)
        if self.user is not None:
            selected = [p for p in selected if p.user == self.user]
        if self.name is not None:
            pattern = re.compile(self.name)
            selected = [p for p in selected if pattern.search(p.command)]
        selected = sort_processes(selected, self.sort)
        return selected[: self.limit] if self.limit else selected


def sort_processes(processes: list[Process], key: str) -> list[Process]:
    if key == "cpu":
        return sorted(processes, key=lambda p: (-p.cpu_percent, -p.mem_percent, p.pid))
    if key == "mem":
        return sorted(processes, key=lambda p: (-p.mem_percent, -p.rss, p.pid))
    if key == "time":
        return sorted(processes, key=lambda p: (-p.elapsed, p.pid))
    return sorted(processes, key=lambda p: p.pid)


def with_gpu_usage(processes: list[Process], gpu_processes: Iterable[GpuProcess]
                   ) -> list[Process]:
    """Attach GPU memory (MiB, summed over GPUs) and the first GPU index to matching pids."""
    usage: dict[int, tuple[int | None, int | None]] = {}
    for gp in gpu_processes:
        mem, index = usage.get(gp.pid, (None, gp.gpu_index))
        if gp.used_memory is not None:
            mem = (mem or 0) + gp.used_memory
        usage[gp.pid] = (mem, index)
    return [
        replace(p, gpu_memory=usage[p.pid][0], gpu_index=usage[p.pid][1]) if p.pid in usage else p
        for p in processes
    ]


def format_elapsed(seconds: int) -> str:
    """Like ps's ``etime``: ``[[dd-]hh:]mm:ss``."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}"


def long_user_names(section: Section | None) -> dict[str, str]:
    """The ``long_users`` section (passwd lines) -> {uid: name}."""
    if section is None:
        return {}
    fields = (line.split(":") for line in section.stdout.splitlines())
    return {f[2]: f[0] for f in fields if len(f) > 2 and f[2].isdigit()}


def processes_from_section(host: str, section: Section, self_pid: int | None,
                           long_users: Section | None = None) -> list[Process]:
    """The ps section of a script run -> processes, without opskit's own commands; users
    that ps could only show as a uid get their names back from ``long_users``."""
    if section.not_found:
        raise HostError(host, "ps: command not found", "install procps on the host")
    if section.exit_code in TIMED_OUT_CODES:
        raise HostError(host, f"ps did not answer within {PS_TIMEOUT}s and was stopped on the "
                        "host", "a process stuck in the kernel (state D) can block ps there")
    if not section.ok:
        text = f"{section.stderr}\n{section.stdout}".lower()
        limited = any(w in text for w in ("invalid option", "unrecognized option", "busybox",
                                          "unknown user option", "bad -o argument"))
        raise HostError(host, f"ps failed: {section.message()}",
                        "this ps (BusyBox's?) lacks the options opskit uses (-ww -o "
                        f"{PS_COLUMNS}); install procps on the host" if limited else None)
    names = long_user_names(long_users)
    processes = parse_ps(section.stdout, host)
    if names:
        processes = [replace(p, user=names[p.user]) if p.user in names else p for p in processes]
    return without_descendants(processes, self_pid)
