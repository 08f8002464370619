"""File steps: ``copy`` (here -> host), ``fetch`` (host -> here), ``chmod``.

Each looks before it acts, so a second run changes nothing: a copy whose destination already
has the same sha256 (and mode) is ``ok``; a chmod whose paths already have the wanted modes
is ``ok``. The copies themselves are opskit scp's (temp name, sha256 on both ends, rename).
"""

from __future__ import annotations

import functools
import os
import stat as stat_mod
from pathlib import Path
from typing import Any

from opskit.files.chmod import host_path
from opskit.playbooks.actionbase import CHANGED, OK, Action, HostContext, Outcome, bad, mapping_args
from opskit.safety import check_mode, check_path


@functools.lru_cache(maxsize=256)
def _local_sha(path: str, size: int, mtime_ns: int) -> str:
    from opskit.hosts.local import sha256_file

    return sha256_file(path)


def local_sha256(path: Path) -> str:
    st = path.stat()
    return _local_sha(str(path), st.st_size, st.st_mtime_ns)


def _mode_int(mode: Any, where: str, action: str) -> str | None:
    if mode is None:
        return None
    if not isinstance(mode, str):
        raise bad(where, action, f"mode {mode!r}: write it in quotes (YAML reads 0644 as the "
                  "number 420 and 644 as six hundred forty-four)", "{mode: '0644'}")
    text = mode
    try:
        check_mode(text)
    except Exception as exc:  # noqa: BLE001 - re-raised as a playbook error naming the line
        raise bad(where, action, f"mode {mode!r}: {exc}", "{mode: '0644'}") from None
    return text


# -- copy -------------------------------------------------------------------------------------
COPY_EXAMPLE = "{src: files/app.conf, dest: /etc/app.conf, mode: '0644'}"


def _check_copy(args: Any, where: str) -> dict:
    args = mapping_args(args, where, "copy", required=("src", "dest"), optional=("mode",),
                        example=COPY_EXAMPLE)
    for key in ("src", "dest"):
        if not isinstance(args[key], str) or not args[key]:
            raise bad(where, "copy", f"{key} must be a path", COPY_EXAMPLE)
    args["mode"] = _mode_int(args.get("mode"), where, "copy")
    return args


def _wanted_mode(args: dict) -> int | None:
    if args.get("mode") is None:
        return None
    from opskit.files.modes import apply_mode, parse_mode

    return apply_mode(parse_mode(args["mode"]), 0o644)


def _copy(ctx: HostContext, args: dict) -> Outcome:
    src = ctx.local_path(args["src"])
    if not src.is_file():
        return Outcome("failed", f"copy: {src} is not a file here")
    t = ctx.transport
    dest = host_path(check_path(args["dest"], "dest"), is_local=t.is_local)
    if dest.endswith("/"):
        dest += src.name
    want_sha, want_mode = local_sha256(src), _wanted_mode(args)
    st = t.stat(dest)
    same = st is not None and not st.is_dir and st.size == src.stat().st_size \
        and t.sha256(dest) == want_sha
    mode_ok = want_mode is None or (st is not None and stat_mod.S_IMODE(st.mode) == want_mode)
    data = {"dest": dest, "sha256": want_sha}
    if same and mode_ok:
        return Outcome(OK, f"{dest} already has this content", data)
    what = f"mode of {dest} -> {args['mode']}" if same else \
        f"{src} -> {ctx.host}:{dest} ({src.stat().st_size} bytes)"
    if ctx.check:
        folder = os.path.dirname(dest)
        if not same and folder and t.stat(folder) is None:  # the real run would fail here
            return Outcome(CHANGED, f"would copy {what} (folder {ctx.host}:{folder} is not there "
                           "yet: an earlier step must make it, else this step fails)", data)
        return Outcome(CHANGED, f"would copy {what}" if not same else f"would set {what}", data)
    if not same:
        from opskit.files.chmod import current_umask
        from opskit.files.transfer import Endpoint, copy
        from opskit.hosts.local import LocalTransport

        copy(Endpoint(LocalTransport(), str(src)), Endpoint(t, dest), umask=current_umask())
    if want_mode is not None:
        from opskit.files.chmod import chmod_argv

        t.run(chmod_argv(args["mode"], [dest])).check()
    return Outcome(CHANGED, ("copied " if not same else "set ") + what, data)


# -- fetch ------------------------------------------------------------------------------------
FETCH_EXAMPLE = "{src: results/metrics.json, dest: 'fetched/{{ host }}/metrics.json'}"


def _check_fetch(args: Any, where: str) -> dict:
    args = mapping_args(args, where, "fetch", required=("src", "dest"), optional=(),
                        example=FETCH_EXAMPLE)
    for key in ("src", "dest"):
        if not isinstance(args[key], str) or not args[key]:
            raise bad(where, "fetch", f"{key} must be a path", FETCH_EXAMPLE)
    return args


