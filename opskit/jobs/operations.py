"""The job commands below the CLI: ``jobs``, ``logs``, ``cancel``, ``collect`` as operations.

Each takes names and options, opens what it needs (the local store of runs, one connection to
the run's host), returns data and closes what it opened; output lines travel as events
(:mod:`opskit.events`). None prints: ``opskit.cli.jobs`` parses, calls one, renders, and a
playbook can call the same. ``run-remote`` is :class:`opskit.jobs.runner.Runner`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opskit import events as ev
from opskit.hosts.group import GroupResult
from opskit.hosts.spec import HostSpec
from opskit.hosts.transport import Transport
from opskit.jobs import launch, runner
from opskit.jobs.collect import CollectResult
from opskit.jobs.store import RunStore
from opskit.jobs.store import runs_dir as default_runs_dir


def open_store(runs_dir: str | None = None) -> RunStore:
    """The local store of runs (``--runs-dir``, else the ``runs_dir`` setting)."""
    return RunStore(default_runs_dir(runs_dir))


def resolve(names: Sequence[str], inventory: str | None) -> list[HostSpec]:
    """Host names and @groups -> HostSpecs (no network). Default: this machine."""
    from opskit.hosts.inventory import load_inventory

    return load_inventory(inventory).expand(list(names) or ["localhost"])


def list_jobs(hosts: Sequence[str], inventory: str | None, store: RunStore) -> GroupResult | None:
    """Runs on ``hosts`` (default: the hosts of the runs recorded in ``store``); None when
    there is no host to ask."""
    from opskit.hosts.group import run_on_hosts

    cards = [] if hosts else [c for c in store.list_cards() if c.get("scheduler") != "slurm"]  # Slurm: scontrol
    names = list(hosts) or sorted({h for c in cards for h in (c.get("hosts") or [c.get("host")]) if h})
    if not names:
        return None
    return run_on_hosts(resolve(names, inventory), launch.list_jobs)


Connect = Callable[[HostSpec], Transport]


def open_run(run_id: str, hosts: Sequence[str], inventory: str | None, store: RunStore,
             connect: Connect | None = None) -> tuple[Transport, dict | None]:
    """A connection to the run's host (``hosts[0]``, else the host its card names) and its
    card (None for a run recorded elsewhere). ``connect``: the factory (default SSH/local)."""
    from opskit.jobs.spec import check_run_id

    if connect is None:
        from opskit.hosts.group import connect
    check_run_id(run_id)
    card = store.load(run_id) if (not hosts or store.exists(run_id)) else None
    names = list(hosts) or [card["host"]]  # type: ignore[index]
    return connect(resolve(names, inventory)[0]), card


def run_output(run_id: str, *, hosts: Sequence[str], inventory: str | None, store: RunStore,
               follow: bool, emit: ev.EventFn, connect: Connect | None = None) -> launch.JobState | None:
    """The run's output as LogLine events, from the start. ``follow``: until it ends (the
    run's state is returned; a dropped connection raises runner.Detached)."""
    transport, _ = open_run(run_id, hosts, inventory, store, connect)
    try:
        if not follow:
            for line in launch.stream_logs(transport, run_id, follow=False):
                emit(ev.LogLine(transport.host, run_id, line))
            return None
        runner.follow(transport, run_id, emit)
        return launch.wait_exit(transport, run_id, timeout=60)
    finally:
        transport.close()


def cancel_run(run_id: str, *, hosts: Sequence[str], inventory: str | None, store: RunStore,
               grace: float, connect: Connect | None = None) -> launch.JobState:
    """SIGTERM, then kill after ``grace`` seconds; the new state is recorded in the card."""
    transport, card = open_run(run_id, hosts, inventory, store, connect)
    try:
        state = launch.cancel(transport, run_id, grace)
    finally:
        transport.close()
    if card is not None:
        store.update(run_id, state=state.state, exit_code=state.exit_code, oom_killed=state.oom_killed)
    return state


def collect_run(run_id: str, *, hosts: Sequence[str], inventory: str | None, store: RunStore,
                remove_remote: bool = False, connect: Connect | None = None) -> CollectResult:
    """Bring the run's results home, verified, and record that (with its state) in the card."""
    transport, card = open_run(run_id, hosts, inventory, store, connect)
    try:
        container = launch.find_container(transport, run_id)
        state: Any = launch.job_state(container, transport.host) if container is not None else None
        return runner.collect_results(transport, run_id, store, card, state=state,
                                      remove_remote=remove_remote)
    finally:
        transport.close()
