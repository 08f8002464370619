"""``opskit status``, ``opskit df`` and ``opskit ps``: the seed's Linux checks on many hosts.

Every command runs on all hosts in parallel (one round trip per host), prints one table per
host (or ``--json``), and exits 0 when all is well, 1 when a check failed or a host failed
(every host is still reported), 2 on bad usage.

JSON (stable keys): ``{"hosts": {NAME: VALUE}, "errors": {NAME: {error, message, hint}}}``
plus, for df, ``"warn"`` (the threshold or null). VALUE is
- status: ``Snapshot.to_dict()`` (keys documented in ``opskit.checks.status``);
- df: ``{"filesystems": [{filesystem, type, size, used, free, percent, mount}],
  "over_warn": [mount points]}`` (bytes, exactly as ``df -B1``);
- ps: ``{"processes": [{pid, ppid, user, cpu_percent, mem_percent, rss, elapsed,
  elapsed_text, command, name, gpu_memory, gpu_index}], "gpu": {status, message, ...}}``.
"""

from __future__ import annotations

from typing import Any

import click

from opskit.cli.common import common_options

COMMAND_WIDTH = 80


def _run(hosts: tuple[str, ...], inventory: str | None, fn: Any) -> Any:
    from opskit.cli.common import resolve_hosts
    from opskit.hosts.group import run_on_hosts

    return run_on_hosts(resolve_hosts(hosts, inventory), fn)


