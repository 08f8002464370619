"""Image and run steps: ``ship`` (only the layers a host lacks), ``cancel`` and ``collect``
of a run. Each asks first: an image already on the host is ``ok``, a run already stopped is
``ok``, a collect whose files are all here and verified copies nothing.
"""

from __future__ import annotations

from typing import Any

from opskit.playbooks.actionbase import CHANGED, OK, Action, HostContext, Outcome, bad, mapping_args


def _check_ship(args: Any, where: str) -> dict:
    if isinstance(args, str):
        args = {"image": args}
    args = mapping_args(args, where, "ship", required=("image",), optional=(),
                        example="{image: 'opskit/train:latest'}")
    if not isinstance(args["image"], str) or not args["image"]:
        raise bad(where, "ship", "image must be an image reference", "{image: opskit/train:latest}")
    return args


def _ship(ctx: HostContext, args: dict) -> Outcome:
    from opskit.hosts.engine import local_docker_client
    from opskit.images import ship as shipmod

    client = local_docker_client()
    if ctx.check:
        _img, plans = shipmod.plan_only(args["image"], client, [ctx.spec])
        p = plans.outcomes[0]
        if p.error is not None:
            raise p.error
        plan = p.value
        if plan.local or plan.image_present:
            return Outcome(OK, f"{args['image']}: nothing to send ({plan.reason})")
        return Outcome(CHANGED, f"would ship {args['image']}: {len(plan.send)} layer(s), "
                       f"{plan.send_bytes} bytes ({plan.reason})", {"layers": len(plan.send)})
    result = shipmod.ship(client, args["image"], [ctx.spec])
    o = result.outcomes[0]
    if o.error is not None:
        raise o.error
    r = o.value
    status = OK if r.mode in ("none", "local") else CHANGED
    return Outcome(status, f"{args['image']}: {r.mode}, {r.layers_sent} layer(s), "
                   f"{r.wire_bytes} bytes on the wire ({r.reason})", r.to_dict())


def _check_run_ref(action: str) -> Any:
    def check(args: Any, where: str) -> dict:
        if isinstance(args, str):
            args = {"run_id": args}
        optional = ("grace",) if action == "cancel" else ("remove_remote",)
        return mapping_args(args, where, action, required=("run_id",), optional=optional,
                            example="{run_id: '{{ started.run_id }}'}")
    return check


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
    return Outcome(CHANGED, f"run {run_id}: {state.state} (exit {state.exit_code})", state.to_dict())


def _collect(ctx: HostContext, args: dict) -> Outcome:
    from opskit.jobs import launch, runner
    from opskit.jobs.spec import check_run_id
    from opskit.jobs.store import RunStore, runs_dir

    run_id = str(args["run_id"])
    check_run_id(run_id)
    store = RunStore(runs_dir(None))
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


ACTIONS = [
    Action("ship", _check_ship, _ship, "send a local image to the host (only missing layers)"),
    Action("cancel", _check_run_ref("cancel"), _cancel, "stop a run"),
    Action("collect", _check_run_ref("collect"), _collect, "bring a run's results here"),
]
