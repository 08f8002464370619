"""``prune``: opskit's images and run folders older than N days, off a host.

``prune: {images: ['opskit-deps:*', 'opskit-train:*'], run_folders: true, older_than_days: 14}``
lists the images whose ``REPO:TAG`` matches a pattern (shell-style) and that were made more
than N days ago, and the folders under ``~/.opskit/runs`` not modified for N days whose run
has no running container. In ``--check`` it lists them; otherwise ``docker image rm`` (never
``-f``: an image a container uses stays, and is named) and ``rm -rf`` of those folders. A
second run finds nothing left: ``ok``.
"""

from __future__ import annotations

import fnmatch
import json
import time
from datetime import datetime
from typing import Any

from opskit.jobs.spec import HOST_RUNS_DIR, LABEL_RUN
from opskit.playbooks.actionbase import (
    CHANGED,
    OK,
    Action,
    HostContext,
    Outcome,
    bad,
    mapping_args,
    names_or_template,
)

DAY = 86400.0
EXAMPLE = "{images: ['opskit-deps:*'], run_folders: true, older_than_days: 14}"


def _check(args: Any, where: str) -> dict:
    args = mapping_args(args, where, "prune", required=("older_than_days",),
                        optional=("images", "run_folders"), example=EXAMPLE)
    images = args.get("images") or []
    if not names_or_template(images):
        raise bad(where, "prune", "images must be a list of patterns", EXAMPLE)
    if not images and not args.get("run_folders"):
        raise bad(where, "prune", "nothing to prune: give images or run_folders: true", EXAMPLE)
    return {"images": images, "run_folders": bool(args.get("run_folders")),
            "older_than_days": args["older_than_days"]}


def parse_created(text: str) -> float | None:
    """``docker image ls``'s CreatedAt (``2026-11-20 10:00:00 +0000 UTC``) -> epoch seconds."""
    try:
        return datetime.strptime(" ".join(text.split()[:3]), "%Y-%m-%d %H:%M:%S %z").timestamp()
    except ValueError:
        return None


def old_images(lines: str, patterns: list[str], cutoff: float) -> list[dict]:
    """Rows of ``docker image ls --format '{{json .}}'`` matching a pattern, made before
    ``cutoff`` (pure)."""
    out = []
    for line in lines.splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        ref = f"{row.get('Repository')}:{row.get('Tag')}"
        created = parse_created(row.get("CreatedAt", ""))
        if any(fnmatch.fnmatchcase(ref, p) for p in patterns) and created is not None and created < cutoff:
            out.append({"ref": ref, "id": row.get("ID"), "size": row.get("Size"),
                        "created": row.get("CreatedAt")})
    return out


def _days(args: dict) -> float:
    value = args["older_than_days"]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"older_than_days {value!r} is not a number")
    days = float(value)
    if days < 0:
        raise ValueError("older_than_days must be 0 or more")
    return days


def _images(ctx: HostContext, args: dict, cutoff: float) -> list[dict]:
    if not args["images"]:
        return []
    if not isinstance(args["images"], list) or not all(isinstance(p, str) for p in args["images"]):
        raise ValueError(f"prune: images {args['images']!r} is not a list of patterns")
    res = ctx.transport.run(["docker", "image", "ls", "--format", "{{json .}}"]).check(
        "the login user must be able to use the host's engine")
    return old_images(res.stdout, args["images"], cutoff)


def _folders(ctx: HostContext, days: float) -> list[str]:
    t = ctx.transport
    if t.stat(HOST_RUNS_DIR) is None:
        return []
    found = t.run(["find", HOST_RUNS_DIR, "-mindepth", "1", "-maxdepth", "1", "-type", "d",
                   "-mmin", f"+{int(days * 1440)}", "-print0"]).check()
    folders = [p for p in found.stdout.split("\0") if p]
    if not folders:
        return []
    running = t.run(["docker", "ps", "--format", "{{.Label \"" + LABEL_RUN + "\"}}"])
    busy = set(running.stdout.split()) if running.ok else None
    if busy is None:  # no engine answer: nothing is known to be idle
        return []
    return [p for p in folders if p.rsplit("/", 1)[-1] not in busy]


def _prune(ctx: HostContext, args: dict) -> Outcome:
    days = _days(args)
    cutoff = time.time() - days * DAY
    images = _images(ctx, args, cutoff)
    folders = _folders(ctx, days) if args["run_folders"] else []
    data = {"images": images, "run_folders": folders}
    what = [i["ref"] + f" ({i['size']})" for i in images] + folders
    if not what:
        return Outcome(OK, f"nothing older than {days:g} days", data)
    if ctx.check:
        return Outcome(CHANGED, "would remove " + ", ".join(what), data)
    kept = []
    for img in images:
        res = ctx.transport.run(["docker", "image", "rm", img["ref"]])
        if not res.ok:
            kept.append(f"{img['ref']}: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.exit_code}")
    for folder in folders:
        ctx.transport.run(["rm", "-rf", "--", folder]).check()
    data["kept"] = kept
    gone = len(what) - len(kept)
    if kept and not gone:  # in use by a container: kept, as docker image rm without -f keeps it
        return Outcome(OK, "nothing removed; kept " + "; ".join(kept), data)
    return Outcome(CHANGED, f"removed {gone}: " + ", ".join(what)[:400]
                   + (f"; kept {'; '.join(kept)}" if kept else ""), data)


ACTIONS = [Action("prune", _check, _prune, "remove opskit images and run folders older than N days")]
