"""Image and run steps: ``ship`` (only the layers a host lacks), ``cancel`` and ``collect``
of a run. Each asks first: an image already on the host is ``ok``, a run already stopped is
``ok``, a collect whose files are all here and verified copies nothing.
"""

from __future__ import annotations

from typing import Any

from opskit.errors import OpskitError
from opskit.playbooks.actionbase import (
    CHANGED,
    FAILED,
    OK,
    Action,
    HostContext,
    Outcome,
    bad,
    mapping_args,
    names_or_template,
)

SHIP_EXAMPLE = "{image: 'opskit/train:latest'}  or  {images: [opskit-base:bookworm, ...]}"


def _check_ship(args: Any, where: str) -> dict:
    if isinstance(args, str):
        args = {"image": args}
    args = mapping_args(args, where, "ship", required=(), optional=("image", "images"),
                        example=SHIP_EXAMPLE)
    if ("image" in args) == ("images" in args):
        raise bad(where, "ship", "give image: or images:", SHIP_EXAMPLE)
    if not names_or_template(args.get("images", [args.get("image")])):
        raise bad(where, "ship", "images must be image references", SHIP_EXAMPLE)
    return args


def _images(args: dict) -> list[str]:
    images = args["images"] if "images" in args else [args["image"]]
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list) or not all(isinstance(i, str) and i for i in images):
        raise ValueError(f"ship: {images!r} is not a list of image references")
    return images


def _ship(ctx: HostContext, args: dict) -> Outcome:
    out = _ship_group([(ctx, args)])[0]
    if isinstance(out, BaseException):
        raise out
    return out


def _ship_group(members: list[tuple[HostContext, Any]]) -> list[Any]:
    """Every image to every host of ``members`` (same args): one ship per image for all of
    them, so each image's layers are read once however many hosts get them."""
    from opskit.hosts.engine import local_docker_client

    ctxs = [c for c, _ in members]
    try:
        images = _images(members[0][1])
    except ValueError as exc:
        return [exc] * len(ctxs)
    per_host: list[list[Any]] = [[] for _ in ctxs]
    client = local_docker_client() if images else None
    for image in images:
        try:
            results = _ship_one(client, image, ctxs)
        except (OpskitError, OSError) as exc:  # this machine's side: every host fails alike
            results = [exc] * len(ctxs)
        for got, r in zip(per_host, results, strict=True):
            got.append(r)
    return [_combine(got) for got in per_host]


def _ship_one(client: Any, image: str, ctxs: list[HostContext]) -> list[Any]:
    from opskit.images import ship as shipmod

    specs = [c.spec for c in ctxs]
    if ctxs[0].check:
        _img, plans = shipmod.plan_only(image, client, specs)
        return [o.error or _plan_outcome(image, o.value) for o in plans.outcomes]
    result = shipmod.ship(client, image, specs)
    return [o.error or _shipped(image, o.value) for o in result.outcomes]


def _plan_outcome(image: str, plan: Any) -> Outcome:
    if plan.local or plan.image_present:
        return Outcome(OK, f"{image}: nothing to send ({plan.reason})")
    return Outcome(CHANGED, f"would ship {image}: {len(plan.send)} layer(s), {plan.send_bytes} bytes "
                   f"({plan.reason})", {"layers": len(plan.send)})


def _shipped(image: str, r: Any) -> Outcome:
    status = OK if r.mode in ("none", "local") else CHANGED
    return Outcome(status, f"{image}: {r.mode}, {r.layers_sent} layer(s), {r.wire_bytes} bytes on "
                   f"the wire ({r.reason})", r.to_dict())


def _combine(results: list[Any]) -> Any:
    """One host's outcomes of several images: the first error, else one Outcome."""
    for r in results:
        if isinstance(r, BaseException):
            return r
    if len(results) == 1:
        return results[0]
    status = CHANGED if any(r.status == CHANGED for r in results) else OK
    return Outcome(status, "; ".join(r.message for r in results), {"images": [r.data for r in results]})


def _check_run_ref(action: str) -> Any:
    def check(args: Any, where: str) -> dict:
        if isinstance(args, str):
            args = {"run_id": args}
        optional = ("grace",) if action == "cancel" else ("remove_remote",)
        return mapping_args(args, where, action, required=("run_id",), optional=optional,
                            example="{run_id: '{{ started.run_id }}'}")
    return check


def _store() -> Any:
    """This machine's run store (where run-remote, cancel and collect keep run cards)."""
    from opskit.jobs.store import RunStore, runs_dir

    return RunStore(runs_dir(None))


def _cancel(ctx: HostContext, args: dict) -> Outcome:
    from opskit.jobs import launch
    from opskit.jobs.spec import check_run_id

    run_id = check_run_id(str(args["run_id"]))
    container = launch.require_container(ctx.transport, run_id)
    if container.status != "running":
        return Outcome(OK, f"run {run_id} is already {container.status}", {"state": container.status})
    if ctx.check:
        return Outcome(CHANGED, f"would stop run {run_id} (SIGTERM, then kill after the grace period)")
    state = launch.cancel(ctx.transport, run_id, float(args.get("grace", 30)))
    store = _store()
    if store.exists(run_id):  # as opskit cancel does: the card says how the run ended
        store.update(run_id, state=state.state, exit_code=state.exit_code, oom_killed=state.oom_killed)
    return Outcome(CHANGED, f"run {run_id}: {state.state} (exit {state.exit_code})", state.to_dict())


