"""``opskit collect`` for a Slurm run: the run's folder home into ``runs/RUN/``, verified.

The folder is read from the shared folder through the login host, or node-local from the
batch host (rank 0's ``results/``) and each other node (its ``nodes/NODE/``). Each file is
hashed on its host, compared with the sha256 the job's sentinel recorded when the job ended (a
file changed since is not collected, and listed), copied over SFTP (resuming), hashed here
and only then put in place. The job's Slurm output file (``slurm-JOBID.out``) comes too, also
when the job failed before the training entry started, and the sentinel itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from opskit import atomic
from opskit.errors import HostError, JobError
from opskit.hosts.transport import Transport
from opskit.jobs import collect as collectmod
from opskit.jobs import hostfs
from opskit.jobs.slurm import remove as removemod
from opskit.jobs.slurm import sweep as sweepmod
from opskit.jobs.slurm.follow import SlurmRun, SlurmStatus
from opskit.jobs.slurm.parse import expand_hostlist
from opskit.jobs.slurm.sentinel import SENTINEL, Sentinel
from opskit.jobs.store import RunStore

_TOP = re.compile(r"^slurm-\d+\.out$")


def wanted(rel: str, only: str | None) -> bool:
    """The run folder's files that come home: results/, nodes/, the output file, the sentinel
    (``only``: just that node's folder)."""
    if only is not None:
        return rel.startswith(f"nodes/{only}/")
    return rel.startswith(("results/", "nodes/")) or rel == SENTINEL or bool(_TOP.match(rel))


def places(run: SlurmRun, st: SlurmStatus) -> list[tuple[str, str | None]]:
    """(host, only) pairs to read: the login host (shared), or the batch host then each other node."""
    if run.slurm.get("shared"):
        return [(str(run.slurm["login"]), None)]
    batch = run.files_host(run.last)
    nodes = expand_hostlist((st.sentinel.nodes if st.sentinel else "") or st.nodes or run.slurm.get("nodes", ""))
    return [(batch, None)] + [(n, n) for n in nodes if n != batch]


@dataclass
class SlurmCollect(collectmod.CollectResult):
    removed: list[str] = field(default_factory=list)  # --remove-remote: "HOST:RUN_DIR" removed there


def collect(run: SlurmRun, store: RunStore, limits: collectmod.Limits | None = None,
            remove_remote: bool = False) -> SlurmCollect:
    """The run's folder home; with ``remove_remote``, then removed from the cluster when all of
    it verifies here (:mod:`.remove`)."""
    st = run.status()
    if st.active:
        raise JobError(f"run {run.run_id} (Slurm job {run.job_id}) is still {st.state}; its results are not final",
                       f"wait for it ('opskit logs {run.run_id} -f') or stop it ('opskit cancel {run.run_id}')")
    limits = limits or collectmod.Limits.from_env()
    local = collectmod.LocalRun(store.path(run.run_id))
    res = SlurmCollect(run.run_id, run.slurm["login"], str(local.root), str(local.results))
    seen: set[str] = set()
    where = places(run, st)
    for host, only in where:
        try:
            seen |= collect_from(run.transport(host), run.run_dir, only, st.sentinel, local, limits, res)
        except (HostError, JobError) as exc:
            if only is None:
                raise
            res.miss(f"nodes/{only}/", f"node {host} could not be read ({getattr(exc, 'message', exc)})")
    for rel in sorted(set(st.sentinel.files if st.sentinel else {}) - seen):
        res.miss(rel, "listed in the job's sentinel but no longer in the run's folder")
    if st.sentinel and st.sentinel.unlisted:
        res.miss("(names)", f"{st.sentinel.unlisted} file(s) with a quote, backslash or control character in "
                            "their names: not in the sentinel, not collected, kept on the host")
    res.logs = any(_TOP.match(p) for p in res.files)
    with contextlib.suppress(OSError):  # kept only while it holds partial copies (as for SSH hosts)
        os.rmdir(local.root / collectmod.PARTIAL)
    nodes = (st.sentinel.nodes if st.sentinel else "") or st.nodes or str(run.slurm.get("nodes") or "")
    res.swept, res.sweep_unchecked = sweepmod.sweep(run, nodes)  # the job has ended: no container of it stays
    atomic.write_json(local.root / "manifest.json", {"host": res.host, "files": res.files,
                                                     "not_collected": res.not_collected})
    if remove_remote:
        gone = removemod.remove_remote(run, where, res, local)
        res.removed, res.kept_on_host, res.removed_remote = gone.removed, gone.kept, bool(gone.removed)
    record(store, run, st, res, where)
    return res


def collect_from(t: Transport, run_dir: str, only: str | None, sent: Sentinel | None,
                 local: collectmod.LocalRun, limits: collectmod.Limits, res: collectmod.CollectResult) -> set[str]:
    """One host's share of the run folder; the paths found there."""
    if t.stat(run_dir) is None:
        raise JobError(f"{t.host}: no run folder {run_dir}", "it was removed, or the job never started there")
    entries = [e for e in hostfs.list_run(t, run_dir) if wanted(e.path, only)]
    want = collectmod.plan_files(entries, limits, res)
    now = collectmod.hash_on_host(t, run_dir, want, limits, res)
    recorded = sent.files if sent else {}
    for rel, digest in sorted(now.items()):
        if rel in recorded and recorded[rel] != digest:
            res.miss(rel, f"changed on {t.host} since the job ended (now {digest[:12]}..., the sentinel says "
                          f"{recorded[rel][:12]}...): not collected, kept there")
            continue
        # the run folder's own layout under runs/RUN/
        collectmod.fetch_one(t, f"{run_dir}/{rel}", local, rel, digest, res, dest=local.root, host=t.host)
    return set(want)


def record(store: RunStore, run: SlurmRun, st: SlurmStatus, res: collectmod.CollectResult,
           where: list[tuple[str, str | None]]) -> None:
    if not store.exists(run.run_id):
        return
    store.update(run.run_id, state=st.state, exit_code=st.exit_code, swept=res.swept,
                 sweep_unchecked=res.sweep_unchecked, collected={
        "files": res.files, "verified": True, "not_collected": res.not_collected, "logs": res.logs,
        "from": sorted({h for h, _ in where}),  # places(): the login host (shared) or the nodes
        "sentinel": st.sentinel is not None, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **({"removed_remote": res.removed, "kept_on_cluster": res.kept_on_host}
           if isinstance(res, SlurmCollect) and (res.removed or res.kept_on_host) else {}),
    })


def output_tail(store: RunStore, run_id: str, job_id: str, lines: int = 15) -> list[str]:
    """The last lines of the collected Slurm output file (shown when the job failed)."""
    path = Path(store.path(run_id)) / f"slurm-{job_id}.out"
    if not path.is_file():
        return []
    return path.read_text(errors="replace").splitlines()[-lines:]
