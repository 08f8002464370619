"""The step types of a playbook, one registry (:data:`ACTIONS`).

Host checks: ``facts`` (alias ``status``), ``df``, ``ps``; commands: ``command`` (an argv
list; never a shell string), ``shell`` (a shell string, only when the step says so);
files: ``copy``, ``fetch``, ``chmod`` (:mod:`opskit.playbooks.files`); images and runs:
``ship``, ``cancel``, ``collect`` (:mod:`opskit.playbooks.jobs`); Python: ``task`` (a Fabric
task, :mod:`opskit.playbooks.fabric`); control: ``assert``, ``debug``.
Commands report ``changed`` (opskit cannot know what they did) unless ``creates:`` names a
path that exists, ``removes:`` one that does not, or the step's ``changed_when`` says so.
"""

from __future__ import annotations

from typing import Any

from opskit.errors import ConfigError
from opskit.playbooks import expr
from opskit.playbooks.actionbase import (
    CHANGED,
    FAILED,
    OK,
    Action,
    HostContext,
    Outcome,
    bad,
    mapping_args,
    no_args,
)
from opskit.safety import check_path


# -- facts, df, ps --------------------------------------------------------------------------
def _facts(ctx: HostContext, args: dict) -> Outcome:
    f = ctx.facts(refresh=True)
    gpus = f"{f['gpu_count']} GPU(s)" + (f", driver {f['driver_version']}, CUDA {f['cuda_version']}"
                                         if f["gpu_count"] else "")
    engine = f"docker {f['docker_version']} ({f['image_store']} store)" if f["docker_version"] \
        else f"no engine ({f['docker_error']})"
    return Outcome(OK, f"{f['hostname']}: {gpus}; {engine}", {"facts": f})


def _df(ctx: HostContext, args: dict) -> Outcome:
    from opskit.checks.disk import disk_usage, over_threshold, parse_threshold

    fss = disk_usage(ctx.transport)
    rows = [f.to_dict() for f in fss]
    if args.get("warn") is not None:
        over = over_threshold(fss, parse_threshold(str(args["warn"])))
        if over:
            return Outcome(FAILED, "over " + str(args["warn"]) + ": " + ", ".join(
                f"{f.mount} {f.percent}%" for f in over), {"filesystems": rows})
    return Outcome(OK, f"{len(rows)} filesystems", {"filesystems": rows})


def _ps(ctx: HostContext, args: dict) -> Outcome:
    from opskit.checks.procs import ProcessFilter
    from opskit.checks.sections import run_sections
    from opskit.checks.status import processes_with_gpu

    flt = ProcessFilter(sort=args.get("sort", "cpu"), user=args.get("user"),
                        name=args.get("name"), limit=args.get("limit"))
    sections = run_sections(ctx.transport, ["self", "long_users", "ps", "gpu_query", "gpu_apps"])
    procs, _gpu = processes_with_gpu(ctx.transport.host, sections)
    rows = [p.to_dict() for p in flt.apply(procs)]
    return Outcome(OK, f"{len(rows)} processes", {"processes": rows})


# -- command and shell ----------------------------------------------------------------------
CMD_EXAMPLE = "[nvidia-smi, -L]  or  {argv: [make, install], creates: /opt/x}"


def _check_command(args: Any, where: str) -> dict:
    if isinstance(args, str):
        raise ConfigError(f"{where}: command: a string is not run through a shell",
                          "give an argv list (command: [ls, -l, /data]) or say shell: 'ls | wc -l'")
    if isinstance(args, list):
        args = {"argv": args}
    args = mapping_args(args, where, "command", required=("argv",),
                        optional=("creates", "removes", "timeout"), example=CMD_EXAMPLE)
    argv = args["argv"]
    if not isinstance(argv, list) or not argv or not all(isinstance(a, (str, int, float)) for a in argv):
        raise bad(where, "command", "argv must be a non-empty list of words", CMD_EXAMPLE)
    flags = [a for a in argv if isinstance(a, bool)]
    if flags:
        raise ConfigError(f"{where}: command: YAML reads {str(flags[0]).lower()} as a truth value, "
                          "not a word", "quote it: command: ['true']")
    return args


def _check_shell(args: Any, where: str) -> dict:
    if isinstance(args, str):
        args = {"cmd": args}
    args = mapping_args(args, where, "shell", required=("cmd",),
                        optional=("creates", "removes", "timeout"), example="'df -h | tail -n 3'")
    if not isinstance(args["cmd"], str) or not args["cmd"].strip():
        raise bad(where, "shell", "cmd must be text", "'df -h | tail -n 3'")
    return args


