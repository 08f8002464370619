"""The job commands below the CLI: ``jobs``, ``logs``, ``cancel``, ``collect`` as operations.

Each takes names and options, opens what it needs (the local store of runs, one connection to
the run's host), returns data and closes what it opened; output lines travel as events
(:mod:`opskit.events`). None prints: ``opskit.cli.jobs`` parses, calls one, renders, and a
playbook can call the same. ``run-remote`` is :class:`opskit.jobs.runner.Runner`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from opskit import events as ev
from opskit.hosts.group import GroupResult
from opskit.hosts.spec import HostSpec
from opskit.hosts.transport import Transport
from opskit.jobs import launch, runner
from opskit.jobs.collect import CollectResult
from opskit.jobs.store import RunStore
from opskit.jobs.store import runs_dir as default_runs_dir

Connect = Callable[[HostSpec], Transport]


def open_store(runs_dir: str | None = None) -> RunStore:
    """The local store of runs (``--runs-dir``, else the ``runs_dir`` setting)."""
    return RunStore(default_runs_dir(runs_dir))


def resolve(names: Sequence[str], inventory: str | None) -> list[HostSpec]:
    """Host names and @groups -> HostSpecs (no network). Default: this machine."""
    from opskit.hosts.inventory import load_inventory

    return load_inventory(inventory).expand(list(names) or ["localhost"])


def list_jobs(hosts: Sequence[str], inventory: str | None, store: RunStore,
              connect: Connect | None = None) -> GroupResult | None:
    """Runs on ``hosts`` (default: the hosts of the runs recorded in ``store``); None when
    there is no host to ask. A host named only by a run card that this inventory/ssh config
    does not know (a lab taken down, another inventory) is that host's error, not the whole
    command's: the other hosts are still asked."""
    from opskit.hosts.group import HostOutcome, run_on_hosts
    from opskit.hosts.group import connect as default_connect
    from opskit.jobs.store import card_hosts

    def ask(specs: Sequence[HostSpec]) -> GroupResult:
        return run_on_hosts(specs, launch.list_jobs, transport_factory=connect or default_connect)

    if hosts:  # named by the user: a bad name is a usage error, as everywhere
        return ask(resolve(hosts, inventory))
    cards = [c for c in store.list_cards() if c.get("scheduler") != "slurm"]  # Slurm: scontrol
    by_host: dict[str, list[str]] = {}
    for c in cards:
        for h in card_hosts(c):
            by_host.setdefault(h, []).append(str(c.get("run_id")))
    if not by_host:
        return None
    specs, errors = resolve_recorded(by_host, inventory)
    asked = dict(zip(specs, ask(list(specs.values())), strict=True)) if specs else {}
    return GroupResult([asked[n] if n in asked else HostOutcome(n, error=errors[n]) for n in sorted(by_host)])


def resolve_recorded(by_host: dict[str, list[str]], inventory: str | None
                     ) -> tuple[dict[str, HostSpec], dict[str, BaseException]]:
    """Host names taken from run cards (name -> the runs naming it) -> specs, and for each
    name that cannot be resolved here, its error (naming the runs that recorded it)."""
    from opskit.errors import OpskitError, UsageError
    from opskit.hosts.inventory import load_inventory

    inv = load_inventory(inventory)
    specs: dict[str, HostSpec] = {}
    errors: dict[str, BaseException] = {}
    for name in sorted(by_host):
        try:
            specs[name] = inv.resolve(name)
        except OpskitError as exc:
            runs = by_host[name]
            shown = ", ".join(runs[:3]) + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
            errors[name] = UsageError(
                f"{exc.message} (recorded by run {shown} in the local store)",
                (exc.hint + "; " if exc.hint else "") + "that host's runs are not listed; the other hosts' are",
            )
    return specs, errors


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


@dataclass
class SavedOutput:
    """The copy of a run's output that ``collect`` saved here (``runs/RUN/logs.txt``), shown
    when the run's container or host cannot be reached any more (``why``)."""

    run_id: str
    host: str
    path: str
    why: str
    collected_at: str | None
    state: str | None
    exit_code: int | None

    def to_dict(self) -> dict:
        return {"event": "saved_output", **asdict(self)}


def run_output(run_id: str, *, hosts: Sequence[str], inventory: str | None, store: RunStore,
               follow: bool, emit: ev.EventFn, connect: Connect | None = None,
               on_saved: Callable[[SavedOutput], None] | None = None) -> launch.JobState | None:
    """The run's output as LogLine events, from the start. ``follow``: until it ends (the
    run's state is returned; a dropped connection raises runner.Detached). A run recorded here
    whose container or host is gone (removed by ``collect --remove-remote``, a host no longer
    in the config) is shown from the copy collect saved, ``on_saved`` told first."""
    from opskit.errors import OpskitError
    from opskit.jobs.spec import check_run_id

    recorded = not hosts and store.exists(check_run_id(run_id))
    try:
        transport, _ = open_run(run_id, hosts, inventory, store, connect)
        try:
            container = launch.find_container(transport, run_id) if recorded else None
        except OpskitError:
            transport.close()
            raise
    except OpskitError as exc:  # unknown host, refused, unreachable
        if not recorded:
            raise
        return _saved(store, run_id, exc, emit, on_saved)
    try:
        if recorded and container is None:
            return _saved(store, run_id, launch.no_container(transport.host, run_id), emit, on_saved)
        if not follow:
            for line in launch.stream_logs(transport, run_id, follow=False, container=container):
                emit(ev.LogLine(transport.host, run_id, line))
            return None
        runner.follow(transport, run_id, emit)
        return launch.wait_exit(transport, run_id, timeout=60)
    finally:
        transport.close()


def _saved(store: RunStore, run_id: str, exc: Any, emit: ev.EventFn,
           on_saved: Callable[[SavedOutput], None] | None) -> None:
    """Emit the saved copy of the output, or raise ``exc`` with a hint when there is none."""
    from opskit.jobs.hostfs import LOGS

    card = store.load(run_id)
    saved = SavedOutput(run_id, str(card.get("host") or "?"), str(store.path(run_id) / LOGS),
                        str(getattr(exc, "message", exc)), (card.get("collected") or {}).get("at"),
                        card.get("state"), card.get("exit_code"))
    show_saved(saved, exc, emit, on_saved, "the output", "the run's container still exists")


def show_saved(saved: SavedOutput, exc: Exception, emit: ev.EventFn,
               on_saved: Callable[[SavedOutput], None] | None, whose: str, until: str) -> None:
    """``saved``'s lines as LogLine events, ``on_saved`` told first; when collect never saved
    that file, ``exc`` (why the live output cannot be read) raised with a hint on making one."""
    path = Path(saved.path)
    if not path.is_file():
        if hasattr(exc, "hint"):
            exc.hint = (f"{exc.hint}; " if exc.hint else "") + (  # type: ignore[attr-defined]
                f"no saved copy of {whose} here either ({path}): 'opskit collect {saved.run_id}' saves it "
                f"while {until}")
        raise exc
    if on_saved is not None:
        on_saved(saved)
    emit_file(path, saved.host, saved.run_id, emit)


def emit_file(path: Path, host: str, run_id: str, emit: ev.EventFn) -> None:
    """A saved output file's lines as LogLine events (as the live output is shown)."""
    with path.open("rb") as f:
        for raw in f:
            emit(ev.LogLine(host, run_id, raw.decode("utf-8", "replace").rstrip("\n").rstrip("\r")))


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
