"""``opskit run-remote --scheduler slurm``: the phases of a job handed to Slurm.

check, image (here, as for SSH hosts) -> login (Slurm's commands there; ``sbatch --test-only``:
Slurm's own refusal of a partition, GRES, node count or time, before anything is shipped) ->
nodes (the partition's, from ``sinfo``) -> ship (the image to every responding node's engine,
only the layers it lacks; SSH host = Slurm NodeName, the ssh config says how it is reached) ->
submit (the rendered script on ``sbatch --parsable``'s stdin; the run card records job ID,
partition, nodes and the script) -> follow (:mod:`.follow`) -> collect (:mod:`.fetch`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opskit import events as ev
from opskit.errors import JobError
from opskit.hosts.group import connect as connect_host
from opskit.hosts.privatedirs import private_dirs
from opskit.hosts.spec import HostSpec
from opskit.hosts.transport import Transport
from opskit.images import ship as shipmod
from opskit.jobs.multirun import each, refusal
from opskit.jobs.runner import HostRun, Runner, RunOptions, image_card, initial_card, ship_with
from opskit.jobs.slurm import cluster
from opskit.jobs.slurm.parse import SlurmNode, partition_nodes
from opskit.jobs.slurm.script import DEFAULT_PORT, SbatchSpec, render
from opskit.jobs.spec import HOST_RUNS_DIR, JobSpec
from opskit.jobs.store import RunStore

SCRIPT = "job.sbatch"  # runs/RUN/job.sbatch: the script as submitted
SHARED_RUNS = "opskit/runs"  # under --shared-dir


@dataclass
class SlurmOptions:
    nodes: int = 1
    gpus_per_node: int = 0
    partition: str | None = None
    time: str | None = None
    shared_dir: str | None = None  # a folder every node and the login host see at the same path
    port: int = DEFAULT_PORT
    grace: int = 30
    plan_only: bool = False
    poll: float = 2.0


@dataclass
class Submitted:
    run_id: str
    login: str
    job_id: str
    partition: str
    run_dir: str
    shared: bool
    script: str
    candidates: list[str] = field(default_factory=list)  # the partition's nodes the image reached

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "script"}


def run_dir_for(opts: SlurmOptions, home: str, run_id: str) -> str:
    if opts.shared_dir:
        return f"{opts.shared_dir.rstrip('/')}/{SHARED_RUNS}/{run_id}"
    return f"{home.rstrip('/')}/{HOST_RUNS_DIR}/{run_id}"


class SlurmRunner:
    """The phases; the connection factory (SSH by NodeName) and this machine's engine passed in."""

    def __init__(self, store: RunStore, opts: RunOptions | None = None, *,
                 connect: Callable[[HostSpec], Transport] = connect_host, engine: Callable[[], Any] | None = None,
                 resolve: Callable[[list[str]], list[HostSpec]] | None = None):
        self.base = Runner(store, opts, connect=connect, engine=engine)
        self.store, self.opts, self.connect = store, self.base.opts, connect
        if resolve is None:
            from opskit.jobs.slurm.ops import resolver

            resolve = resolver(None)
        self.resolve = resolve

    def submit(self, login: HostSpec, job: JobSpec, sopts: SlurmOptions) -> Submitted | str:
        """Everything up to the job ID (or the script, with ``plan_only``)."""
        run = HostRun(login, job)
        self.base.check(run)
        self.base.image(run)
        assert run.image is not None
        t = self.connect(login)
        try:
            cluster.require_slurm(t)
            home = shipmod.remote_home(t)
            spec = self.spec(job, sopts, run_dir_for(sopts, home, job.run_id), {}, run.image.image_id)
            if sopts.shared_dir:
                refuse_existing(t, spec.run_dir, job.run_id)
            said = cluster.test_only(t, spec.sbatch_options())
            self.opts.emit(ev.Step(login.name, f"sbatch --test-only: Slurm accepts the job{accepted(said)}"))
            partition, nodes = partition_nodes(cluster.nodes(t), sopts.partition)
            spec.partition = partition
            if sopts.plan_only:
                spec.plan = True
                return render(spec)
            reached = self.ship(run, nodes, sopts, spec.run_dir)
            if sopts.shared_dir:
                make_run_dir(t, spec.run_dir)
            script, job_id = self.send(t, run, spec, nodes, reached)
        finally:
            t.close()
        sub = Submitted(job.run_id, login.name, job_id, partition, spec.run_dir, bool(sopts.shared_dir), script,
                        [r.host for r in reached])
        self.store.update(job.run_id, state="pending", slurm={**sub.to_dict(), "script_file": SCRIPT,
                                                                "gpus_per_node": sopts.gpus_per_node})
        self.opts.emit(ev.Step(login.name, f"submitted: Slurm job {job_id} (partition {partition}, "
                                           f"{sopts.nodes} node(s)); run {job.run_id}"))
        return sub

    def send(self, t: Transport, run: HostRun, spec: SbatchSpec, nodes: list[SlurmNode],
             reached: list[HostRun]) -> tuple[str, str]:
        """The script with each node's image ID, recorded, then submitted: (script, job ID).
        Slurm is told to leave out the partition's nodes the image did not reach."""
        spec.image_ids = {r.host: _host_image(r) for r in reached}
        left_out = sorted({n.name for n in nodes} - set(spec.image_ids))
        if left_out:
            spec.extra_sbatch.append(f"--exclude={','.join(left_out)}")
            self.opts.emit(ev.Step(t.host, f"--exclude {','.join(left_out)}: the image is not on them"))
        script = render(spec)
        self.record(run, spec, reached, script)
        try:
            job_id, _ = cluster.submit(t, script)
        except Exception as exc:  # the card must not say "starting" for a job Slurm never took
            self.store.update(run.job.run_id, state="not-started", error=str(getattr(exc, "message", exc)))
            raise
        return script, job_id

    def spec(self, job: JobSpec, sopts: SlurmOptions, run_dir: str, ids: dict[str, str], default: str) -> SbatchSpec:
        return SbatchSpec(job.run_id, job.model, list(job.train_args), run_dir, sopts.nodes, ids, default,
                          sopts.gpus_per_node, sopts.partition, sopts.time, job.shm_size, job.memory,
                          sopts.port, sopts.grace)

    def ship(self, run: HostRun, nodes: list[SlurmNode], sopts: SlurmOptions, run_dir: str) -> list[HostRun]:
        """The image to every responding node of the partition (in parallel); node-local
        results: the run's folder made on each. Fewer than ``--nodes`` reached: nothing submitted."""
        up = [n.name for n in nodes if n.responding]
        for n in nodes:
            if not n.responding:
                self.opts.emit(ev.Step(n.name, f"left out: Slurm says {n.state}{n.flags} (not responding)"))
        runs = [HostRun(s, run.job, parsed=run.parsed, image=run.image) for s in self.resolve(up)]

        def one(r: HostRun) -> None:
            r.transport = self.connect(r.spec)
            assert r.image is not None
            if not sopts.shared_dir:
                refuse_existing(r.transport, run_dir, r.job.run_id)
            r.plan = shipmod.plan_host(r.transport, r.image)
            if r.plan.send:
                self.opts.emit(ev.Step(r.host, f"shipping {len(r.plan.send)} of {len(r.image.layers)} layers"))
            r.shipped = ship_with(self.base.engine, r.transport, r.image, r.plan, self.opts.emit)
            if not sopts.shared_dir:
                home = shipmod.remote_home(r.transport)
                if run_dir != run_dir_for(sopts, home, r.job.run_id):
                    raise JobError(f"{r.host}: home {home} differs from the login host's; node-local results "
                                   f"need the same path ({run_dir}) on every node", "give --shared-dir")
                private_dirs(r.transport, home, [f"{HOST_RUNS_DIR}/{r.job.run_id}"])

        try:
            errors = each(runs, one)
        finally:
            for r in runs:
                if r.transport is not None:
                    r.transport.close()
        reached = [r for r in runs if r.host not in errors]
        for h, e in errors.items():
            self.opts.emit(ev.Step(h, f"left out: {getattr(e, 'message', e)}"))
        if len(reached) < sopts.nodes:
            raise refusal(f"{sopts.nodes} node(s) asked for, the image reached {len(reached)} of the "
                          f"partition's {len(nodes)}; nothing was submitted", errors or
                          {n.name: JobError(f"{n.state}{n.flags}") for n in nodes if not n.responding},
                          "fix the nodes named above (ssh NODE must reach them: the ssh config decides how)")
        return reached

    def record(self, run: HostRun, spec: SbatchSpec, reached: list[HostRun], script: str) -> None:
        """The script in runs/RUN/job.sbatch and the run card, before submission."""
        assert run.image is not None
        card = initial_card(run.job, run.spec, run.image, run.parsed)
        card["image"] = image_card(run.image, reached[0].shipped if reached else None)
        card["image"]["node_ids"] = spec.image_ids
        card["scheduler"] = "slurm"
        self.store.save(run.job.run_id, card)
        (self.store.path(run.job.run_id) / SCRIPT).write_text(script)


