"""``--remove-remote`` for a Slurm run (``collect`` and ``run-remote``): the run's folder on the
cluster goes, all of it, only once everything in it is home.

The folder is on the shared folder (removed through the login host) or node-local (removed on
every node that has it: the allocation's and the partition's others the image was shipped to,
where opskit made it empty). Nothing is removed anywhere unless the collect missed nothing and,
on every host, each file in the folder is either a file collected here whose copy still
verifies (sha256) or one of the job script's own records (``.exit-NODE``, ``.stopped-NODE``, the sentinel's temp
name). Otherwise everything stays, and why is said.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from opskit.errors import HostError, JobError
from opskit.jobs import collect as collectmod
from opskit.jobs import hostfs
from opskit.jobs.slurm.follow import SlurmRun
from opskit.jobs.slurm.sentinel import SENTINEL

_RECORDS = re.compile(r"^\.(exit|stopped)-[A-Za-z0-9._-]+$|^\." + re.escape(SENTINEL) + r"\.tmp$")


@dataclass
class Removal:
    removed: list[str] = field(default_factory=list)  # "HOST:RUN_DIR"
    kept: list[str] = field(default_factory=list)  # "HOST:RUN_DIR: why"


def removable(entries: list[hostfs.Entry], res: collectmod.CollectResult, local: collectmod.LocalRun) -> list[str]:
    """The entries that would be lost: neither collected and verified here nor the script's records."""
    lost = []
    for e in entries:
        digest = res.files.get(e.path)
        if _RECORDS.match(e.path) and e.kind == "f":
            continue
        if digest is None or e.kind != "f" or not local.verified(local.root, e.path, digest):
            lost.append(e.path)
    return lost


def hosts_of(run: SlurmRun, places: list[tuple[str, str | None]]) -> list[str]:
    """Every host that may hold the run's folder."""
    names = [h for h, _ in places]
    if not run.slurm.get("shared"):
        names += [n for n in run.slurm.get("candidates") or [] if n not in names]
    return names


def remove_remote(run: SlurmRun, places: list[tuple[str, str | None]], res: collectmod.CollectResult,
                  local: collectmod.LocalRun) -> Removal:
    out = Removal()
    hosts = hosts_of(run, places)
    if not res.complete:
        out.kept = [f"{h}:{run.run_dir}: {len(res.not_collected)} not collected here" for h in hosts]
        return out
    if SENTINEL not in res.files:
        out.kept = [f"{h}:{run.run_dir}: the job's sentinel was not collected" for h in hosts]
        return out
    present: list[str] = []
    for host in hosts:
        try:
            t = run.transport(host)
            if t.stat(run.run_dir) is None:
                continue
            lost = removable(hostfs.list_run(t, run.run_dir), res, local)
        except (HostError, JobError) as exc:
            out.kept.append(f"{host}:{run.run_dir}: could not be read ({getattr(exc, 'message', exc)})")
            continue
        if lost:
            out.kept.append(f"{host}:{run.run_dir}: {len(lost)} file(s) not collected here, e.g. {lost[0]}")
        else:
            present.append(host)
    if out.kept:  # all or nothing: a folder left anywhere keeps the others too
        out.kept += [f"{h}:{run.run_dir}: kept with the others" for h in present]
        return out
    for host in present:
        hostfs.remove_tree(run.transport(host), run.run_dir)
        out.removed.append(f"{host}:{run.run_dir}")
    return out
