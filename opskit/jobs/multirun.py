"""``opskit run-remote --nodes N``: one training job over several hosts, through the same phases.

- check, image: once, here (:class:`~opskit.jobs.runner.Runner`'s phases);
- preflight: every host in parallel (the single-host checks); the first N hosts that pass are
  the nodes, in the order given; fewer than N: nothing starts, each host's reason is named;
  the GPUs per node are settled (:func:`opskit.jobs.nodes.gpus_per_node`);
- ship: to every node in parallel, the loaded image proven on each;
- network: rank 0's address and port proved from every host (:mod:`opskit.jobs.netprobe`);
- start: one run card, one container per node (torchrun); one refusal removes the others;
- follow: every node's output with a ``host/rank`` prefix; the first node that ends badly (or
  whose host is lost) makes opskit stop the others (SIGTERM, then kill after a grace);
- collect: rank 0's results into ``runs/RUN/``, every other node's folder (its logs) into
  ``runs/RUN/nodes/HOST/``, each verified.
"""

from __future__ import annotations

import queue
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from opskit import events as ev
from opskit.errors import JobError
from opskit.hosts.group import connect as connect_host
from opskit.hosts.privatedirs import private_dirs
from opskit.hosts.spec import HostSpec
from opskit.hosts.transport import Transport
from opskit.jobs import collect as collectmod
from opskit.jobs import launch
from opskit.jobs.netprobe import DockerProber
from opskit.jobs.nodes import (
    DEFAULT_RDZV_PORT,
    RDZV_BACKEND,
    Iface,
    NodesPlan,
    check_nodes,
    choose_rdzv,
    gpus_per_node,
    plan_nodes,
)
from opskit.jobs.runner import Detached, HostRun, Runner, RunOptions, image_card, initial_card
from opskit.jobs.spec import HOST_RUNS_DIR, GpuRequest, JobSpec
from opskit.jobs.store import RunStore

NODES_DIR = "nodes"  # runs/RUN/nodes/HOST/: what the nodes other than rank 0 wrote (their logs)


@dataclass
class MultiOptions:
    nodes: int
    gpus_per_node: int | None = None
    rdzv_port: int = DEFAULT_RDZV_PORT
    grace: float = 10.0  # SIGTERM -> kill, for the nodes stopped because another one ended
    resume: Checkpoint | None = None  # rank 0's checkpoint of an earlier run, collected here


@dataclass(frozen=True)
class Checkpoint:
    """A verified local copy of an earlier run's ``checkpoints/last.pt`` (rank 0's)."""

    run_id: str
    path: str
    sha256: str


@dataclass
class NodeEnd:
    host: str
    rank: int
    state: str  # exited | failed | interrupted | oom-killed | lost
    exit_code: int | None
    detail: str = ""
    collected: list[str] = field(default_factory=list)
    local_dir: str = ""
    not_collected: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class MultiOutcome:
    run_id: str
    state: str
    nodes: list[NodeEnd]
    stopped_by: str = ""  # the node whose end stopped the others ("" when all ended on their own)

    @property
    def exit_code(self) -> int | None:
        return self.nodes[0].exit_code if self.nodes else None

    @property
    def ok(self) -> bool:
        return all(n.exit_code == 0 and not n.not_collected for n in self.nodes)

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "state": self.state, "host": self.nodes[0].host if self.nodes else "",
                "exit_code": self.exit_code, "stopped_by": self.stopped_by,
                "nodes": [n.to_dict() for n in self.nodes]}


def each(runs: list[HostRun], fn: Callable[[HostRun], Any]) -> dict[str, Exception]:
    """``fn`` on every host at once; the errors by host (none hides another)."""
    def one(run: HostRun) -> Exception | None:
        try:
            fn(run)
            return None
        except Exception as exc:  # noqa: BLE001 - reported per host by the caller
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(runs))) as pool:
        errors = list(pool.map(one, runs))
    return {r.host: e for r, e in zip(runs, errors, strict=True) if e is not None}