def refuse_existing(t: Transport, run_dir: str, run_id: str) -> None:
    """A run ID starts one job: its folder must not be there yet (results would mix)."""
    if t.stat(run_dir) is not None:
        from opskit.jobs.launch import already_exists

        raise already_exists(t.host, run_id, f"its folder {run_dir} is there")


def accepted(said: str) -> str:
    """What ``sbatch --test-only`` says it would use (``using 2 processors on nodes n[1-2] in
    partition gpu``), without its start-time estimate (far in the future when the nodes are busy)."""
    m = re.search(r"\busing (.*)$", said.strip().splitlines()[-1]) if said.strip() else None
    return f" ({m.group(1)})" if m else ""


def make_run_dir(t: Transport, path: str) -> None:
    """The run's folder on the shared folder: 0700, the folders above it as the umask says."""
    res = t.run(["sh", "-c", 'mkdir -p -- "$(dirname -- "$1")" && mkdir -p -m 700 -- "$1"', "sh", path])
    if res.exit_code != 0:
        raise JobError(f"{t.host}: cannot make {path}: {res.stderr.strip()}",
                       "give --shared-dir a folder the login user may write, seen by every node at that path")


def _host_image(r: HostRun) -> str:
    assert r.image is not None
    return (r.shipped.host_image_id if r.shipped else None) or r.image.image_id