def _short(text: str, width: int = COMMAND_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _exit(group: Any, failed_checks: bool) -> int:
    from opskit.cli import render

    code = render.report_group_errors(group)
    return 1 if failed_checks else code


# -- df -------------------------------------------------------------------------------------
@click.command("df", context_settings={"help_option_names": ["--help"]})
@click.option("-h", "--human-readable", "human", is_flag=True,
              help="Sizes in powers of 1024 (like df -h). Default: bytes, as df -B1.")
@click.option("--warn", "warn", metavar="PERCENT",
              help="Exit 1 when a filesystem is used more than this, e.g. 90%.")
@click.option("--all", "-a", "all_filesystems", is_flag=True,
              help="Every mount df -a lists (pseudo filesystems too).")
@common_options
def df(human: bool, warn: str | None, all_filesystems: bool, hosts: tuple[str, ...],
       inventory: str | None, as_json: bool) -> int:
    """Filesystems with size, used, free and percent (like df).

    Real filesystems only by default: pseudo and memory filesystems (proc, sysfs, tmpfs,
    devtmpfs, cgroup, squashfs, ...) and a container engine's own mounts are hidden;
    an overlay root (inside a container) shows.
    """
    from opskit.checks.disk import disk_usage, over_threshold, parse_threshold
    from opskit.cli import render

    limit = parse_threshold(warn) if warn is not None else None
    group = _run(hosts, inventory, lambda t: disk_usage(t, all_filesystems=all_filesystems))
    over = {o.host: over_threshold(o.value, limit) if limit is not None else []
            for o in group if o.ok}
    if as_json:
        data = render.group_json(group, lambda v: {"filesystems": [f.to_dict() for f in v]})
        for name, value in data["hosts"].items():
            value["over_warn"] = [f.mount for f in over[name]]
        data["warn"] = limit
        render.print_json(data)
    else:
        size = render.human_bytes if human else str
        for outcome in group:
            if not outcome.ok:
                continue
            flagged = {f.mount for f in over[outcome.host]}
            render.print_table(
                ["FILESYSTEM", "TYPE", "SIZE", "USED", "FREE", "USE%", "MOUNTED ON"],
                [[f.filesystem, f.type, size(f.size), size(f.used), size(f.free),
                  ("-" if f.percent is None else f"{f.percent}%")
                  + (" !" if f.mount in flagged else ""), f.mount] for f in outcome.value],
                title=outcome.host,
                justify={c: "right" for c in ("SIZE", "USED", "FREE", "USE%")},
            )
        for name, fss in over.items():
            for f in fss:
                render.print_line(f"warning: {name}: {f.mount} is {f.percent}% full "
                                  f"(above {limit}%)", err=True)
    return _exit(group, any(over.values()))


# -- ps -------------------------------------------------------------------------------------
@click.command("ps")
@click.option("--sort", type=click.Choice(["cpu", "mem", "pid", "time"]), default="cpu",
              show_default=True, help="Order: highest cpu% or mem% first, pid, or oldest.")
@click.option("--user", "-u", "user", metavar="USER", help="Only this user's processes.")
@click.option("--name", "name", metavar="PATTERN",
              help="Only commands matching this regular expression (like pgrep -f).")
@click.option("--limit", "-n", "limit", type=click.IntRange(min=1), metavar="N",
              help="At most N processes per host.")
@common_options
def ps(sort: str, user: str | None, name: str | None, limit: int | None,
       hosts: tuple[str, ...], inventory: str | None, as_json: bool) -> int:
    """Processes with pid, user, cpu%, mem%, elapsed time; GPU processes too.

    %CPU is ps's: CPU time over the process's lifetime. When the host has nvidia-smi, GPU
    processes show their GPU and GPU memory (MiB).
    """
    from opskit.checks.procs import ProcessFilter, format_elapsed
    from opskit.checks.status import process_list
    from opskit.cli import render

    flt = ProcessFilter(sort=sort, user=user, name=name, limit=limit)
    group = _run(hosts, inventory, lambda t: process_list(t, flt))
    failed = any(o.value["gpu"].problems for o in group if o.ok)
    if as_json:
        render.print_json(render.group_json(group, lambda v: {
            "processes": [p.to_dict() for p in v["processes"]], "gpu": v["gpu"].to_dict()}))
        return _exit(group, failed)
    for outcome in group:
        if not outcome.ok:
            continue
        gpu = outcome.value["gpu"]
        has_gpu = bool(gpu.gpus)
        columns = ["PID", "USER", "%CPU", "%MEM", "ELAPSED"]
        columns += ["GPU", "GPU MEM"] if has_gpu else []
        rows = []
        for p in outcome.value["processes"]:
            row = [p.pid, p.user, f"{p.cpu_percent:.1f}", f"{p.mem_percent:.1f}",
                   format_elapsed(p.elapsed)]
            if has_gpu:
                row += [("-" if p.gpu_index is None else p.gpu_index),
                        ("-" if p.gpu_memory is None else f"{p.gpu_memory}MiB")]
            rows.append([*row, _short(p.command)])
        render.print_table(columns + ["COMMAND"], rows, title=outcome.host,
                           justify={c: "right" for c in ("PID", "%CPU", "%MEM", "ELAPSED",
                                                         "GPU MEM")})
        if gpu.status != "ok":
            render.print_line(f"{outcome.host}: {gpu.message}")
    return _exit(group, failed)


# -- status ---------------------------------------------------------------------------------
def format_uptime(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    text = f"{hours:02d}:{rest // 60:02d}"
    return f"{days} day{'s' if days != 1 else ''}, {text}" if days else text


def _summary_rows(s: Any) -> list[list[str]]:
    """Name/value rows; a section that failed shows ``unavailable: ERROR`` in its place."""
    from opskit.cli.render import human_bytes as hb

    errors = s.section_errors

    def row(label: str, section: str, value: Any, text: Any) -> list[str]:
        if section in errors:
            return [label, f"unavailable: {errors[section].message}"]
        return [label, text(value) if value is not None else "-"]

    m = s.memory
    rows = [
        row("hostname", "hostname", s.hostname, str),
        row("os", "os", s.os, lambda o: o.pretty_name or "-"),
        row("kernel", "kernel", s.kernel, lambda k: f"{k.release} ({k.machine})"),
        row("uptime", "uptime", s.uptime_seconds, format_uptime),
        row("load", "load", s.load, lambda x: f"{x.load1:.2f} {x.load5:.2f} {x.load15:.2f}"),
        row("cpus", "cpus", s.cpus, lambda c: f"{c}" + (f" ({s.cpu_model})" if s.cpu_model else "")),
        row("memory", "memory", m, lambda m: f"{hb(m.used)} used of {hb(m.total)} ({m.percent:.1f}%)"),
    ]
    if s.disks is None:
        rows.append(row("disks", "disks", None, str))
    for d in s.disks or []:
        rows.append([f"disk {d.mount}", f"{hb(d.used)} used of {hb(d.size)} "
                     f"({'-' if d.percent is None else d.percent}%), {hb(d.free)} free"])
    g = s.gpu
    if g.gpus:
        rows.append(["gpus", f"{len(g.gpus)} (driver {g.driver_version or '?'}, "
                     f"CUDA {g.cuda_version or '?'})" + (f", {g.status}" if g.problems else "")])
    else:
        rows.append(["gpus", g.message or g.status])
    rows.append(row("docker", "docker", s.docker, lambda d: d.message))
    rows += [["problem", p] for p in s.problems]
    return rows


def _print_snapshot(s: Any) -> None:
    from opskit.checks.procs import format_elapsed
    from opskit.cli import render

    render.print_table(["", ""], _summary_rows(s), title=s.host, show_header=False)
    if s.gpu.gpus:
        def na(v: Any, unit: str = "") -> str:
            return "-" if v is None else f"{v}{unit}"

        render.print_table(
            ["GPU", "NAME", "TEMP", "UTIL", "MEMORY", "POWER", "PROCESSES"],
            [[g["index"], g["name"], na(g["temperature.gpu"], "C"), na(g["utilization.gpu"], "%"),
              f"{na(g['memory.used'])} / {na(g['memory.total'])} MiB",
              f"{na(g['power.draw'], 'W')} / {na(g['enforced.power.limit'], 'W')}",
              " ".join(f"{p.username or '?'}:{p.command}/{p.pid}({na(p.used_memory, 'M')})"
                       for p in g.processes) or "-"] for g in s.gpu.gpus],
        )
    if s.top_processes is not None:
        render.print_table(
            ["PID", "USER", "%CPU", "%MEM", "ELAPSED", "COMMAND"],
            [[p.pid, p.user, f"{p.cpu_percent:.1f}", f"{p.mem_percent:.1f}",
              format_elapsed(p.elapsed), _short(p.command)] for p in s.top_processes],
            justify={c: "right" for c in ("PID", "%CPU", "%MEM", "ELAPSED")},
        )
    else:
        render.print_line(f"processes: unavailable: {s.section_errors['processes'].message}")
    render.print_line()


@click.command("status")
@common_options
@click.option("--html", "html_out", default=None, type=click.Path(dir_okay=False),
              help="Also write a page with a waffle chart of the GPUs (busy/idle/too hot/faulty).")
def status(hosts: tuple[str, ...], inventory: str | None, as_json: bool, html_out: str | None) -> int:
    """One snapshot per host: OS, load, memory, disks, GPUs, Docker.

    Each part is read on its own: one that fails on a sick host (a hung df, a GPU in a
    fault state, a ps without the needed options) shows its error in its place, every other
    part is still shown, and the exit code is 1. --json: section_errors {PART: {message,
    hint}} and problems [...] per host.
    """
    from opskit.checks.status import snapshot
    from opskit.cli import render

    group = _run(hosts, inventory, snapshot)
    if as_json:
        render.print_json(render.group_json(group, lambda v: v.to_dict()))
    else:
        for outcome in group:
            if outcome.ok:
                _print_snapshot(outcome.value)
    if html_out:  # opskit.reports.fleet: the waffle of GPUs
        from opskit.reports.fleet import write_status_html

        render.print_line(f"wrote {write_status_html(list(group), html_out)}", err=True)
    problems = any(not o.value.ok for o in group if o.ok)
    return _exit(group, problems)