def refusal(what: str, errors: dict[str, Exception], hint: str) -> JobError:
    texts = {h: str(getattr(e, "message", None) or e) for h, e in errors.items()}
    lines = "\n  ".join(t if t.startswith(f"{h}:") else f"{h}: {t}" for h, t in texts.items())
    return JobError(f"{what}:\n  {lines}", hint)


class MultiRunner:
    """The phases of a multi-host job; the connection, engine and probe factories passed in."""

    def __init__(self, store: RunStore, opts: RunOptions | None = None, *,
                 connect: Callable[[HostSpec], Transport] = connect_host, engine: Callable[[], Any] | None = None,
                 prober: Callable[[dict, dict], Any] = DockerProber):
        self.base = Runner(store, opts, connect=connect, engine=engine)
        self.store, self.opts, self.prober = store, self.base.opts, prober
        self.resume: Checkpoint | None = None

    def run(self, specs: list[HostSpec], job: JobSpec, mopts: MultiOptions) -> MultiOutcome | None:
        """The whole job on ``mopts.nodes`` of ``specs``. None when detached (``--detach``)."""
        check_nodes(mopts.nodes, [s.name for s in specs])
        self.resume = mopts.resume
        if mopts.gpus_per_node is not None:
            job.gpus = GpuRequest("count", mopts.gpus_per_node) if mopts.gpus_per_node else GpuRequest("none")
        if mopts.resume is not None and not any(a == "--resume" or a.startswith("--resume=") for a in job.train_args):
            job.train_args = [*job.train_args, "--resume", "auto"]  # each rank: its node's /out/checkpoints
        runs = [HostRun(s, replace(job)) for s in specs]
        self.base.check(runs[0])
        self.base.image(runs[0])
        for r in runs[1:]:
            r.parsed, r.image, r.job.image = runs[0].parsed, runs[0].image, runs[0].job.image
        try:
            nodes = self.preflight(runs, mopts)
            self.ship(nodes)
            if mopts.resume is not None:
                self.seed(nodes, mopts.resume)
            plan = self.prove_network(nodes, mopts)
            self.start(nodes, plan)
            if self.opts.detach:
                return None
            outcome = self.follow(nodes, plan, mopts)
            return self.collect(nodes, outcome)
        finally:
            for r in runs:
                if r.transport is not None:
                    r.transport.close()

    # -- the phases ---------------------------------------------------------------------------
    def preflight(self, runs: list[HostRun], mopts: MultiOptions) -> list[HostRun]:
        """Every host's preflight; the first ``nodes`` that pass, their GPUs per node settled."""
        def one(run: HostRun) -> None:
            run.transport = self.base.connect(run.spec)
            self.base.preflight(run)

        errors = each(runs, one)
        passed = [r for r in runs if r.host not in errors]
        if len(passed) < mopts.nodes:
            raise refusal(f"{mopts.nodes} nodes asked for, {len(passed)} of {len(runs)} hosts passed preflight; "
                          "nothing was started", errors, "fix or replace the hosts named above")
        nodes = passed[: mopts.nodes]
        for r in errors:
            self.opts.emit(ev.Step(r, f"left out: {getattr(errors[r], 'message', errors[r])}"))
        per = gpus_per_node({r.host: len(r.facts.gpus) for r in nodes}, mopts.gpus_per_node)
        for r in nodes:
            r.job.gpus = GpuRequest("count", per[r.host]) if per[r.host] else GpuRequest("none")
        return nodes

    def ship(self, nodes: list[HostRun]) -> None:
        errors = each(nodes, self.base.ship)
        if errors:
            raise refusal("the image did not reach every node; nothing was started", errors,
                          "fix the host named above and run again (what arrived stays: it is not sent twice)")

    def seed(self, nodes: list[HostRun], ckpt: Checkpoint) -> None:
        """The earlier run's checkpoint into every node's run folder (every rank loads it),
        sha256-verified on each host: the same or other hosts than the earlier run's."""
        def one(r: HostRun) -> None:
            t, home = r.transport, r.facts.home
            rel = f"{HOST_RUNS_DIR}/{r.job.run_id}"
            private_dirs(t, home, [rel, f"{rel}/checkpoints"])
            dest = f"{home.rstrip('/')}/{rel}/checkpoints/last.pt"
            with open(ckpt.path, "rb") as src, t.open(dest + ".part", "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            t.rename(dest + ".part", dest)
            got = t.sha256(dest)
            if got != ckpt.sha256:
                raise JobError(f"{r.host}: the checkpoint arrived changed (sha256 {got[:12]}, sent {ckpt.sha256[:12]})")
            self.opts.emit(ev.Step(r.host, f"resumes from run {ckpt.run_id}'s checkpoint (sha256 {ckpt.sha256[:12]}, verified)"))

        errors = each(nodes, one)
        if errors:
            raise refusal("the checkpoint did not reach every node; nothing was started", errors,
                          "fix the host named above and run again")

    def prove_network(self, nodes: list[HostRun], mopts: MultiOptions) -> NodesPlan:
        """Rank 0's addresses, its rendezvous port bound there, each other node connecting to
        each address from its own host: the first address all reached is the rendezvous."""
        rank0, port, emit = nodes[0], mopts.rdzv_port, self.opts.emit
        prober = self.prober({r.host: host_image(r) for r in nodes},
                             {r.host: f"{r.facts.uid}:{r.facts.gid}" for r in nodes})
        t0 = self.base._transport(rank0)
        candidates: list[Iface] = []
        try:  # one probe container per host, all starting at once
            errors = each(nodes, lambda r: candidates.extend(prober.serve(t0, port)) if r is rank0
                          else prober.prepare(r.transport))
            if rank0.host in errors and isinstance(errors[rank0.host], JobError):
                raise errors[rank0.host]
            if errors:
                raise refusal("the network probes did not start; nothing was started", errors,
                              "check that each host's engine runs the job's image")
            usable = [c.addr for c in candidates if c.usable()]
            reach: dict[str, Any] = {}
            errors = each(nodes[1:], lambda r: reach.__setitem__(r.host, prober.reach(r.transport, port, usable)))
        finally:
            each(nodes, lambda r: prober.stop(t0 if r is rank0 else r.transport))
        if errors:
            raise refusal("the reachability probes failed; nothing was started", errors,
                          "check that each host's engine runs the job's image")
        rdzv = choose_rdzv(rank0.host, candidates, [reach[r.host] for r in nodes[1:]])
        per = {r.host: r.job.gpus.count for r in nodes}
        plan = plan_nodes(rank0.job.run_id, [r.host for r in nodes], per, rdzv, port,
                          [reach[r.host] for r in nodes[1:]])
        emit(ev.Step(rank0.host, f"rank 0: rendezvous at {plan.endpoint} ({rdzv.name}), port free there"))
        for node in plan.nodes[1:]:
            emit(ev.Step(node.host, f"reaches {plan.endpoint} by {node.iface.name} ({node.iface.addr})"))
        emit(ev.Step(rank0.host, f"torchrun: --nnodes {len(nodes)} --rdzv-backend {RDZV_BACKEND} --rdzv-id {plan.run_id} "
                                 f"--rdzv-conf {plan.conf_text()} (world size {plan.world_size})"))
        return plan

    def start(self, nodes: list[HostRun], plan: NodesPlan) -> None:
        """One run card, then every node's container at once; one refusal removes the rest."""
        rank0, run_id = nodes[0], nodes[0].job.run_id
        assert rank0.image is not None
        card = initial_card(rank0.job, rank0.spec, rank0.image, rank0.parsed)
        card["image"] = image_card(rank0.image, rank0.shipped)
        card["nodes"] = plan.to_dict()
        card["hosts"] = [r.host for r in nodes]
        card["host_homes"] = {r.host: r.facts.home for r in nodes}
        card["host_facts"] = {r.host: r.facts.to_dict() for r in nodes}
        card["preflight"] = {r.host: [c.to_dict() for c in r.checks] for r in nodes}
        card["node_states"] = {r.host: "starting" for r in nodes}
        if self.resume is not None:
            card["resumed_from"] = {"run_id": self.resume.run_id, "sha256": self.resume.sha256}
        self.store.save(run_id, card)
        for r, node in zip(nodes, plan.nodes, strict=True):
            r.job = replace(r.job, node=plan.launch(node))
        errors = each(nodes, lambda r: setattr(r, "container", launch.start_container(
            r.transport, r.job, r.facts, host_image(r))))
        if errors:
            each([r for r in nodes if r.container is not None], lambda r: r.container.remove(force=True))
            self.store.update(run_id, state="not-started", node_states={r.host: "not-started" for r in nodes},
                              error="; ".join(f"{h}: {e}" for h, e in errors.items()))
            raise refusal("a node did not start; the others were removed", errors, "fix the host named above")
        self.store.update(run_id, state="running", started=_now(), host_home=rank0.facts.home,
                          node_states={r.host: "running" for r in nodes})
        for r in nodes:
            self.opts.emit(ev.RunStarted(r.host, run_id, r.job.container))

    def follow(self, nodes: list[HostRun], plan: NodesPlan, mopts: MultiOptions) -> MultiOutcome:
        """Every node's output until all ended; the first bad end stops the others."""
        conns = [NodeConn(r.host, n.rank, f"{r.host}/{plan.ranks(n)}", r.transport, r.container, r.job.run_id)
                 for r, n in zip(nodes, plan.nodes, strict=True)]
        return follow_nodes(conns, self.opts.emit, mopts.grace)

    def collect(self, nodes: list[HostRun], outcome: MultiOutcome) -> MultiOutcome:
        """Rank 0's results into runs/RUN/, the others' folders into runs/RUN/nodes/HOST/."""
        homes = {r.host: r.facts.home for r in nodes}
        collect_nodes(self.store, outcome, {r.host: r.transport for r in nodes}, homes, self.opts.remove_remote)
        return outcome


def collect_nodes(store: RunStore, outcome: MultiOutcome, transports: dict[str, Any], homes: dict[str, str],
                  remove_remote: bool = False) -> MultiOutcome:
    """Every node's folder home at once, verified: rank 0's into runs/RUN/ (its results), each
    other node's into runs/RUN/nodes/HOST/ (its output); the card records each node's end."""
    run_id = outcome.run_id

    def one(end: NodeEnd) -> None:
        dest = store.path(run_id) if end.rank == 0 else store.path(run_id) / NODES_DIR / end.host
        res = collectmod.collect(transports[end.host], run_id, homes[end.host], dest, remove_remote=remove_remote)
        end.collected, end.local_dir, end.not_collected = sorted(res.files), res.results_dir, res.not_collected

    with ThreadPoolExecutor(max_workers=max(1, len(outcome.nodes))) as pool:
        failures = list(pool.map(lambda e: _error_of(one, e), outcome.nodes))
    for end, exc in zip(outcome.nodes, failures, strict=True):
        if exc is not None:
            end.not_collected.append({"path": "(all)", "reason": f"collect failed: {getattr(exc, 'message', exc)}"})
    store.update(run_id, state=outcome.state, exit_code=outcome.exit_code, stopped_by=outcome.stopped_by,
                 node_states={e.host: e.state for e in outcome.nodes}, node_ends=[e.to_dict() for e in outcome.nodes],
                 collected={"verified": not any(failures), "at": _now(),
                            "nodes": {e.host: {"files": e.collected, "local_dir": e.local_dir,
                                               "not_collected": e.not_collected} for e in outcome.nodes}})
    return outcome


def _error_of(fn: Callable[[Any], Any], arg: Any) -> Exception | None:
    try:
        fn(arg)
        return None
    except Exception as exc:  # noqa: BLE001 - reported per node by the caller
        return exc


@dataclass
class NodeConn:
    """One node of a started job, as followed: its connection and container."""

    host: str
    rank: int
    label: str  # the prefix of its lines: host/rankN (or host/ranksA-B)
    transport: Any
    container: Any
    run_id: str


def follow_nodes(conns: list[NodeConn], emit: ev.EventFn, grace: float) -> MultiOutcome:
    """Every node's output (``host/rank`` prefix) until all ended. The first node that ends
    badly, or whose host is lost, makes the others stop: SIGTERM (rank 0 checkpoints), then a
    kill after ``grace`` seconds. Ctrl-C: :class:`Detached` (the job goes on)."""
    ends: queue.Queue[NodeEnd] = queue.Queue()
    for c in conns:
        threading.Thread(target=watch, args=(c, emit, ends), daemon=True).start()
    got: dict[str, NodeEnd] = {}
    stopped_by = ""
    while len(got) < len(conns):
        try:
            end = ends.get(timeout=0.5)
        except queue.Empty:
            continue
        except KeyboardInterrupt:
            raise Detached(conns[0].host, conns[0].run_id, "stopped following (Ctrl-C)", 130) from None
        got[end.host] = end
        if end.exit_code != 0 and not stopped_by:
            stopped_by = end.host
            rest = [c for c in conns if c.host not in got]
            emit(ev.Step(end.host, f"node {end.rank} {end.state} ({end.detail or f'exit {end.exit_code}'}): "
                                   f"stopping {len(rest)} other node(s) (SIGTERM, kill after {grace:.0f}s)"))
            threading.Thread(target=stop_nodes, args=(rest, grace), daemon=True).start()
    ordered = [got[c.host] for c in conns]
    state = "exited" if all(e.exit_code == 0 for e in ordered) else ("interrupted" if stopped_by else "failed")
    return MultiOutcome(conns[0].run_id, state, ordered, stopped_by)


def stop_nodes(conns: list[NodeConn], grace: float) -> dict[str, Exception]:
    """SIGTERM to every node's container at once, a kill after ``grace``; errors by host."""
    def one(c: NodeConn) -> Exception | None:
        try:
            c.container.stop(timeout=int(max(1, grace)))
            return None
        except Exception as exc:  # noqa: BLE001 - a lost host is reported, the others still stop
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(conns))) as pool:
        errors = list(pool.map(one, conns))
    return {c.host: e for c, e in zip(conns, errors, strict=True) if e is not None}


def watch(c: NodeConn, emit: ev.EventFn, ends: queue.Queue) -> None:
    """Follow one node's output, then put its end (or its loss) on ``ends``."""
    try:
        for line in launch.stream_logs(c.transport, c.run_id, follow=True, container=c.container):
            emit(ev.LogLine(c.label, c.run_id, line))
        if getattr(c.transport, "dead_reason", None):
            raise JobError(f"lost the connection ({c.transport.dead_reason})")
        state = launch.wait_exit(c.transport, c.run_id, timeout=60, container=c.container)
        ends.put(NodeEnd(c.host, c.rank, state.state, state.exit_code))
    except Exception as exc:  # noqa: BLE001 - a lost host is a node's end, reported as such
        ends.put(NodeEnd(c.host, c.rank, "lost", None, f"host lost: {getattr(exc, 'message', None) or exc}"))


def host_image(run: HostRun) -> str:
    """The image's ID on that host's engine (differs from ours across image stores)."""
    assert run.image is not None
    return (run.shipped.host_image_id if run.shipped else None) or run.image.image_id


def _now() -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