def _fetch(ctx: HostContext, args: dict) -> Outcome:
    t = ctx.transport
    src = host_path(check_path(args["src"], "src"), is_local=t.is_local)
    dest = ctx.local_path(args["dest"])
    if args["dest"].endswith("/"):
        dest = dest / os.path.basename(src)
    st = t.stat(src)
    if st is None and ctx.check:
        return Outcome(CHANGED, f"would fetch {ctx.host}:{src} -> {dest} (not there yet: an "
                       "earlier step would make it)", {"src": src, "dest": str(dest)})
    if st is None or st.is_dir:
        return Outcome("failed", f"fetch: {ctx.host}:{src} is not a file")
    data = {"src": src, "dest": str(dest)}
    if dest.is_file() and dest.stat().st_size == st.size and local_sha256(dest) == t.sha256(src):
        return Outcome(OK, f"{dest} already has this content", data)
    if ctx.check:
        return Outcome(CHANGED, f"would fetch {ctx.host}:{src} -> {dest} ({st.size} bytes)", data)
    from opskit.files.chmod import current_umask
    from opskit.files.transfer import Endpoint, copy
    from opskit.hosts.local import LocalTransport

    dest.parent.mkdir(parents=True, exist_ok=True)
    copy(Endpoint(t, src), Endpoint(LocalTransport(), str(dest)), umask=current_umask())
    return Outcome(CHANGED, f"fetched {ctx.host}:{src} -> {dest}", data)


# -- chmod ------------------------------------------------------------------------------------
CHMOD_EXAMPLE = "{mode: u+x, path: bin/train.sh}"


def _check_chmod(args: Any, where: str) -> dict:
    args = mapping_args(args, where, "chmod", required=("mode",),
                        optional=("path", "paths", "recursive"), example=CHMOD_EXAMPLE)
    paths = args.pop("paths", None) or ([args.pop("path")] if "path" in args else None)
    if not paths or not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise bad(where, "chmod", "give path: or paths: [...]", CHMOD_EXAMPLE)
    args.pop("path", None)
    args["paths"] = paths
    args["mode"] = _mode_int(args["mode"], where, "chmod")
    return args


def _chmod(ctx: HostContext, args: dict) -> Outcome:
    from opskit.files.chmod import change_mode, current_umask
    from opskit.files.modes import apply_mode, parse_mode

    t, changes = ctx.transport, parse_mode(args["mode"])
    recursive = bool(args.get("recursive"))
    if ctx.check:
        missing = _missing(t, args["paths"])
        if missing:  # an earlier step of this play would make it
            return Outcome(CHANGED, f"would chmod {args['mode']} {', '.join(missing)} (not there "
                           "yet: an earlier step would make it)", {"paths": args["paths"]})
    entries = _modes_now(ctx, args["paths"], recursive)
    umask = current_umask()
    todo = [p for p, (mode, is_dir) in entries.items()
            if apply_mode(changes, mode, is_dir=is_dir, umask=umask) != mode]
    data = {"paths": args["paths"], "to_change": todo}
    if not todo:
        return Outcome(OK, f"{len(entries)} path(s) already {args['mode']}", data)
    shown = ", ".join(todo[:5]) + (" ..." if len(todo) > 5 else "")
    if ctx.check:
        return Outcome(CHANGED, f"would chmod {args['mode']} {shown}", data)
    change_mode(t, args["mode"], args["paths"], recursive=recursive)
    return Outcome(CHANGED, f"chmod {args['mode']} {shown}", data)


def _missing(t: Any, paths: list[str]) -> list[str]:
    return [p for p in paths if t.stat(host_path(check_path(p), is_local=t.is_local)) is None]


def _modes_now(ctx: HostContext, paths: list[str], recursive: bool) -> dict[str, tuple[int, bool]]:
    """{path: (mode, is_dir)} of the paths (and, when recursive, everything below them)."""
    from opskit.errors import OpskitError

    t = ctx.transport
    real = [host_path(check_path(p), is_local=t.is_local) for p in paths]
    if recursive:
        res = t.run(["find", "--", *real, "-printf", r"%m %y %p\0"]).check(
            "the paths must exist on the host")
        out = {}
        for rec in res.stdout.split("\0"):
            if rec:
                mode, kind, path = rec.split(" ", 2)
                out[path] = (int(mode, 8), kind == "d")
        return out
    out = {}
    for p in real:
        st = t.stat(p)
        if st is None:
            raise OpskitError(f"{ctx.host}: {p} does not exist", "create it in an earlier step")
        out[p] = (stat_mod.S_IMODE(st.mode), st.is_dir)
    return out


ACTIONS = [
    Action("copy", _check_copy, _copy, "copy a file here to the host (sha256-verified)"),
    Action("fetch", _check_fetch, _fetch, "copy a file from the host to here"),
    Action("chmod", _check_chmod, _chmod, "set modes (only where they differ)"),
]
