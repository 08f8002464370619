"""``opskit run-remote``: check -> image -> preflight -> ship -> start -> follow -> collect.

Nothing is shipped or started before the training options passed the entry's own parser
here, and nothing is started before preflight passed and the host's image ID equals ours.
Following the logs is only watching: Ctrl-C or a dropped connection leave the job running
(:class:`Detached` says how to reattach); when the job ends, the results are collected.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from opskit import events as ev
from opskit.errors import DockerUnavailable, HostError, JobError, OpskitError
from opskit.hosts.group import connect
from opskit.hosts.spec import HostSpec
from opskit.hosts.transport import Transport
from opskit.images import ship as shipmod
from opskit.jobs import collect as collectmod
from opskit.jobs import launch
from opskit.jobs.preflight import gather, preflight
from opskit.jobs.spec import JobSpec, validate_train_args
from opskit.jobs.store import RunStore, git_facts
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
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
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


def start_run(client: Any, spec: HostSpec, job: JobSpec, store: RunStore, opts: RunOptions) -> tuple[Transport, dict]:
    """Everything up to a started container. Returns the open transport and the run card."""
    emit = opts.emit
    parsed = validate_train_args(job.model, job.train_args)
    if store.exists(job.run_id):
        card = store.load(job.run_id)
        raise launch.already_exists(card.get("host", "?"), job.run_id, f"recorded in {store.card_path(job.run_id)}")
    job.image = resolve_image(client, job.image or None, opts.profile, emit)
    image = shipmod.local_image(client, job.image)
    transport = connect(spec)
    try:
        existing = launch.find_container(transport, job.run_id)
        if existing is not None:
            raise launch.already_exists(spec.name, job.run_id, existing.status)
        hp = shipmod.plan_host(transport, image)
        facts = gather(transport)  # one round trip: preflight facts + the status snapshot
        checks = preflight(facts, job.gpus, job.shm_size, hp.send_bytes)
        for c in checks:
            emit(ev.Check(spec.name, c.name, c.ok, c.detail))
        if hp.send:
            emit(ev.Step(spec.name, f"shipping {len(hp.send)} of {len(image.layers)} layers"))
        shipped = ship_with(client, transport, image, hp, emit)
        card = initial_card(job, spec, image, parsed)
        card["image"] = image_card(image, shipped)
        card["host_facts"] = facts.to_dict()
        card["host_snapshot"] = facts.snapshot.to_dict() if facts.snapshot else None
        card["preflight"] = [c.to_dict() for c in checks]
        store.save(job.run_id, card)
        try:
            launch.start_container(transport, job, facts, shipped.host_image_id or image.image_id)
        except Exception as exc:  # the card must not say "starting" for a run that never will
            store.update(job.run_id, state="not-started", error=str(exc))
            raise
        card = store.update(job.run_id, state="running", started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            host_home=facts.home)
        emit(ev.RunStarted(spec.name, job.run_id, job.container))
        return transport, card
    except BaseException:
        transport.close()
        raise


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


def follow(transport: Transport, run_id: str, emit: ev.EventFn) -> None:
    """Emit the run's output (LogLine events) until it ends. Ctrl-C / a dropped connection
    -> Detached."""
    try:
        for line in launch.stream_logs(transport, run_id, follow=True):
            emit(ev.LogLine(transport.host, run_id, line))
        if getattr(transport, "dead_reason", None):  # the liveness watch closed the connection
            raise Detached(transport.host, run_id, _lost(transport, ""), 1)
        running = launch.require_container(transport, run_id).status == "running"  # a fresh inspect
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


def finish(transport: Transport, run_id: str, store: RunStore, remove_remote: bool = False) -> RunOutcome:
    """After the run ended: record its state, collect and verify its results."""
    state = launch.wait_exit(transport, run_id)
    card = store.update(run_id, state=state.state, exit_code=state.exit_code, oom_killed=state.oom_killed,
                        finished=state.finished, duration=state.duration)
    res = collect_results(transport, run_id, store, card, remove_remote=remove_remote)
    return RunOutcome(run_id, transport.host, state.state, state.exit_code, state.oom_killed,
                      sorted(res.files), res.results_dir, res.not_collected)


def run_remote(client: Any, spec: HostSpec, job: JobSpec, store: RunStore, opts: RunOptions) -> RunOutcome | None:
    """The whole job. Returns None when detached (``--detach``)."""
    transport, _card = start_run(client, spec, job, store, opts)
    try:
        if opts.detach:
            return None
        follow(transport, job.run_id, opts.emit)
        try:
            return finish(transport, job.run_id, store, opts.remove_remote)
        except (HostError, OSError, EOFError) as exc:
            raise JobError(
                f"{spec.name}: run {job.run_id} ended but collecting failed: {exc}",
                f"collect again with 'opskit collect {job.run_id}' (it resumes)",
            ) from exc
    finally:
        transport.close()
