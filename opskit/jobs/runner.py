"""``opskit run-remote`` in phases: check -> image -> preflight -> ship -> start -> follow -> collect.

:class:`Runner` runs one job on one host over ONE connection to it, made by the ``connect``
factory it is given (``opskit.hosts.group.connect`` by default); the local engine comes from
the ``engine`` factory (``local_docker_client``). Unit tests pass a FakeTransport and a fake
engine (:mod:`opskit.testing.fakehost`); a job over several hosts is several :class:`HostRun`
through the same phases.

- check: the training options pass the entry's own parser here, the run ID is free here;
- image: ``--image`` as given or the default training image built here, inspected;
- preflight: the run ID is free on the host, the host's facts (one round trip) pass;
- ship: the layers the host lacks travel, the loaded image is proven there;
- start: the run card is written, the container starts (a refusal is recorded);
- follow: its output is emitted until it ends (Ctrl-C or a dropped connection: :class:`Detached`,
  the job goes on);
- collect: its state is recorded and its results come home, verified.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opskit import events as ev
from opskit.errors import DockerUnavailable, HostError, JobError, OpskitError
from opskit.hosts.group import connect as connect_host
from opskit.hosts.spec import HostSpec
from opskit.hosts.transport import Transport
from opskit.images import ship as shipmod
from opskit.jobs import collect as collectmod
from opskit.jobs import launch
from opskit.jobs.preflight import gather, preflight
from opskit.jobs.spec import JobSpec, validate_train_args
from opskit.jobs.store import RunStore, git_facts, redact_snapshot
from opskit.project.card import project_stamp


class Detached(OpskitError):
    """We stopped watching (Ctrl-C, or the connection dropped); the job goes on."""

    def __init__(self, host: str, run_id: str, why: str, exit_code: int):
        super().__init__(
            f"{host}: {why}; run {run_id} goes on there",
            f"reattach with 'opskit logs {run_id} -f'; when it ends, 'opskit collect {run_id}'",
        )
        self.exit_code = exit_code
        self.run_id = run_id
        self.host = host


@dataclass
class RunOptions:
    detach: bool = False
    # Every step, build event, preflight check, byte shipped and log line, as typed events
    # (opskit.events); the CLI renders them. The runner never prints.
    emit: ev.EventFn = ev.ignore
    remove_remote: bool = False
    profile: str = "offline"


@dataclass
class RunOutcome:
    run_id: str
    host: str
    state: str
    exit_code: int | None
    oom_killed: bool
    collected: list[str] = field(default_factory=list)
    local_dir: str = ""
    not_collected: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def resolve_image(client: Any, ref: str | None, profile: str, emit: ev.EventFn) -> str:
    """``--image`` as given, or the default training image (built or reused here; its build
    events go to ``emit``)."""
    if ref:
        return ref
    from opskit.images.build import BuildRequest, build_image

    emit(ev.Step("localhost", f"building the default training image (profile {profile})"))
    result = build_image(BuildRequest(profile=profile), client=client, on_event=emit)
    return result.tag


def initial_card(job: JobSpec, spec: HostSpec, image: shipmod.LocalImage, parsed: dict) -> dict:
    return {
        "run_id": job.run_id,
        "host": spec.name,
        "container": job.container,
        "model": job.model,
        "args": list(job.train_args),
        "parsed_args": parsed,
        "seed": parsed.get("seed"),
        "image": image_card(image),
        "git": git_facts(),
        "project": project_stamp(),  # the project card (hash) the run is made under
        "job": job.to_dict(),
        "state": "starting",
        "created": _now(),
    }


def image_card(image: shipmod.LocalImage, shipped: shipmod.ShipResult | None = None) -> dict:
    """The image in a run card, with each ID named: IDs differ by image store (the legacy
    store's is the config digest, the containerd store's the manifest or index digest)."""
    card = {"ref": image.ref, "id": image.image_id, "id_is": f"the image ID on this machine's engine ({image.store} store)",
            "config_digest": image.config_digest, "tags": list(image.repo_tags), "layers": list(image.diff_ids)}
    if shipped is not None:
        card["host_id"] = shipped.host_image_id
        card["host_store"] = shipped.store
        card["host_id_is"] = f"the image ID on the host's engine ({shipped.store or 'unknown'} store)"
        card["shipped"] = {"mode": shipped.mode, "layers_sent": shipped.layers_sent, "wire_bytes": shipped.wire_bytes,
                           "fallback": shipped.fallback}
    return card


def ship_with(client: Any, transport: Transport, image: shipmod.LocalImage, hp: shipmod.HostPlan,
              emit: ev.EventFn) -> shipmod.ShipResult:
    """Ship over an open transport (one host), loaded image proven there; the bytes sent go
    to ``emit`` between TransferStarted and TransferDone. The result has the image's ID on
    the host (it differs from ours when the stores differ)."""
    import shutil
    import tempfile

    if hp.local or hp.image_present:
        return shipmod.ship_one(transport, image, hp, None, shipmod.ShipOptions())
    spool = tempfile.mkdtemp(prefix="opskit-ship-")
    try:
        saved = shipmod.save_wanted(client, image, [hp], spool)
        what = f"shipping {image.ref}"
        emit(ev.TransferStarted(transport.host, what))
        try:
            ship_opts = shipmod.ShipOptions(progress=lambda host, n: emit(ev.BytesSent(host, n)),
                                            on_event=lambda host, m: emit(ev.Step(host, m)))
            return shipmod.ship_one(transport, image, hp, saved[hp.codec], ship_opts)
        finally:
            emit(ev.TransferDone(transport.host, what))
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def follow(transport: Transport, run_id: str, emit: ev.EventFn, *, container: Any = None) -> None:
    """Emit the run's output (LogLine events) until it ends (``container``: the run's, when
    the caller has it: no lookup). Ctrl-C / a dropped connection -> Detached."""
    try:
        for line in launch.stream_logs(transport, run_id, follow=True, container=container):
            emit(ev.LogLine(transport.host, run_id, line))
        if getattr(transport, "dead_reason", None):  # the liveness watch closed the connection
            raise Detached(transport.host, run_id, _lost(transport, ""), 1)
        running = _fresh_status(transport, run_id, container) == "running"
    except KeyboardInterrupt:
        raise Detached(transport.host, run_id, "stopped following (Ctrl-C)", 130) from None
    except (HostError, DockerUnavailable) as exc:  # the SSH connection or the engine let go
        raise Detached(transport.host, run_id, _lost(transport, exc.message), 1) from exc
    except OpskitError:
        raise
    except Exception as exc:  # the connection dropped under the log stream
        raise Detached(transport.host, run_id, _lost(transport, type(exc).__name__), 1) from exc
    if running:  # the log stream ended early: the engine or the connection let go
        raise Detached(transport.host, run_id, _lost(transport, "the log stream ended"), 1)


def _lost(transport: Transport, detail: str) -> str:
    dead = getattr(transport, "dead_reason", None)  # a frozen host, noticed by the keepalives
    return f"lost the connection while following ({dead or detail})"


def _fresh_status(transport: Transport, run_id: str, container: Any) -> str:
    """The container's status now (one inspect)."""
    if container is None:
        return launch.require_container(transport, run_id).status
    container.reload()
    return container.status


