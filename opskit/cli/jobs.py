"""Remote training commands: ship, run-remote, jobs, logs, cancel, collect, runs.

Thin: parse -> one operation (``opskit.images.ship``, ``opskit.jobs.runner.Runner``,
``opskit.jobs.operations``) -> render (``opskit.cli.render``).
"""

from __future__ import annotations

from typing import Any

import click

from opskit.cli.common import (
    common_options,
    host_option,
    json_option,
    resolve_hosts,
    traceback_option,
)
from opskit.cli.render import (
    EventView,
    group_json,
    human_bytes,
    print_json,
    print_json_line,
    print_line,
    print_table,
    report_group_errors,
)

RUNS_DIR_OPTION = click.option(
    "--runs-dir", default=None,
    help="Local store of runs (default: $OPSKIT_RUNS_DIR, the settings file's 'runs_dir', ./runs)."
)


def _store(runs_dir: str | None) -> Any:
    from opskit.jobs.operations import open_store

    return open_store(runs_dir)


# -- ship -------------------------------------------------------------------------------------
@click.command("ship")
@click.argument("image")
@common_options
@click.option("--plan", "plan_only", is_flag=True, help="Show the layers that would travel; send nothing.")
def ship(image: str, hosts: tuple[str, ...], inventory: str | None, as_json: bool, plan_only: bool) -> int:
    """Send IMAGE to hosts' engines (legacy or containerd image store): only the layers each
    host lacks, in one archive both stores load, zstd on the wire; after loading, the image is
    proven (config/manifest digest, diff IDs, a container made) or the full archive is sent."""
    from opskit.hosts.engine import local_docker_client
    from opskit.images import ship as shipmod

    specs = resolve_hosts(hosts, inventory)
    client = local_docker_client()
    if plan_only:
        img, plans = shipmod.plan_only(image, client, specs)
        if as_json:
            print_json({"image": img.to_dict(), **group_json(plans, lambda p: p.to_dict())})
        else:
            _print_plans(img, plans)
        return report_group_errors(plans)
    from opskit import events as ev

    view = EventView(logs_to_stdout=False)  # progress on stderr, with --json too
    what = f"shipping {image}"
    view(ev.TransferStarted("localhost", what))
    try:
        opts = shipmod.ShipOptions(progress=lambda host, n: view(ev.BytesSent(host, n)),
                                   on_event=lambda host, m: view(ev.Step(host, m)))
        result = shipmod.ship(client, image, specs, opts)
    finally:
        view(ev.TransferDone("localhost", what))
    if as_json:
        print_json(group_json(result, lambda r: r.to_dict()))
    else:
        rows = [
            (o.host, o.value.store or "?", o.value.mode, o.value.layers_sent, human_bytes(o.value.raw_bytes),
             human_bytes(o.value.wire_bytes), f"{o.value.seconds:.2f}s", o.value.host_image_id[7:19],
             o.value.reason + (f"; FELL BACK to the full archive: {o.value.fallback}" if o.value.fallback else ""))
            for o in result if o.ok
        ]
        if rows:
            print_table(["host", "store", "mode", "layers", "raw", "wire", "time", "ID there", "note"], rows)
            print_line("ID there: the image's ID on that host's engine: its config digest on a legacy store, "
                       "its manifest digest on a containerd store")
    return report_group_errors(result)


def _print_plans(img: Any, plans: Any) -> None:
    print_line(f"{img.ref}: {len(img.layers)} layers, {human_bytes(img.size)}")
    for image_id, what in img.ids().items():
        print_line(f"  {image_id[7:19]}  {what}")
    for o in plans:
        if not o.ok:
            continue
        p = o.value
        if p.local or p.image_present:
            there = f", ID there {p.host_image_id[7:19]}" if p.host_image_id else ""
            print_line(f"{p.host} ({p.store or 'store not asked'} store): nothing to send ({p.reason}{there})")
            continue
        print_line(f"{p.host} ({p.store} store): {len(p.send)} layers, {human_bytes(p.send_bytes)} "
                   f"({p.reason}; {p.codec}; one archive with only these layer blobs)")
        for lay in p.send:
            print_line(f"  {lay.index:>3}  {human_bytes(lay.size):>7}  {lay.diff_id[7:19]}  {lay.created_by[:70]}")


