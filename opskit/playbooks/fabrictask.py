"""``task: module:function``: a Fabric task as a step, under opskit's inventory and host-key
rules.

The function is called as ``function(c, **args)`` with a ``fabric.Connection`` whose SSH
client is the one opskit already opened for the host: its ssh config, inventory, ProxyJump
and host-key policy (unknown keys refused, never ``AutoAddPolicy``). The client Fabric makes
in its constructor is replaced before it ever connects. The step is ``changed`` unless the
function returns ``False`` or a mapping with ``changed: false``; it fails when the function
raises. In ``--check`` the function is not called. Fabric is the optional extra ``fabric``.
"""

from __future__ import annotations

import importlib
from typing import Any

from opskit.errors import ConfigError, OpskitError
from opskit.playbooks.actionbase import (
    CHANGED,
    FAILED,
    OK,
    Action,
    HostContext,
    Outcome,
    bad,
    mapping_args,
)

EXAMPLE = "fabfile:deploy  or  {function: 'fabfile:deploy', args: {version: '1.2'}}"


def _check(args: Any, where: str) -> dict:
    if isinstance(args, str):
        args = {"function": args}
    args = mapping_args(args, where, "task", required=("function",), optional=("args",),
                        example=EXAMPLE)
    fn = args["function"]
    module, _, name = str(fn).partition(":")
    if not module or not name.isidentifier():
        raise bad(where, "task", f"{fn!r} is not MODULE:FUNCTION", EXAMPLE)
    if not isinstance(args.get("args", {}), dict):
        raise bad(where, "task", "args must be a mapping", EXAMPLE)
    return {"function": fn, "args": dict(args.get("args") or {})}


def resolve_function(text: str, base_dir: Any = None) -> Any:
    """``module:function`` -> the function (``module`` may also be a .py file beside the
    playbook, e.g. ``fabfile:deploy`` for ./fabfile.py)."""
    import sys

    module_name, _, name = text.partition(":")
    added = base_dir is not None and str(base_dir) not in sys.path
    if added:
        sys.path.insert(0, str(base_dir))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"task {text}: cannot import {module_name}: {exc}",
                          "put the module beside the playbook or on PYTHONPATH") from None
    finally:
        if added:
            sys.path.remove(str(base_dir))
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ConfigError(f"task {text}: {module_name} has no function {name}",
                          "name a function that takes a fabric.Connection first")
    return getattr(fn, "body", fn)  # a @fabric.task wraps the function as .body


def connection(ctx: HostContext) -> Any:
    """A ``fabric.Connection`` over opskit's own, already verified SSH client."""
    try:
        from fabric import Connection
    except ImportError:
        raise OpskitError("task steps need Fabric", "pip install 'opskit[fabric]'") from None
    t = ctx.transport
    if t.is_local or not hasattr(t, "client"):
        raise OpskitError(f"{ctx.host}: a Fabric task needs an SSH host, not this machine",
                          "run the play with --host NAME of an SSH host")
    spec = ctx.spec
    conn = Connection(spec.hostname, user=spec.user, port=spec.port)
    client = t.client()  # connects with opskit's host-key policy (unknown keys refused)
    conn.client = client  # Fabric's own client (AutoAddPolicy) is dropped unconnected
    conn.transport = client.get_transport()
    return conn


def _run(ctx: HostContext, args: dict) -> Outcome:
    fn = resolve_function(args["function"], ctx.base_dir)
    if ctx.check:
        return Outcome(CHANGED, f"would call {args['function']}({', '.join(args['args'])})")
    conn = connection(ctx)
    try:
        value = fn(conn, **args["args"])
    except OpskitError:
        raise
    except Exception as exc:  # noqa: BLE001 - the task's failure is this host's failure
        return Outcome(FAILED, f"{args['function']}: {type(exc).__name__}: {exc}")
    changed = value is not False and not (isinstance(value, dict) and value.get("changed") is False)
    data = {"value": value if isinstance(value, (dict, list, str, int, float, bool)) else repr(value)}
    return Outcome(CHANGED if changed else OK, f"{args['function']} done", data)


ACTIONS = [Action("task", _check, _run, "call a Fabric task with a Connection to the host")]