def collect_results(
    transport: Transport, run_id: str, store: RunStore, card: dict | None, *,
    state: Any = None, remove_remote: bool = False,
) -> collectmod.CollectResult:
    """Collect and verify a run's results into the store and record that (and ``state``, a
    ``launch.JobState``, when known) in its card; a card is made for a run started elsewhere."""
    home = (card or {}).get("host_home") or shipmod.remote_home(transport)
    res = collectmod.collect(transport, run_id, home, store.path(run_id), remove_remote=remove_remote)
    record: dict[str, Any] = {"collected": {
        "files": res.files, "verified": True, "removed_remote": res.removed_remote,
        "not_collected": res.not_collected, "kept_on_host": res.kept_on_host, "logs": res.logs,
        "results_dir": collectmod.RESULTS, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }}
    if state is not None:
        record.update(state=state.state, exit_code=state.exit_code, oom_killed=state.oom_killed)
    if card is None:
        store.save(run_id, {"run_id": run_id, "host": transport.host, "host_home": home, **record})
    else:
        store.update(run_id, **record)
    return res


PHASES = ("check", "image", "preflight", "ship", "start", "follow", "collect")


@dataclass
class HostRun:
    """One job on one host, filled phase by phase; ``transport`` is the one connection."""

    spec: HostSpec
    job: JobSpec
    transport: Transport | None = None
    parsed: dict = field(default_factory=dict)  # the training options, as the entry reads them
    image: shipmod.LocalImage | None = None
    plan: shipmod.HostPlan | None = None
    facts: Any = None  # opskit.checks.facts.HostFacts
    checks: list = field(default_factory=list)
    shipped: shipmod.ShipResult | None = None
    container: Any = None

    @property
    def host(self) -> str:
        return self.spec.name