def _collect(ctx: HostContext, args: dict) -> Outcome:
    from opskit.jobs import launch, runner
    from opskit.jobs.spec import check_run_id

    run_id = str(args["run_id"])
    check_run_id(run_id)
    store = _store()
    card = store.load(run_id) if store.exists(run_id) else None
    if ctx.check:
        return Outcome(CHANGED, f"would collect run {run_id} into {store.path(run_id)}")
    container = launch.find_container(ctx.transport, run_id)
    state = launch.job_state(container, ctx.host) if container is not None else None
    res = runner.collect_results(ctx.transport, run_id, store, card, state=state,
                                 remove_remote=bool(args.get("remove_remote")))
    status = CHANGED if res.copied else OK
    if not res.complete:
        return Outcome("failed", f"run {run_id}: not all files collected", res.to_dict())
    return Outcome(status, f"run {run_id}: {len(res.copied)} copied, {len(res.already_here)} "
                   f"already here", res.to_dict())


RUN_KEYS = ("args", "image", "gpus", "run_id", "detach", "shm_size", "memory", "profile",
            "remove_remote")
RUN_EXAMPLE = "{model: lenet, args: [--epochs, '1'], run_id: 'sweep-{{ host }}', gpus: all}"


def _check_run(args: Any, where: str) -> dict:
    args = mapping_args(args, where, "run", required=("model",), optional=RUN_KEYS, example=RUN_EXAMPLE)
    targs = args.get("args", [])
    if not (isinstance(targs, str) and "{{" in targs) and not (
            isinstance(targs, list) and all(isinstance(a, (str, int, float)) and not isinstance(a, bool)
                                            for a in targs)):
        raise bad(where, "run", "args must be a list of words (the training entry's options)", RUN_EXAMPLE)
    return args


def _job(args: dict) -> Any:
    from opskit.jobs.spec import (
        DEFAULT_SHM,
        JobSpec,
        check_run_id,
        new_run_id,
        parse_gpus,
        parse_size,
    )

    targs = args.get("args") or []
    if not isinstance(targs, list):
        raise ValueError(f"run: args {targs!r} is not a list")
    model = str(args["model"])
    return JobSpec(
        run_id=check_run_id(str(args["run_id"])) if args.get("run_id") else new_run_id(model),
        model=model, train_args=[str(a) for a in targs], image=str(args.get("image") or ""),
        gpus=parse_gpus(str(args.get("gpus", "auto"))),
        shm_size=parse_size(str(args["shm_size"]), "shm_size") if args.get("shm_size") else DEFAULT_SHM,
        memory=parse_size(str(args["memory"]), "memory") if args.get("memory") else None,
    )


def _run(ctx: HostContext, args: dict) -> Outcome:
    """run-remote on this host. With a run_id, a run already finished and collected here is
    ``ok`` (a second play changes nothing); without one each play starts a new run."""
    from opskit.jobs import runner

    job = _job(args)
    store = _store()
    if store.exists(job.run_id):  # never started twice: a second play changes nothing
        card = store.load(job.run_id)
        if card.get("collected"):
            return Outcome(OK, f"run {job.run_id} already ran ({card.get('state')}, exit "
                           f"{card.get('exit_code')}) and was collected", {"run_id": job.run_id})
        if card.get("started"):
            return Outcome(OK, f"run {job.run_id} was already started ({card.get('state') or 'running'})",
                           {"run_id": job.run_id})
    shown = f"{job.model} {' '.join(job.train_args)}".strip()
    if ctx.check:
        return Outcome(CHANGED, f"would run {shown} as {job.run_id} (image {job.image or 'built here'})",
                       {"run_id": job.run_id})
    opts = runner.RunOptions(detach=bool(args.get("detach")), remove_remote=bool(args.get("remove_remote")),
                             profile=str(args.get("profile") or "offline"))
    try:
        out = runner.Runner(store, opts).run(ctx.spec, job)
    except runner.Detached as exc:
        return Outcome(FAILED, f"run {job.run_id}: {exc.message}", {"run_id": job.run_id})
    if out is None:
        return Outcome(CHANGED, f"started {job.run_id} ({shown}), detached", {"run_id": job.run_id})
    data = out.to_dict()
    if out.exit_code != 0 or out.not_collected:
        return Outcome(FAILED, f"run {job.run_id}: {out.state}, exit {out.exit_code}", data)
    return Outcome(CHANGED, f"run {job.run_id} ({shown}): {out.state}, {len(out.collected)} files "
                   f"collected into {out.local_dir}", data)


ACTIONS = [
    Action("run", _check_run, _run, "train on the host (run-remote), results collected"),
    Action("ship", _check_ship, _ship, "send local images to the host (only missing layers)",
           group=_ship_group),
    Action("cancel", _check_run_ref("cancel"), _cancel, "stop a run"),
    Action("collect", _check_run_ref("collect"), _collect, "bring a run's results here"),
]
