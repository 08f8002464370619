"""Rendering of the Slurm path of run-remote, jobs, logs, cancel and collect (called from
``opskit.cli.jobs``; the operations are in ``opskit.jobs.slurm``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opskit.cli.render import (
    EventView,
    human_bytes,
    print_json,
    print_json_line,
    print_line,
    print_table,
)


def options(scheduler: str, specs: list, nodes: int | None, gpus_per_node: int | None,
                   partition: str | None, time_limit: str | None, shared_dir: str | None, plan_only: bool,
                   rdzv_port: int, resume_run: str | None) -> Any:
    """SlurmOptions for --scheduler slurm (None for SSH hosts); Slurm-only options refused without it."""
    from opskit.errors import UsageError

    if scheduler != "slurm":
        given = [n for n, v in (("--partition", partition), ("--time", time_limit), ("--shared-dir", shared_dir),
                                ("--plan", plan_only)) if v]
        if given:
            raise UsageError(f"{', '.join(given)}: only with --scheduler slurm", "add --scheduler slurm")
        return None
    from opskit.jobs.slurm.run import SlurmOptions
    from opskit.jobs.slurm.script import check_time

    if len(specs) != 1:
        raise UsageError("--scheduler slurm takes one --host: the cluster's login host",
                         "the nodes come from Slurm (sinfo); give --nodes N")
    if resume_run:
        raise UsageError("--resume RUN is not supported with --scheduler slurm yet",
                         "pass the training entry's --resume after MODEL")
    if nodes is not None and nodes < 1:
        raise UsageError(f"--nodes {nodes}: give at least 1")
    if shared_dir is not None and not shared_dir.startswith("/"):
        raise UsageError(f"--shared-dir {shared_dir!r}: give an absolute path (the same on every node)")
    return SlurmOptions(nodes or 1, gpus_per_node or 0, partition, check_time(time_limit), shared_dir, rdzv_port,
                        plan_only=plan_only)


def run(login: Any, job: Any, store: Any, opts: Any, sopts: Any, inventory: str | None, as_json: bool) -> int:
    """``run-remote --scheduler slurm``: submit (or show the script), follow, collect."""
    from opskit.hosts.engine import local_docker_client
    from opskit.jobs.runner import Detached
    from opskit.jobs.slurm import ops
    from opskit.jobs.slurm.run import SlurmRunner

    runner = SlurmRunner(store, opts, engine=local_docker_client, resolve=ops.resolver(inventory))
    print_line(f"run {job.run_id}: Slurm job through {login.name}", err=True)
    sub = runner.submit(login, job, sopts)
    if isinstance(sub, str):  # --plan: the script, nothing shipped or submitted
        if as_json:
            print_json({"run_id": job.run_id, "host": login.name, "script": sub})
        else:
            print_line(sub.rstrip("\n"))
        return 0
    doc = {"run_id": job.run_id, "host": login.name, "scheduler": "slurm", **sub.to_dict(), "detached": False}
    if opts.detach:
        line = (f"submitted {job.run_id} as Slurm job {sub.job_id}; follow: opskit logs {job.run_id} -f; "
                f"state: opskit jobs; collect: opskit collect {job.run_id}")
        print_line(line, err=as_json)
        if as_json:
            print_json({**doc, "state": "pending", "detached": True})
        return 0
    slurm_run = ops.open_run(job.run_id, inventory, store)
    assert slurm_run is not None
    try:
        with slurm_run:
            from opskit.jobs.slurm import fetch, follow

            st = follow.follow(slurm_run, store, opts.emit, sopts.poll)
            res = fetch.collect(slurm_run, store, remove_remote=opts.remove_remote)
    except Detached as exc:
        print_line(f"[{exc.host}] {exc.message}\nhint: {exc.hint}", err=True)
        if as_json:
            print_json({**doc, "state": "running", "detached": True, "message": exc.message, "hint": exc.hint})
        return exc.exit_code
    finally:
        if isinstance(opts.emit, EventView):
            opts.emit.close()
    return outcome(doc, st, res, store, as_json)


def outcome(doc: dict, st: Any, res: Any, store: Any, as_json: bool) -> int:
    ok = st.exit_code == 0 and not res.not_collected and not res.kept_on_host  # kept: --remove-remote could not
    if as_json:
        print_json({**doc, "state": st.state, "exit_code": st.exit_code, "detail": st.detail,
                    "nodes": st.nodes, "collected": sorted(res.files), "local_dir": res.local_dir,
                    "not_collected": res.not_collected, "removed_remote": getattr(res, "removed", []),
                    "kept_on_cluster": res.kept_on_host})
        return 0 if ok else 1
    print_line(f"run {st.run_id} (Slurm job {st.job_id} on {st.nodes or '-'}): {st.state}, exit {st.exit_code}"
               + (f"; {st.detail}" if st.detail else ""))
    print_line(f"collected {len(res.files)} files (sha256-verified) into {res.local_dir}")
    swept(res)
    not_collected(st.host, res.not_collected)
    removal(st.host, res)
    if st.exit_code != 0:
        from opskit.jobs.slurm.fetch import output_tail

        tail = output_tail(store, st.run_id, st.job_id)
        if tail:
            print_line(f"the end of the job's Slurm output (runs/{st.run_id}/slurm-{st.job_id}.out):", err=True)
            for line in tail:
                print_line(f"  {line}", err=True)
    return 0 if ok else 1


def removal(host: str, res: Any) -> None:
    """What --remove-remote removed from the cluster, or kept there and why."""
    for where in getattr(res, "removed", []):
        print_line(f"[{host}] removed {where} (all of it: every file there verified here)")
    if res.kept_on_host:
        print_line(f"[{host}] --remove-remote: nothing removed from the cluster; kept:", err=True)
    for why in res.kept_on_host:
        print_line(f"  {why}", err=True)


def swept(res: Any) -> None:
    """The run's containers collect found on its nodes and removed (or could not look for)."""
    for node, ids in sorted(res.swept.items()):
        print_line(f"[{node}] removed {len(ids)} container(s) the job left there", err=True)
    for node, why in sorted(res.sweep_unchecked.items()):
        print_line(f"[{node}] note: not checked for containers the job left ({why})", err=True)


