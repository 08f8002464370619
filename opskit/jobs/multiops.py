"""The commands on a multi-host run after its start, from its run card: ``logs`` (every node,
``host/rank`` prefix), ``cancel`` (every node at once: SIGTERM first, so that rank 0
checkpoints), ``collect`` (rank 0's results and every node's output, verified).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opskit import events as ev
from opskit.hosts.spec import HostSpec
from opskit.hosts.transport import Transport
from opskit.jobs import launch
from opskit.jobs.multirun import (
    Checkpoint,
    MultiOutcome,
    NodeConn,
    NodeEnd,
    collect_nodes,
    follow_nodes,
)
from opskit.jobs.operations import SavedOutput, show_saved
from opskit.jobs.store import RunStore


def open_nodes(run_id: str, hosts: Sequence[str], inventory: str | None, store: RunStore,
               connect: Callable[[HostSpec], Transport] | None = None) -> Nodes | None:
    """The nodes of a multi-host run recorded in ``store`` (None for a single-host run, an
    unknown one, or when ``hosts`` names hosts explicitly)."""
    from opskit.jobs.operations import resolve
    from opskit.jobs.spec import check_run_id

    if hosts or not store.exists(check_run_id(run_id)):
        return None
    card = store.load(run_id)
    if not is_multi(card):
        return None
    if connect is None:
        from opskit.hosts.group import connect
    return Nodes(card, resolve([n["host"] for n in node_list(card)], inventory), connect)


def is_multi(card: dict | None) -> bool:
    return bool(card and (card.get("nodes") or {}).get("nodes"))


def node_list(card: dict) -> list[dict]:
    return list(card["nodes"]["nodes"])


def label(card: dict, node: dict) -> str:
    """``host/rankN`` (or ``host/ranksA-B``) for a node of the card, as the run printed it."""
    nodes = node_list(card)
    first = sum(int(n["nproc_per_node"]) for n in nodes[: int(node["rank"])])
    nproc = int(node["nproc_per_node"])
    return f"{node['host']}/" + (f"rank{first}" if nproc == 1 else f"ranks{first}-{first + nproc - 1}")


class Nodes:
    """One connection per node of a recorded multi-host run (closed on exit)."""

    def __init__(self, card: dict, specs: list[HostSpec], connect: Callable[[HostSpec], Transport]):
        self.card = card
        self.run_id = card["run_id"]
        by_name = {s.name: s for s in specs}
        self.transports = {n["host"]: connect(by_name[n["host"]]) for n in node_list(card)}
        self._found: dict[str, Any] | None = None

    def __enter__(self) -> Nodes:
        return self

    def __exit__(self, *exc: object) -> None:
        for t in self.transports.values():
            t.close()

    def containers(self) -> dict[str, Any]:
        """Each node's container (None: gone), or the OpskitError its host answered; looked up
        once for this command (``logs -f`` asks whether one is gone, then follows them)."""
        from opskit.errors import OpskitError

        if self._found is None:
            found: dict[str, Any] = {}
            for host, t in self.transports.items():
                try:
                    found[host] = launch.find_container(t, self.run_id)
                except OpskitError as exc:
                    found[host] = exc
            self._found = found
        return self._found

    def _why_not(self, host: str) -> Exception | None:
        """Why ``host``'s container cannot be read (None: it can)."""
        c = self.containers()[host]
        if c is None:
            return launch.no_container(host, self.run_id)
        return c if isinstance(c, Exception) else None

    def conns(self) -> list[NodeConn]:
        conns = []
        for n in node_list(self.card):
            host = n["host"]
            why = self._why_not(host)
            if why is not None:
                raise why
            conns.append(NodeConn(host, int(n["rank"]), label(self.card, n), self.transports[host],
                                  self.containers()[host], self.run_id))
        return conns

    def print_logs(self, emit: ev.EventFn, store: RunStore | None = None,
                   on_saved: Callable[[SavedOutput], None] | None = None) -> None:
        """Every node's output so far, node by node; a node whose container is gone (or whose
        host cannot be reached) from the copy collect saved here (``on_saved`` told first)."""
        for n in node_list(self.card):
            host, name = n["host"], label(self.card, n)
            why = self._why_not(host)
            if why is None:
                for line in launch.stream_logs(self.transports[host], self.run_id, follow=False,
                                               container=self.containers()[host]):
                    emit(ev.LogLine(name, self.run_id, line))
            elif store is None:
                raise why
            else:
                print_saved(store, self.card, [n], why, emit, on_saved)

    def gone(self) -> bool:
        """Whether some node's container is gone (or its host cannot be reached)."""
        return any(self._why_not(host) is not None for host in self.transports)

    def follow(self, emit: ev.EventFn, grace: float = 10.0) -> MultiOutcome:
        return follow_nodes(self.conns(), emit, grace)

    def cancel(self, store: RunStore, grace: float) -> list[launch.JobState]:
        """SIGTERM to every node at once (then a kill after ``grace``); the card records each."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(self.transports)) as pool:
            states = list(pool.map(lambda t: launch.cancel(t, self.run_id, grace), self.transports.values()))
        if store.exists(self.run_id):
            store.update(self.run_id, state="interrupted" if any(s.exit_code for s in states) else "exited",
                         node_states={s.host: s.state for s in states})
        return states

    def collect(self, store: RunStore, remove_remote: bool = False) -> MultiOutcome:
        ends = []
        for n in node_list(self.card):
            container = launch.find_container(self.transports[n["host"]], self.run_id)
            state = launch.job_state(container, n["host"]) if container is not None else None
            ends.append(NodeEnd(n["host"], int(n["rank"]), state.state if state else "gone",
                                state.exit_code if state else None))
        outcome = MultiOutcome(self.run_id, self.card.get("state") or "exited", ends, self.card.get("stopped_by", ""))
        if any(e.state == "running" for e in ends):
            outcome.state = "running"
        homes = self.card.get("host_homes") or {}
        return collect_nodes(store, outcome, self.transports, homes, remove_remote)


def checkpoint_of(store: RunStore, run_id: str) -> Checkpoint:
    """Rank 0's ``checkpoints/last.pt`` of ``run_id`` as collected here, checked against the
    collect's manifest (sha256): what ``run-remote --resume RUN`` continues from."""
    import json

    from opskit.atomic import sha256_file
    from opskit.errors import JobError

    store.load(run_id)  # an unknown run is named with the recent ones
    path = store.path(run_id) / "results" / "checkpoints" / "last.pt"
    manifest = store.path(run_id) / "manifest.json"
    files = json.loads(manifest.read_text()).get("files", {}) if manifest.is_file() else {}
    digest = files.get("checkpoints/last.pt")
    if not path.is_file() or not digest:
        raise JobError(f"run {run_id} has no collected checkpoint here ({path})",
                       f"collect it first: 'opskit collect {run_id}' (after it ended or 'opskit cancel {run_id}')")
    got = sha256_file(path)
    if got != digest:
        raise JobError(f"{path} changed since it was collected (sha256 {got[:12]}, manifest {digest[:12]})",
                       f"collect it again: 'opskit collect {run_id}'")
    return Checkpoint(run_id, str(path), digest)


def saved_log(store: RunStore, card: dict, node: dict) -> Path:
    """Where collect saved a node's output: rank 0's in runs/RUN/, the others' in runs/RUN/nodes/HOST/."""
    from opskit.jobs.hostfs import LOGS
    from opskit.jobs.multirun import NODES_DIR

    root = store.path(card["run_id"])
    return root / LOGS if int(node["rank"]) == 0 else root / NODES_DIR / node["host"] / LOGS


def print_saved(store: RunStore, card: dict, nodes: list[dict], why: Exception, emit: ev.EventFn,
                on_saved: Callable[[SavedOutput], None] | None) -> None:
    """The saved output of ``nodes`` (``why``: the live one cannot be read); raise ``why``,
    with a hint, for a node whose output was never saved here."""
    for n in nodes:
        end = {e.get("host"): e for e in card.get("node_ends") or []}.get(n["host"], {})
        saved = SavedOutput(card["run_id"], label(card, n), str(saved_log(store, card, n)),
                            str(getattr(why, "message", why)), (card.get("collected") or {}).get("at"),
                            end.get("state"), end.get("exit_code"))
        show_saved(saved, why, emit, on_saved, f"{n['host']}'s output", "the containers exist")