class Runner:
    """The phases of a job, with the connection and engine factories passed in."""

    def __init__(
        self, store: RunStore, opts: RunOptions | None = None, *,
        connect: Callable[[HostSpec], Transport] = connect_host,
        engine: Callable[[], Any] | None = None,
    ):
        self.store = store
        self.opts = opts or RunOptions()
        self.connect = connect
        self._engine_factory = engine
        self._engine: Any = None

    @property
    def engine(self) -> Any:
        """This machine's engine, made on first use."""
        if self._engine is None:
            if self._engine_factory is None:
                from opskit.hosts.engine import local_docker_client

                self._engine_factory = local_docker_client
            self._engine = self._engine_factory()
        return self._engine

    def run(self, spec: HostSpec, job: JobSpec) -> RunOutcome | None:
        """The whole job on one host. Returns None when detached (``--detach``)."""
        run = HostRun(spec, job)
        self.check(run)
        self.image(run)
        run.transport = self.connect(spec)
        try:
            self.preflight(run)
            self.ship(run)
            self.start(run)
            if self.opts.detach:
                return None
            self.follow(run)
            return self.collect(run)
        finally:
            run.transport.close()

    # -- the phases ---------------------------------------------------------------------------
    def check(self, run: HostRun) -> None:
        """Nothing leaves this machine before the options parse and the run ID is free here."""
        run.parsed = validate_train_args(run.job.model, run.job.train_args)
        project_stamp()  # a broken project card in opskit.yaml stops here, before anything ships
        if self.store.exists(run.job.run_id):
            card = self.store.load(run.job.run_id)
            raise launch.already_exists(card.get("host", "?"), run.job.run_id,
                                        f"recorded in {self.store.card_path(run.job.run_id)}")

    def image(self, run: HostRun) -> None:
        run.job.image = resolve_image(self.engine, run.job.image or None, self.opts.profile,
                                      self.opts.emit)
        run.image = shipmod.local_image(self.engine, run.job.image)

    def preflight(self, run: HostRun) -> None:
        """The run ID is free on the host, and the host's facts (one round trip) pass."""
        t, emit = self._transport(run), self.opts.emit
        existing = launch.find_container(t, run.job.run_id)
        if existing is not None:
            raise launch.already_exists(run.host, run.job.run_id, existing.status)
        assert run.image is not None
        run.plan = shipmod.plan_host(t, run.image, lambda host, m: emit(ev.Step(host, m)))
        run.facts = gather(t)  # one round trip: preflight facts + the status snapshot
        run.checks = preflight(run.facts, run.job.gpus, run.job.shm_size, run.plan.send_bytes)
        for c in run.checks:
            emit(ev.Check(run.host, c.name, c.ok, c.detail))

    def ship(self, run: HostRun) -> None:
        assert run.image is not None and run.plan is not None
        if run.plan.send:
            self.opts.emit(ev.Step(run.host, f"shipping {len(run.plan.send)} of "
                                             f"{len(run.image.layers)} layers"))
        run.shipped = ship_with(self.engine, self._transport(run), run.image, run.plan,
                                self.opts.emit)

    def start(self, run: HostRun) -> None:
        """Write the run card, then start the container; a refusal is recorded in the card."""
        job, t = run.job, self._transport(run)
        assert run.image is not None and run.facts is not None
        card = initial_card(job, run.spec, run.image, run.parsed)
        card["image"] = image_card(run.image, run.shipped)
        card["host_facts"] = run.facts.to_dict()
        card["host_snapshot"] = redact_snapshot(run.facts.snapshot.to_dict() if run.facts.snapshot else None)
        card["preflight"] = [c.to_dict() for c in run.checks]
        self.store.save(job.run_id, card)
        image_id = (run.shipped.host_image_id if run.shipped else None) or run.image.image_id
        try:
            run.container = launch.start_container(t, job, run.facts, image_id)
        except Exception as exc:  # the card must not say "starting" for a run that never will
            self.store.update(job.run_id, state="not-started", error=str(exc))
            raise
        self.store.update(job.run_id, state="running", started=_now(), host_home=run.facts.home)
        self.opts.emit(ev.RunStarted(run.host, job.run_id, job.container))

    def follow(self, run: HostRun) -> None:
        follow(self._transport(run), run.job.run_id, self.opts.emit, container=run.container)

    def collect(self, run: HostRun) -> RunOutcome:
        """After the run ended: record its state, collect and verify its results."""
        t, run_id = self._transport(run), run.job.run_id
        try:
            state = launch.wait_exit(t, run_id, container=run.container)
            card = self.store.update(run_id, state=state.state, exit_code=state.exit_code,
                                     oom_killed=state.oom_killed, finished=state.finished,
                                     duration=state.duration)
            res = collect_results(t, run_id, self.store, card, remove_remote=self.opts.remove_remote)
        except (HostError, OSError, EOFError) as exc:
            raise JobError(
                f"{run.host}: run {run_id} ended but collecting failed: {exc}",
                f"collect again with 'opskit collect {run_id}' (it resumes)",
            ) from exc
        return RunOutcome(run_id, t.host, state.state, state.exit_code, state.oom_killed,
                          sorted(res.files), res.results_dir, res.not_collected)

    @staticmethod
    def _transport(run: HostRun) -> Transport:
        if run.transport is None:
            raise RuntimeError(f"{run.host}: no connection yet (phases run in order: {PHASES})")
        return run.transport


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def run_remote(client: Any, spec: HostSpec, job: JobSpec, store: RunStore, opts: RunOptions) -> RunOutcome | None:
    """The whole job with this machine's engine ``client`` and a fresh SSH connection."""
    return Runner(store, opts, engine=lambda: client).run(spec, job)