def _already(ctx: HostContext, args: dict) -> str | None:
    """Why a command need not run (``creates`` exists / ``removes`` does not), or None."""
    from opskit.files.chmod import host_path

    for key, want in (("creates", True), ("removes", False)):
        if args.get(key):
            path = host_path(check_path(str(args[key]), key), is_local=ctx.transport.is_local)
            if (ctx.transport.stat(path) is not None) is want:
                return f"{args[key]} {'exists' if want else 'does not exist'}"
    return None


def _run_argv(ctx: HostContext, argv: list[str], args: dict, shown: str) -> Outcome:
    why = _already(ctx, args)
    if why:
        return Outcome(OK, f"not run: {why}", {"rc": None, "stdout": "", "stderr": ""})
    if ctx.check:
        return Outcome(CHANGED, f"would run: {shown}", {"rc": None, "stdout": "", "stderr": ""})
    res = ctx.transport.run(argv, timeout=args.get("timeout"))
    data = {"rc": res.exit_code, "stdout": res.stdout, "stderr": res.stderr,
            "stdout_lines": res.stdout.splitlines(), "duration": round(res.duration, 3)}
    if not res.ok:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        return Outcome(FAILED, f"{shown}: exit {res.exit_code}" + (": " + " / ".join(tail) if tail else ""), data)
    return Outcome(CHANGED, f"ran {shown}", data)


def _command(ctx: HostContext, args: dict) -> Outcome:
    import shlex

    argv = [str(a) for a in args["argv"]]
    return _run_argv(ctx, argv, args, shlex.join(argv))


def _shell(ctx: HostContext, args: dict) -> Outcome:
    return _run_argv(ctx, ["sh", "-c", args["cmd"]], args, f"sh -c {args['cmd']!r}")


# -- assert and debug -----------------------------------------------------------------------
def _check_assert(args: Any, where: str) -> dict:
    if isinstance(args, (str, list)):
        args = {"that": args}
    args = mapping_args(args, where, "assert", required=("that",), optional=("msg",),
                        example="{that: [gpu_count >= 1, 'disk_max_percent < 90'], msg: ...}")
    that = args["that"] if isinstance(args["that"], list) else [args["that"]]
    for t in that:
        try:
            expr.parse(str(t))
        except expr.ExprError as exc:
            raise bad(where, "assert", str(exc), "{that: [gpu_count >= 1]}") from None
    return {"that": [str(t) for t in that], "msg": args.get("msg")}


def _assert(ctx: HostContext, args: dict) -> Outcome:
    from opskit.playbooks.engine import step_scope

    scope = step_scope(ctx)
    failed = [t for t in args["that"] if not expr.evaluate(t, scope)]
    if failed:
        msg = args.get("msg") or "assertion failed"
        return Outcome(FAILED, f"{msg}: {'; '.join(failed)}", {"failed_conditions": failed})
    return Outcome(OK, f"all {len(args['that'])} conditions hold")


def _debug(ctx: HostContext, args: dict) -> Outcome:
    return Outcome(OK, str(args.get("msg", "")), {"msg_value": args.get("msg")})


def _check_debug(args: Any, where: str) -> dict:
    if isinstance(args, str):
        return {"msg": args}
    return mapping_args(args, where, "debug", required=("msg",), optional=(), example="{msg: ...}")


def _registry() -> dict[str, Action]:
    from opskit.playbooks import fabrictask, files, jobs, prune

    own = [
        Action("facts", lambda a, w: no_args(a, w, "facts"), _facts,
               "gather the host's facts again (GPUs, disks, engine; what status --json shows)"),
        Action("status", lambda a, w: no_args(a, w, "status"), _facts, "same as facts"),
        Action("df", lambda a, w: mapping_args(a or {}, w, "df", required=(), optional=("warn",),
                                               example="{warn: 90%}"), _df,
               "filesystems; fails when one is fuller than warn"),
        Action("ps", lambda a, w: mapping_args(a or {}, w, "ps", required=(),
                                               optional=("sort", "user", "name", "limit"),
                                               example="{user: alice, limit: 5}"), _ps, "processes"),
        Action("command", _check_command, _command, "run an argv list"),
        Action("shell", _check_shell, _shell, "run a shell string (explicitly)"),
        Action("assert", _check_assert, _assert, "fail the host when a condition is false"),
        Action("debug", _check_debug, _debug, "show a message"),
    ]
    return {a.name: a for a in [*own, *files.ACTIONS, *jobs.ACTIONS, *prune.ACTIONS, *fabrictask.ACTIONS]}


ACTIONS: dict[str, Action] = _registry()
