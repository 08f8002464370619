"""The commands on Slurm runs recorded here (``jobs``, ``logs``, ``cancel``, ``collect``): each
opens what it needs from the run card (the login host's connection; node-local results: the
nodes'), returns data and closes what it opened. Nothing prints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opskit import events as ev
from opskit.hosts.spec import HostSpec
from opskit.hosts.transport import Transport
from opskit.jobs.collect import CollectResult
from opskit.jobs.slurm import cluster
from opskit.jobs.slurm import fetch as fetchmod
from opskit.jobs.slurm import follow as followmod
from opskit.jobs.slurm import sweep as sweepmod
from opskit.jobs.slurm.follow import SlurmRun, SlurmStatus, is_slurm
from opskit.jobs.store import RunStore

Connect = Callable[[HostSpec], Transport]


def resolver(inventory: str | None) -> Callable[[list[str]], list[HostSpec]]:
    def resolve(names: list[str]) -> list[HostSpec]:
        from opskit.jobs.operations import resolve as resolve_names

        return resolve_names(names, inventory) if names else []

    return resolve


def open_run(run_id: str, inventory: str | None, store: RunStore, connect: Connect | None = None) -> SlurmRun | None:
    """The recorded Slurm run ``run_id`` (None when the run is not one, or not recorded here)."""
    from opskit.jobs.spec import check_run_id

    if not store.exists(check_run_id(run_id)):
        return None
    card = store.load(run_id)
    if not is_slurm(card):
        return None
    if connect is None:
        from opskit.hosts.group import connect
    return SlurmRun(card, connect, resolver(inventory), local=store.path(run_id))


def slurm_cards(store: RunStore) -> list[dict]:
    return [c for c in store.list_cards() if is_slurm(c)]


def statuses(cards: Sequence[dict], inventory: str | None, connect: Connect | None = None,
             resolve: Callable[[list[str]], list[HostSpec]] | None = None,
             store: RunStore | None = None) -> tuple[list[SlurmStatus], dict[str, str]]:
    """Every recorded Slurm run's status: one ``scontrol -o show job`` per login host, the
    sentinel for the jobs Slurm has forgotten. Errors by login host (the others still answer)."""
    if connect is None:
        from opskit.hosts.group import connect
    out: list[SlurmStatus] = []
    errors: dict[str, str] = {}
    by_login: dict[str, list[dict]] = {}
    for c in cards:
        by_login.setdefault(c["slurm"]["login"], []).append(c)
    for login, mine in by_login.items():
        shared: dict[str, Transport] = {}  # one connection to the login host (and nodes) for all
        runs = [SlurmRun(c, connect, resolve or resolver(inventory), shared,
                         store.path(c["run_id"]) if store is not None else None) for c in mine]
        try:
            known = cluster.jobs(runs[0].login)
            for run in runs:
                out.append(status_with(run, run.mine(known.get(run.job_id))))
        except Exception as exc:  # noqa: BLE001 - one login host's failure is reported, the others listed
            errors[login] = str(getattr(exc, "message", None) or exc)
        finally:
            runs[0].close()
    return out, errors


def status_with(run: SlurmRun, job: Any) -> SlurmStatus:
    """The run's status from an already fetched job (None: Slurm forgot it: the sentinel),
    without asking scontrol about it again."""
    if job is not None:
        run.last = job
    return run.status_of(job)


def logs(run: SlurmRun, store: RunStore, emit: ev.EventFn, follow: bool, poll: float = 2.0) -> SlurmStatus | None:
    with run:
        if not follow:
            followmod.print_output(run, emit)
            return None
        return followmod.follow(run, store, emit, poll)


def cancel(run: SlurmRun, store: RunStore, grace: float) -> SlurmStatus:
    """SIGTERM (the entry checkpoints), scancel after ``grace``; once Slurm has ended the job,
    the run's containers left on its nodes are removed (said in the status' detail)."""
    with run:
        st = followmod.cancel(run, store, grace)
        if not st.active:
            swept = sweepmod.said(*sweepmod.sweep(run, st.nodes or str(run.slurm.get("nodes") or "")))
            st.detail = "; ".join(x for x in (st.detail, swept) if x)
        return st


def collect(run: SlurmRun, store: RunStore, remove_remote: bool = False) -> CollectResult:
    with run:
        return fetchmod.collect(run, store, remove_remote=remove_remote)