# -- run-remote -------------------------------------------------------------------------------
@click.command("run-remote", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@host_option
@json_option
@traceback_option
@RUNS_DIR_OPTION
@click.option("--image", default=None, help="Image to run (default: build the training image here).")
@click.option("--profile", default="offline", show_default=True, help="Recipe for the default image.")
@click.option("--gpus", default="auto", show_default=True, help="all, auto, none/0, a count N, or indexes 0,1.")
@click.option("--shm-size", default="1g", show_default=True, help="Shared memory for data loaders.")
@click.option("--memory", default=None, help="Memory limit of the container (e.g. 8g).")
@click.option("--run-id", default=None, help="Run ID (default: MODEL-DATE-TIME-XXXX).")
@click.option("--detach", is_flag=True, help="Start the job and return (reattach with 'opskit logs RUN -f').")
@click.option("--remove-remote", is_flag=True, help="After a verified collect, remove the host's copies.")
@click.option("--nodes", type=int, default=None,
              help="One job over N hosts (torchrun on each; the first N of the hosts that pass preflight).")
@click.option("--gpus-per-node", type=int, default=None, help="With --nodes: GPUs each node uses (hosts may differ).")
@click.option("--rdzv-port", type=int, default=29400, show_default=True, help="With --nodes: rank 0's rendezvous port.")
@click.option("--resume", "resume_run", default=None, metavar="RUN",
              help="With --nodes: continue from rank 0's checkpoint of RUN (collected here), on any hosts.")
@click.option("--scheduler", type=click.Choice(["ssh", "slurm"]), default="ssh", show_default=True,
              help="slurm: hand the job to Slurm; --host is the cluster's login host (sbatch over SSH).")
@click.option("--partition", default=None, help="With --scheduler slurm: the partition (default: Slurm's default).")
@click.option("--time", "time_limit", default=None, help="With --scheduler slurm: the job's time limit (sbatch --time).")
@click.option("--shared-dir", default=None, metavar="PATH",
              help="With --scheduler slurm: a folder the login host and every node see at PATH (results "
                   "there, collected through the login host); default: node-local, collected from the nodes.")
@click.option("--plan", "plan_only", is_flag=True, help="With --scheduler slurm: show the sbatch script; ship and submit nothing.")
@click.argument("model")
@click.argument("train_args", nargs=-1, type=click.UNPROCESSED)
def run_remote(hosts: tuple[str, ...], inventory: str | None, as_json: bool, runs_dir: str | None, image: str | None,
               profile: str, gpus: str, shm_size: str, memory: str | None, run_id: str | None, detach: bool,
               remove_remote: bool, nodes: int | None, gpus_per_node: int | None, rdzv_port: int,
               resume_run: str | None, scheduler: str, partition: str | None, time_limit: str | None,
               shared_dir: str | None, plan_only: bool, model: str, train_args: tuple[str, ...]) -> int:
    """Train MODEL on a host's GPUs: preflight, ship, start, follow, collect.

    Options for the training entry come after MODEL, e.g.
    'opskit run-remote --host gpu1 --gpus all resnet18 --small --epochs 1'.
    Progress (build, preflight, shipping) goes to stderr, the run's output to stdout.
    --json: stdout is one JSON document at the end (the run's output goes to stderr), keys
    run_id, host, state, exit_code, oom_killed, collected, local_dir, detached (and message,
    hint when following stopped); an error is a document with error, message, hint, exit_code.
    With --nodes N (one job over N hosts, torchrun on each): keys run_id, state, host (rank 0's),
    exit_code, stopped_by, nodes (each: host, rank, state, exit_code, detail, collected,
    local_dir, not_collected), detached.
    With --scheduler slurm (--host: the login host): keys run_id, host, job_id, partition, run_dir,
    shared, state, exit_code, detail, nodes, collected, local_dir, not_collected, removed_remote
    (with --remove-remote: the HOST:FOLDER removed), kept_on_cluster, detached.
    """
    from opskit.errors import UsageError
    from opskit.hosts.engine import local_docker_client
    from opskit.jobs import runner
    from opskit.jobs.spec import JobSpec, check_run_id, new_run_id, parse_gpus, parse_size

    specs = resolve_hosts(hosts, inventory)
    from opskit.cli.slurm import options as slurm_options

    slurm = slurm_options(scheduler, specs, nodes, gpus_per_node, partition, time_limit, shared_dir, plan_only,
                           rdzv_port, resume_run)
    if resume_run and nodes is None:
        raise UsageError("--resume RUN continues a multi-host run; give --nodes N too",
                         "for one host, pass the training entry's --resume after MODEL")
    if len(specs) != 1 and nodes is None and slurm is None:
        raise UsageError("run-remote runs on one host unless --nodes N is given",
                         "give exactly one --host, or one job over several hosts with --nodes N")
    job = JobSpec(
        run_id=check_run_id(run_id) if run_id else new_run_id(model),
        model=model, train_args=list(train_args), image=image or "",
        gpus=parse_gpus(gpus), shm_size=parse_size(shm_size, "--shm-size"),
        memory=parse_size(memory, "--memory") if memory else None,
    )
    store = _store(runs_dir)
    view = EventView(logs_to_stdout=not as_json)
    opts = runner.RunOptions(detach=detach, emit=view, remove_remote=remove_remote, profile=profile)
    if slurm is not None:
        from opskit.cli import slurm as slurmcli

        return slurmcli.run(specs[0], job, store, opts, slurm, inventory, as_json)
    if nodes is not None:
        from opskit.jobs.multiops import checkpoint_of
        from opskit.jobs.multirun import MultiOptions

        resume = checkpoint_of(store, resume_run) if resume_run else None
        mopts = MultiOptions(nodes, gpus_per_node, rdzv_port, resume=resume)
        return _run_multi(specs, job, store, opts, mopts, view, as_json)
    print_line(f"run {job.run_id} on {specs[0].name}", err=True)
    doc = {"run_id": job.run_id, "host": specs[0].name, "detached": False}
    try:
        outcome = runner.Runner(store, opts, engine=local_docker_client).run(specs[0], job)
    except runner.Detached as exc:
        print_line(f"[{exc.run_id}] {exc.message}", err=True)
        print_line(f"hint: {exc.hint}", err=True)
        if as_json:
            print_json({**doc, "state": "running", "detached": True, "message": exc.message,
                        "hint": exc.hint, "exit_code": None})
        return exc.exit_code
    finally:
        view.close()
    if outcome is None:
        line = f"started {job.run_id}; follow: opskit logs {job.run_id} -f; collect: opskit collect {job.run_id}"
        if as_json:
            print_line(line, err=True)
            print_json({**doc, "state": "running", "detached": True, "exit_code": None})
        else:
            print_line(line)
        return 0
    if as_json:
        print_json({**outcome.to_dict(), "detached": False})
    else:
        _print_outcome(outcome)
    return 0 if outcome.exit_code == 0 and not outcome.not_collected else 1


def _run_multi(specs: list, job: Any, store: Any, opts: Any, mopts: Any, view: Any, as_json: bool) -> int:
    from opskit.jobs import runner
    from opskit.jobs.multirun import MultiRunner

    print_line(f"run {job.run_id} on {mopts.nodes} of {', '.join(s.name for s in specs)}", err=True)
    doc = {"run_id": job.run_id, "hosts": [s.name for s in specs], "detached": False}
    try:
        outcome = MultiRunner(store, opts).run(specs, job, mopts)
    except runner.Detached as exc:
        print_line(f"[{exc.run_id}] {exc.message}\nhint: {exc.hint}", err=True)
        if as_json:
            print_json({**doc, "state": "running", "detached": True, "message": exc.message, "hint": exc.hint})
        return exc.exit_code
    finally:
        view.close()
    if outcome is None:
        line = f"started {job.run_id}; follow: opskit logs {job.run_id} -f; stop all: opskit cancel {job.run_id}"
        print_line(line, err=as_json)
        if as_json:
            print_json({**doc, "state": "running", "detached": True})
        return 0
    if as_json:
        print_json({**outcome.to_dict(), "detached": False})
        return 0 if outcome.ok else 1
    why = f" (stopped because {outcome.stopped_by} ended first)" if outcome.stopped_by else ""
    print_line(f"run {outcome.run_id} on {len(outcome.nodes)} nodes: {outcome.state}{why}")
    for n in outcome.nodes:
        print_line(f"  node {n.rank} {n.host}: {n.state}, exit {n.exit_code}{'; ' + n.detail if n.detail else ''}; "
                   f"{len(n.collected)} files (sha256-verified) -> {n.local_dir or '-'}")
        _print_not_collected(n.host, n.not_collected)
    return 0 if outcome.ok else 1


def _print_outcome(o: Any) -> None:
    oom = " (killed for memory)" if o.oom_killed else ""
    print_line(f"run {o.run_id} on {o.host}: {o.state}, exit {o.exit_code}{oom}")
    print_line(f"collected {len(o.collected)} files (sha256-verified) into {o.local_dir}")
    _print_not_collected(o.host, o.not_collected)


def _print_not_collected(host: str, missed: list[dict[str, str]]) -> None:
    if missed:
        print_line(f"[{host}] {len(missed)} not collected (listed in the run card):", err=True)
    for m in missed:
        print_line(f"  {m['path']}: {m['reason']}", err=True)


# -- jobs / logs / cancel / collect -----------------------------------------------------------
@click.command("jobs")
@common_options
@RUNS_DIR_OPTION
def jobs(hosts: tuple[str, ...], inventory: str | None, as_json: bool, runs_dir: str | None) -> int:
    """Runs on hosts (default: the hosts of the runs in the local store)."""
    from opskit.cli import slurm as slurmcli
    from opskit.jobs.operations import list_jobs

    store = _store(runs_dir)
    slurm = slurmcli.SlurmJobs.of(store, inventory, hosts)  # runs handed to Slurm: scontrol, sentinels
    result = list_jobs(hosts, inventory, store)
    slurm.spare(result)  # a login host without Docker: not an error for its Slurm runs
    if result is None or as_json:
        if result is None and slurm.empty:
            print_line("no runs recorded here; name hosts with --host", err=True)
        if as_json:
            print_json({**(group_json(result, lambda js: [j.to_dict() for j in js]) if result else
                           {"hosts": {}, "errors": {}}), **slurm.to_dict()})
        else:
            slurm.print()
        return max(report_group_errors(result) if result else 0, slurm.exit_code)
    slurm.print()
    rows = []
    for group in _one_row_per_run([j for o in result for j in o.value or []]):
        j = group[0]
        dur = f"{j.duration:.0f}s" if j.duration is not None else "-"
        ref, _, image_id = j.image.rpartition("@")
        image = f"{ref} ({image_id.removeprefix('sha256:')[:12]})" if ref else j.image
        host, state = j.host, j.state
        if len(group) > 1:  # one job over several hosts: one row, each host's state
            host = ",".join(x.host for x in group)
            state = " ".join(f"{x.host}:{x.state}" for x in group)
        rows.append((j.run_id, host, j.model, state, "" if j.exit_code is None else j.exit_code,
                     j.started[:19].replace("T", " "), dur, image))
    if rows or slurm.empty:  # a login host of Slurm runs only: no empty Docker table under them
        print_table(["run", "host", "model", "state", "exit", "started (UTC)", "duration", "image (ID there)"], rows)
    if rows:
        print_line("ID there: the image's ID on that host's engine (config digest on a legacy store, manifest "
                   "digest on a containerd store); run cards record both sides' IDs")
    return max(report_group_errors(result), slurm.exit_code)


def _one_row_per_run(states: list) -> list[list]:
    """Jobs grouped by run ID (a multi-host job's containers share it), in start order."""
    groups: dict[str, list] = {}
    for j in states:
        groups.setdefault(j.run_id, []).append(j)
    return list(groups.values())


def _multi_nodes(run_id: str, hosts: tuple[str, ...], inventory: str | None, runs_dir: str | None,
                 emit: Any = None, on_saved: Any = None) -> Any:
    """The nodes of a multi-host run (None: not one). With ``on_saved`` (logs): when its hosts
    cannot be resolved any more, every node's saved output is shown instead, and True returned."""
    from opskit.errors import OpskitError
    from opskit.jobs.multiops import is_multi, node_list, open_nodes, print_saved

    store = _store(runs_dir)
    try:
        return open_nodes(run_id, hosts, inventory, store)
    except OpskitError as exc:
        card = store.load(run_id) if on_saved is not None and store.exists(run_id) else None
        if card is None or not is_multi(card):
            raise
        print_saved(store, card, node_list(card), exc, emit or EventView(logs_to_stdout=True), on_saved)
        return True


def _slurm(command: str, run_id: str, hosts: tuple[str, ...], inventory: str | None, runs_dir: str | None,
           **kw: Any) -> int | None:
    """The command on a run handed to Slurm (None: the run is not one)."""
    from opskit.cli.slurm import dispatch

    return None if hosts else dispatch(command, run_id, inventory, _store(runs_dir), **kw)


def _print_multi_end(outcome: Any, as_json: bool) -> int:
    for n in outcome.nodes:
        if as_json:
            print_json_line({"event": "result", "host": n.host, "rank": n.rank, "run_id": outcome.run_id,
                             "state": n.state, "exit_code": n.exit_code})
        print_line(f"[{n.host}] node {n.rank} of run {outcome.run_id}: {n.state} (exit {n.exit_code})"
                   + (f"; {n.detail}" if n.detail else ""), err=True)
    print_line(f"collect: opskit collect {outcome.run_id}", err=True)
    return 0


@click.command("logs")
@click.argument("run_id")
@host_option
@json_option
@traceback_option
@RUNS_DIR_OPTION
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the run ends.")
def logs(run_id: str, hosts: tuple[str, ...], inventory: str | None, as_json: bool,
         runs_dir: str | None, follow: bool) -> int:
    """Show a run's output (from the start); -f follows it, and reattaches after a disconnect.

    --json prints JSON Lines: one {"event": "log", "host", "run_id", "line"} per line of
    output; with -f a last {"event": "result", "host", "run_id", "state", "exit_code"} (or
    {"event": "detached", "message", "hint"} when following stopped). Output shown from the copy
    collect saved (the container or host is gone) is preceded by {"event": "saved_output",
    "run_id", "host", "path", "why", "collected_at", "state", "exit_code"}.
    """
    from opskit.jobs.operations import run_output
    from opskit.jobs.runner import Detached

    if as_json:
        emit: Any = lambda e: print_json_line(e.to_dict())  # noqa: E731
    elif follow:
        emit = EventView(logs_to_stdout=True)  # [host] line, as run-remote shows them
    else:
        emit = lambda e: print_line(e.line)  # noqa: E731  (the output as it is)
    code = _slurm("logs", run_id, hosts, inventory, runs_dir, follow=follow, as_json=as_json)
    if code is not None:  # a job handed to Slurm: its output file
        return code
    on_saved = lambda s: _saved_note(s, as_json)  # noqa: E731
    nodes = _multi_nodes(run_id, hosts, inventory, runs_dir, emit if as_json else None, on_saved)
    if nodes is True:  # its hosts are not known here any more: the outputs collect saved
        return 0
    if nodes is not None:  # one job over several hosts: every node, with its host/rank prefix
        with nodes:
            emit = emit if as_json else EventView(logs_to_stdout=True)
            if not follow or nodes.gone():  # a gone node's output: the copy collect saved
                nodes.print_logs(emit, _store(runs_dir), on_saved)
                return 0
            try:
                return _print_multi_end(nodes.follow(emit), as_json)
            except Detached as exc:
                print_line(f"{exc.message}\nhint: {exc.hint}", err=True)
                return exc.exit_code
    try:
        state = run_output(run_id, hosts=hosts, inventory=inventory, store=_store(runs_dir),
                           follow=follow, emit=emit, on_saved=on_saved)
    except Detached as exc:
        if as_json:
            print_json_line({"event": "detached", "host": exc.host, "run_id": run_id,
                             "message": exc.message, "hint": exc.hint})
        print_line(f"{exc.message}\nhint: {exc.hint}", err=True)
        return exc.exit_code
    if state is not None:
        if as_json:
            print_json_line({"event": "result", "host": state.host, "run_id": run_id,
                             "state": state.state, "exit_code": state.exit_code})
        print_line(f"[{state.host}] run {run_id} {state.state} (exit {state.exit_code})"
                   + ("; collect: opskit collect " + run_id if state.state != "running" else ""), err=True)
    return 0


def _saved_note(saved: Any, as_json: bool) -> None:
    """Say that the output shown is the copy collect saved here, and why."""
    if as_json:
        print_json_line(saved.to_dict())
    when = f", collected {saved.collected_at[:19].replace('T', ' ')} UTC" if saved.collected_at else ""
    end = f"; the run ended {saved.state} (exit {saved.exit_code})" if saved.state else ""
    print_line(f"[{saved.host}] {saved.why}\nshowing the saved copy of run {saved.run_id}'s output: "
               f"{saved.path}{when}{end}", err=True)


@click.command("cancel")
@click.argument("run_id")
@host_option
@json_option
@traceback_option
@RUNS_DIR_OPTION
@click.option("--grace", default=30.0, show_default=True, help="Seconds between SIGTERM and kill.")
def cancel(run_id: str, hosts: tuple[str, ...], inventory: str | None, as_json: bool, runs_dir: str | None, grace: float) -> int:
    """Stop a run: SIGTERM (the training entry checkpoints), then kill after --grace seconds."""
    from opskit.jobs.operations import cancel_run

    code = _slurm("cancel", run_id, hosts, inventory, runs_dir, grace=grace, as_json=as_json)
    if code is not None:  # scancel --signal=TERM (each node's container stops: checkpoint), then scancel
        return code
    nodes = _multi_nodes(run_id, hosts, inventory, runs_dir)
    if nodes is not None:  # every node at once, SIGTERM first: rank 0 checkpoints
        with nodes:
            states = nodes.cancel(_store(runs_dir), grace)
        if as_json:
            print_json({"run_id": run_id, "nodes": [s.to_dict() for s in states]})
        for s in states:
            print_line(f"[{s.host}] run {run_id}: {s.state} (exit {s.exit_code})", err=True)
        print_line(f"collect: opskit collect {run_id}", err=as_json)
        return 0
    state = cancel_run(run_id, hosts=hosts, inventory=inventory, store=_store(runs_dir), grace=grace)
    if as_json:
        print_json(state.to_dict())
    else:
        print_line(f"[{state.host}] run {run_id}: {state.state} (exit {state.exit_code}); collect: opskit collect {run_id}")
    return 0


@click.command("collect")
@click.argument("run_id")
@host_option
@json_option
@traceback_option
@RUNS_DIR_OPTION
@click.option("--remove-remote", is_flag=True, help="Then remove the host's copies (only if all verified).")
def collect(run_id: str, hosts: tuple[str, ...], inventory: str | None, as_json: bool, runs_dir: str | None,
            remove_remote: bool) -> int:
    """Bring a run's results into runs/RUN/results/ over SFTP, sha256-verified against the host.

    Links, fifos, odd names, files over the limits or changed on the host are listed, kept on
    the host, and make the exit code 1; the others are collected. --json keys: run_id, host,
    local_dir, results_dir, files {path: sha256}, copied, already_here, not_collected
    [{path, reason}], logs, bytes_copied, removed_remote, kept_on_host (a Slurm run: also removed,
    the HOST:FOLDER --remove-remote removed; kept_on_host says what stays where and why).
    """
    from opskit.jobs.operations import collect_run

    code = _slurm("collect", run_id, hosts, inventory, runs_dir, remove_remote=remove_remote, as_json=as_json)
    if code is not None:  # from the shared folder through the login host, or from the nodes
        return code
    nodes = _multi_nodes(run_id, hosts, inventory, runs_dir)
    if nodes is not None:  # rank 0's results into runs/RUN/, every node's output beside them
        with nodes:
            outcome = nodes.collect(_store(runs_dir), remove_remote)
        if as_json:
            print_json(outcome.to_dict())
        for n in outcome.nodes:
            print_line(f"[{n.host}] node {n.rank}: {len(n.collected)} files, all sha256-verified -> "
                       f"{n.local_dir or '-'}", err=as_json)
            _print_not_collected(n.host, n.not_collected)
        return 0 if all(not n.not_collected for n in outcome.nodes) else 1
    res = collect_run(run_id, hosts=hosts, inventory=inventory, store=_store(runs_dir),
                      remove_remote=remove_remote)
    if as_json:
        print_json(res.to_dict())
    else:
        print_line(f"[{res.host}] {run_id}: {len(res.copied)} copied ({human_bytes(res.bytes_copied)}), "
                   f"{len(res.already_here)} already here, all {len(res.files)} sha256-verified -> {res.results_dir}"
                   + ("; verified copies removed from the host" if res.removed_remote else ""))
        _print_not_collected(res.host, res.not_collected)
    return 0 if res.complete else 1
