"""The sentinel JSON an opskit sbatch script writes at the end of the job, whatever the end.

``RUN_DIR/opskit-sentinel.json`` (written to a temp name, then renamed)::

    {"format": "opskit-slurm-sentinel/1", "run_id": "...", "slurm_job_id": "42",
     "exit_code": 0, "started": "2026-11-30T18:00:00Z", "finished": "2026-11-30T18:05:00Z",
     "batch_host": "node1", "nodes": "node[1-2]",
     "files": {"results/summary.json": "<sha256>", ...}, "unlisted": 0,
     "node_exits": {"node1": 0, "node2": 0}, "ended": ""}

``ended``: ``time-limit`` when the nodes were stopped by the ``--time`` warning
(``#SBATCH --signal=TERM@N``; then Slurm ends the job TIMEOUT). ``exit_code``: a node's own failure wins over 143 (the others stopped because of it), else
srun's. ``node_exits``: each node's container exit code, as the batch host sees them (all of
them on a shared folder, its own when node-local). ``files``: every regular file under ``results/`` and ``nodes/`` on the batch host (the shared
folder: every node's), hashed with ``sha256sum`` when the nodes had ended. ``unlisted``: files
whose names cannot be written into JSON by the shell (a quote, a backslash, a control
character); collect lists those as not collected. Once Slurm has forgotten the job (after
``MinJobAge``) the sentinel is how opskit knows how it ended; no ``sacct``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from opskit.errors import JobError

SENTINEL = "opskit-sentinel.json"
FORMAT = "opskit-slurm-sentinel/1"
SHA256 = re.compile(r"^[0-9a-f]{64}$")

_WRITER = r"""opskit_sentinel() {  # $1 exit code, $2 started, $3 finished, $4 how it ended: RUN_DIR/SENTINEL
  local tmp="$RUN_DIR/.SENTINEL.tmp"
  {
    printf '{"format": "FORMAT", "run_id": "%s", "slurm_job_id": "%s", "exit_code": %d, ' \
      "$RUN_ID" "${SLURM_JOB_ID:-}" "$1"
    printf '"started": "%s", "finished": "%s", "batch_host": "%s", "nodes": "%s", "files": {' \
      "$2" "$3" "${SLURMD_NODENAME:-$(hostname -s)}" "${SLURM_JOB_NODELIST:-}"
    (cd "$RUN_DIR" && find results nodes -type f -print0 2>/dev/null | LC_ALL=C sort -z \
      | xargs -0 -r sha256sum -- 2>/dev/null) | {
      sep="" skipped=0
      while IFS= read -r line; do
        sum=${line%% *} name=${line#*  }
        case "$sum$name" in
          \\*|*[\"\\]*|*[[:cntrl:]]*) skipped=$((skipped + 1)); continue ;;
        esac
        printf '%s"%s": "%s"' "$sep" "$name" "$sum"; sep=", "
      done
      printf '}, "unlisted": %d' "$skipped"
    }
    local f n c sep=""
    printf ', "node_exits": {'
    for f in "$RUN_DIR"/.exit-*; do
      [ -e "$f" ] || continue
      n=${f##*/.exit-} c=$(cat "$f")
      case "$n" in ""|*[!A-Za-z0-9._-]*) continue ;; esac
      case "$c" in ""|*[!0-9]*) continue ;; esac
      printf '%s"%s": %s' "$sep" "$n" "$c"; sep=", "
    done
    printf '}, "ended": "%s"}\n' "${4:-}"
  } >"$tmp" && mv -f "$tmp" "$RUN_DIR/SENTINEL"
}"""


def shell_writer() -> str:
    """The shell function the script calls last: ``opskit_sentinel RC STARTED FINISHED``."""
    return _WRITER.replace("SENTINEL", SENTINEL).replace("FORMAT", FORMAT)


@dataclass
class Sentinel:
    run_id: str
    slurm_job_id: str
    exit_code: int
    started: str
    finished: str
    batch_host: str
    nodes: str
    files: dict[str, str] = field(default_factory=dict)
    unlisted: int = 0
    node_exits: dict[str, int] = field(default_factory=dict)
    ended: str = ""  # "time-limit": the nodes stopped at the --time warning, Slurm ended it TIMEOUT

    @property
    def state(self) -> str:
        """opskit's word for the end: exited, interrupted (SIGTERM: 143), oom-killed (137), failed;
        timeout when the nodes were stopped for the job's --time limit."""
        if self.ended == "time-limit":
            return "timeout"
        return {0: "exited", 143: "interrupted", 137: "oom-killed"}.get(self.exit_code, "failed")

    def to_dict(self) -> dict:
        return {**self.__dict__, "state": self.state}


def parse_sentinel(data: bytes, where: str, run_id: str, job_id: str | None = None) -> Sentinel:
    """The sentinel's bytes -> Sentinel; an error naming ``where`` when it is not one of this
    run's (another run's, a truncated file, a hash that is not a sha256)."""
    try:
        doc = json.loads(data.decode("utf-8", "replace"))
    except ValueError as exc:
        raise JobError(f"{where}: not a valid sentinel ({exc})",
                       "the job's script was interrupted while writing it; see the job's output file") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise JobError(f"{where}: not an opskit sentinel (format {doc.get('format') if isinstance(doc, dict) else '?'!r})")
    if doc.get("run_id") != run_id or (job_id and str(doc.get("slurm_job_id")) != str(job_id)):
        raise JobError(f"{where}: the sentinel of run {doc.get('run_id')} (Slurm job {doc.get('slurm_job_id')}), "
                       f"not of run {run_id} (Slurm job {job_id or '?'})",
                       "two runs share this folder; give each its own --run-id")
    files = doc.get("files") or {}
    bad = [p for p, s in files.items() if not isinstance(s, str) or not SHA256.match(s)]
    if bad:
        raise JobError(f"{where}: the manifest's hash of {bad[0]!r} is not a sha256")
    return Sentinel(str(doc["run_id"]), str(doc.get("slurm_job_id", "")), int(doc.get("exit_code", -1)),
                    str(doc.get("started", "")), str(doc.get("finished", "")), str(doc.get("batch_host", "")),
                    str(doc.get("nodes", "")), dict(files), int(doc.get("unlisted") or 0),
                    {str(k): int(v) for k, v in (doc.get("node_exits") or {}).items()}, str(doc.get("ended") or ""))