def not_collected(host: str, missed: list[dict[str, str]]) -> None:
    if missed:
        print_line(f"[{host}] {len(missed)} not collected (listed in the run card):", err=True)
    for m in missed:
        print_line(f"  {m['path']}: {m['reason']}", err=True)


@dataclass
class SlurmJobs:
    """The ``jobs`` rows of the runs handed to Slurm (with hosts named: those submitted
    through them, when they are login hosts)."""

    states: list
    errors: dict[str, str]
    cards: dict[str, dict]
    no_docker: dict[str, str] = field(default_factory=dict)  # login host -> why Docker was not listed

    @classmethod
    def of(cls, store: Any, inventory: str | None, hosts: tuple[str, ...]) -> SlurmJobs:
        from opskit.jobs.slurm import ops

        cards = [c for c in ops.slurm_cards(store) if not hosts or c["slurm"].get("login") in hosts]
        states, errors = ops.statuses(cards, inventory, store=store) if cards else ([], {})
        return cls(states, errors, {c["run_id"]: c for c in cards})

    @property
    def logins(self) -> set[str]:
        return {str(c["slurm"].get("login")) for c in self.cards.values()}

    def spare(self, result: Any) -> None:
        """A login host of Slurm runs need not run Docker: its failed Docker listing is no error
        (said in a note); a login host that also has an engine keeps its Docker rows."""
        for o in result or []:
            if not o.ok and o.host in self.logins:
                self.no_docker[o.host] = str(getattr(o.error, "message", None) or o.error)
                o.error, o.value = None, []

    @property
    def empty(self) -> bool:
        return not self.states and not self.errors

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    def to_dict(self) -> dict:
        return {"slurm": [s.to_dict() for s in self.states], "slurm_errors": self.errors,
                "slurm_login_no_docker": self.no_docker}

    def print(self) -> None:
        rows = []
        for s in self.states:
            card = self.cards.get(s.run_id) or {}
            rows.append((s.run_id, s.host, s.job_id, card.get("model", "?"), s.state,
                         "" if s.exit_code is None else s.exit_code, s.nodes or "-", s.reason or s.detail))
        if rows:
            print_table(["run", "login", "slurm job", "model", "state", "exit", "nodes", "why / how known"], rows)
        for login, message in self.errors.items():
            print_line(f"[{login}] error: {message}", err=True)
        for login, message in self.no_docker.items():
            print_line(f"[{login}] Slurm login host: its Slurm runs are listed; no Docker runs there ({message})",
                       err=True)


def logs(slurm_run: Any, store: Any, follow: bool, as_json: bool) -> int:
    from opskit.jobs.runner import Detached
    from opskit.jobs.slurm import ops

    if as_json:
        emit: Any = lambda e: print_json_line(e.to_dict())  # noqa: E731
    elif follow:
        emit = EventView(logs_to_stdout=True)
    else:
        emit = lambda e: print_line(e.line) if e.kind == "log" else None  # noqa: E731
    try:
        st = ops.logs(slurm_run, store, emit, follow)
    except Detached as exc:
        if as_json:
            print_json_line({"event": "detached", "host": exc.host, "run_id": exc.run_id,
                             "message": exc.message, "hint": exc.hint})
        print_line(f"{exc.message}\nhint: {exc.hint}", err=True)
        return exc.exit_code
    if st is not None:
        if as_json:
            print_json_line({"event": "result", "host": st.host, "run_id": st.run_id, "state": st.state,
                             "exit_code": st.exit_code, "slurm_job_id": st.job_id, "detail": st.detail})
        print_line(f"[{st.host}] run {st.run_id} (Slurm job {st.job_id}) {st.state} (exit {st.exit_code})"
                   + (f"; {st.detail}" if st.detail else "") + f"; collect: opskit collect {st.run_id}", err=True)
    return 0


def cancel(slurm_run: Any, store: Any, grace: float, as_json: bool) -> int:
    from opskit.jobs.slurm import ops

    st = ops.cancel(slurm_run, store, grace)
    if as_json:
        print_json(st.to_dict())
    else:
        print_line(f"[{st.host}] run {st.run_id} (Slurm job {st.job_id}): {st.state} (exit {st.exit_code})"
                   + (f"; {st.detail}" if st.detail else "") + f"; collect: opskit collect {st.run_id}")
    return 0


def collect(slurm_run: Any, store: Any, as_json: bool, remove_remote: bool = False) -> int:
    from opskit.jobs.slurm import ops

    res = ops.collect(slurm_run, store, remove_remote)
    if as_json:
        print_json(res.to_dict())
    else:
        print_line(f"[{res.host}] {res.run_id}: {len(res.copied)} copied ({human_bytes(res.bytes_copied)}), "
                   f"{len(res.already_here)} already here, all {len(res.files)} sha256-verified -> {res.local_dir}")
        swept(res)
        not_collected(res.host, res.not_collected)
        removal(res.host, res)
    return 0 if res.complete and not (remove_remote and res.kept_on_host) else 1


def dispatch(command: str, run_id: str, inventory: str | None, store: Any, **kw: Any) -> int | None:
    """``logs``/``cancel``/``collect`` on a recorded Slurm run; None when the run is not one."""
    from opskit.jobs.slurm.ops import open_run

    slurm_run = open_run(run_id, inventory, store)
    if slurm_run is None:
        return None
    if command == "logs":
        return logs(slurm_run, store, kw["follow"], kw["as_json"])
    if command == "cancel":
        return cancel(slurm_run, store, kw["grace"], kw["as_json"])
    return collect(slurm_run, store, kw["as_json"], bool(kw.get("remove_remote")))
