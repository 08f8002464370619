"""The sbatch script opskit submits (pure: rendered here, kept in ``runs/RUN/job.sbatch``).

One task per node (``srun --ntasks-per-node=1``) runs the training image BY ID on the node's
own Docker engine (shipped there before submission), with torchrun's static rendezvous: node
rank ``$SLURM_NODEID``, rank 0 on the allocation's first node (``scontrol show hostnames``),
``--rdzv-id $SLURM_JOB_ID``. The host's network, the run's folder as ``/out`` (rank 0's:
``RUN_DIR/results``, the others': ``RUN_DIR/nodes/NODE``), the same hardening as a single-host
run. A SIGTERM (``scancel --signal=TERM --full``) reaches each node's task, which stops its
container with ``docker stop -t GRACE`` (the training entry checkpoints); the batch script
waits for the nodes, then writes ``RUN_DIR/opskit-sentinel.json`` (:mod:`.sentinel`): exit
code, timestamps, a sha256 manifest of the results, whatever the end.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from opskit.errors import UsageError
from opskit.jobs.launch import PIDS_LIMIT
from opskit.jobs.nodes import torchrun_argv
from opskit.jobs.slurm.sentinel import shell_writer

DEFAULT_PORT = 29400
OUTPUT = "slurm-%j.out"  # in RUN_DIR; Slurm writes the batch script's (and srun's) output there


@dataclass
class SbatchSpec:
    """Everything the script says."""

    run_id: str
    model: str
    train_args: list[str]
    run_dir: str  # absolute; on the shared folder, or node-local (the same path on every node)
    nodes: int
    image_ids: dict[str, str]  # NodeName -> the image's ID on that node's engine
    default_image: str  # for a node not in image_ids (never shipped to: the job fails clearly)
    gpus_per_node: int = 0
    partition: str | None = None
    time: str | None = None
    shm_size: int = 1 << 30
    memory: int | None = None
    port: int = DEFAULT_PORT  # rank 0's rendezvous port is port + (job ID % 1000)
    grace: int = 30
    extra_sbatch: list[str] = field(default_factory=list)
    plan: bool = False  # --plan: shown, not kept (nothing written, shipped or submitted)

    @property
    def warn_s(self) -> int:
        """Seconds before a ``--time`` limit at which the nodes are told to stop: the grace and
        half a minute for the sentinel, at most half the limit."""
        limit = time_seconds(self.time) if self.time else 0
        return max(1, min(int(self.grace) + 30, limit // 2 if limit else int(self.grace) + 30))

    def sbatch_options(self) -> list[str]:
        """The ``#SBATCH`` options (also given to ``sbatch --test-only``)."""
        # --no-requeue: a node lost mid-job ends the job (NODE_FAIL, reported) instead of Slurm
        # running it again from the start over the same folder
        opts = [f"--job-name=opskit-{self.run_id}", f"--nodes={self.nodes}", "--ntasks-per-node=1", "--no-requeue"]
        if self.partition:
            opts.append(f"--partition={self.partition}")
        if self.gpus_per_node:
            opts.append(f"--gres=gpu:{self.gpus_per_node}")
        if self.time:
            # the steps' tasks get SIGTERM this long before the limit (Slurm may send it up to
            # a minute earlier): the containers checkpoint, the sentinel is written in time
            opts += [f"--time={self.time}", f"--signal=TERM@{self.warn_s}"]
        opts.append(f"--output={self.run_dir}/{OUTPUT}")
        return opts + list(self.extra_sbatch)


def check_time(text: str | None) -> str | None:
    """``--time`` in one of Slurm's forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""
    import re

    if text is None:
        return None
    if not re.fullmatch(r"(\d+-)?\d+(:\d+){0,2}", text):
        raise UsageError(f"--time {text!r}: not a Slurm time",
                         "use minutes (30), H:M:S (2:00:00) or D-H:M:S (1-00:00:00), as sbatch --time takes")
    return text


def time_seconds(text: str) -> int:
    """Slurm's ``--time`` forms in seconds (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S)."""
    days, _, rest = text.rpartition("-")
    parts = [int(x) for x in rest.split(":")]
    if days:  # D-H[:M[:S]]
        h, m, sec = (parts + [0, 0])[:3]
    elif len(parts) == 3:  # H:M:S
        h, m, sec = parts
    else:  # M[:S]
        h, m, sec = 0, parts[0], (parts[1] if len(parts) > 1 else 0)
    return int(days or 0) * 86400 + h * 3600 + m * 60 + sec


def _q(value: object) -> str:
    return shlex.quote(str(value))


def docker_argv(spec: SbatchSpec) -> list[str]:
    """The node's ``docker run`` after ``docker run -d``: words quoted here, ``$VARS`` left for
    the node's shell (in double quotes)."""
    mem = [f"--memory={spec.memory}", f"--memory-swap={spec.memory}"] if spec.memory else []
    entry = ["-m", "opskit.train", spec.model, *spec.train_args, "--out", "/out"]
    return [
        '--name "$NAME"', '--label "opskit.run=$RUN_ID"', '--label "opskit.slurm_job=$SLURM_JOB_ID"',
        "--network host", "--init", '--user "$(id -u):$(id -g)"', f"--shm-size {spec.shm_size}", *mem,
        "--cap-drop ALL", "--security-opt no-new-privileges:true", f"--pids-limit {PIDS_LIMIT}",
        '--mount "type=bind,source=$OUT,target=/out"', "-e HOME=/tmp", "-e PYTHONUNBUFFERED=1",
        '-e "OPSKIT_RUN_ID=$RUN_ID"', '-e "OPSKIT_NODE_RANK=$SLURM_NODEID"', '"${GPUS[@]}"',
        "--entrypoint python", '"$IMAGE"', "-m opskit.train.torchrun",
        # the SSH multi-host path's torchrun options (static rendezvous, workers forked warm)
        " ".join(torchrun_argv(nnodes='"$SLURM_NNODES"', nproc=max(1, spec.gpus_per_node),
                               node_rank='"$SLURM_NODEID"', addr='"$OPSKIT_RDZV_ADDR"',
                               port='"$OPSKIT_RDZV_PORT"', run_id='"$SLURM_JOB_ID"')),
        " ".join(_q(a) for a in entry),
    ]


def node_task(spec: SbatchSpec) -> str:
    """What each node runs (``srun ... bash -c "$OPSKIT_NODE_TASK"``)."""
    cases = "\n".join(f"  {_q(node)}) IMAGE={_q(image)} ;;" for node, image in sorted(spec.image_ids.items()))
    run = " \\\n  ".join(docker_argv(spec))
    gpus = ('if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then GPUS=(--gpus "\\"device=$CUDA_VISIBLE_DEVICES\\""); fi'
            if spec.gpus_per_node else "")
    return f"""set -u
umask 077
log() {{ echo "opskit[$SLURMD_NODENAME]: $*" >&2; }}
case "$SLURMD_NODENAME" in
{cases}
  *) IMAGE={_q(spec.default_image)} ;;
esac
if [ "$SLURM_NODEID" = 0 ]; then OUT="$RUN_DIR/results"; else OUT="$RUN_DIR/nodes/$SLURMD_NODENAME"; fi
finish() {{ echo "$1" >"$RUN_DIR/.exit-$SLURMD_NODENAME"; exit "$1"; }}  # the node's own end, for the sentinel
mkdir -p "$OUT" || {{ log "cannot make $OUT"; finish 120; }}
NAME="opskit-run-$RUN_ID"
PREFIX="$SLURMD_NODENAME/node$SLURM_NODEID"
GPUS=()
{gpus}
STOPPING=0 STARTED_C=0 W="" LOGS="" LOGC=""
CODEFILE=$(mktemp)
waiter() {{ docker wait "$NAME" >>"$CODEFILE" 2>/dev/null & W=$!; }}
follow_logs() {{  # sed ignores the step's signals; 'docker logs' cannot (a Go program): restarted after one
  docker logs -f ${{1:+--since "$1"}} "$NAME" 2>&1 | (trap '' TERM INT; exec sed -u "s|^|$PREFIX: |") &
  LOGS=$! LOGC=$(jobs -p %+)
}}
stop() {{
  local since; since=$(date +%s.%N)
  if [ "$STARTED_C" = 1 ]; then  # a step's signal reaches every process: 'docker wait'/'docker logs' anew
    sleep 0.2
    kill -0 "$W" 2>/dev/null || waiter
    kill -0 "$LOGC" 2>/dev/null || follow_logs "$since"
  fi
  [ "$STOPPING" = 1 ] && return 0
  if [ "$STARTED_C" != 1 ]; then STOPPING=pending; return 0; fi  # stopped once it is made and followed
  STOPPING=1
  : >"$RUN_DIR/.stopped-$SLURMD_NODENAME"
  log "SIGTERM: stopping the container (the training entry checkpoints; killed after ${{STOP}}s)"
  # the engine finishes a stop whose client is killed (measured, Docker 20.10): a task SIGKILLed
  # by Slurm KillWait seconds after its SIGTERM leaves no container running; one left stopped
  # (killed before its 'docker rm') is removed by opskit's cancel/collect (opskit.jobs.slurm.sweep)
  docker stop -t "$STOP" "$NAME" >/dev/null 2>&1 &
}}
trap stop TERM INT
log "node $SLURM_NODEID of $SLURM_NNODES: image $IMAGE, rendezvous $OPSKIT_RDZV"
docker run -d \\
  {run} >/dev/null || {{ log "docker run failed (is the image on this node? is its engine up?)"; finish 125; }}
waiter
follow_logs ""
STARTED_C=1
[ "$STOPPING" = pending ] && stop  # the signal came while the container was being made
while :; do
  opskit_wait "$W"
  [ -s "$CODEFILE" ] && break
  kill -0 "$W" 2>/dev/null && continue  # a new 'docker wait' (after a signal)
  docker inspect "$NAME" >/dev/null 2>&1 || break  # removed by someone else
  waiter
done
trap '' TERM INT  # the container has ended: its clean-up is not cut short (a step's signal reaches every process)
CODE=$(head -n 1 "$CODEFILE"); rm -f "$CODEFILE"
[ -n "$CODE" ] || log "the container's exit code was not read (it was removed before 'docker wait' saw it)"
opskit_wait "$LOGS"
docker rm "$NAME" >/dev/null 2>&1  # not --rm: its exit code stays readable until here
log "container exited with ${{CODE:-unknown}}"
finish "${{CODE:-1}}"
"""


WAIT_FN = """opskit_wait() {  # background job $1's exit status, through any trapped signal
  local rc again
  while :; do
    wait "$1"; rc=$?
    if [ "$rc" -gt 128 ] && kill -0 "$1" 2>/dev/null; then continue; fi
    if [ "$rc" -gt 128 ]; then wait "$1" 2>/dev/null; again=$?; [ "$again" -ne 127 ] && rc=$again; fi
    return "$rc"
  done
}"""


# A node's own failure wins over 143 (stopped because another failed). A node that was told to
# stop (its .stopped-NODE marker: cancel, --time warning, a peer's failure) and then ended
# non-zero counts as stopped: its torchrun may fail (exit 1) when its peer stops first.
EXIT_FN = """opskit_exit() {  # the job's exit code from the nodes' own ends
  local rc=$1 f c node bad="" stopped=""
  for f in "$RUN_DIR"/.exit-*; do
    [ -e "$f" ] || continue
    node=${f##*/.exit-}
    c=$(cat "$f")
    case "$c" in 0|"") continue ;; esac
    if [ "$c" = 143 ] || [ -e "$RUN_DIR/.stopped-$node" ]; then stopped=143; else bad=${bad:-$c}; fi
  done
  echo "${bad:-${stopped:-$rc}}"
}"""


def kept(spec: SbatchSpec) -> str:
    """How the script's own comment says where it is kept: --plan writes nothing."""
    return "would be kept, when submitted," if spec.plan else "kept"


STOP_FN = """opskit_stop_timeout() {  # docker stop's -t: --grace, within Slurm's KillWait
  local kw reserve bound stop=$GRACE
  kw=$(scontrol show config 2>/dev/null | sed -n 's/^KillWait *= *\\([0-9][0-9]*\\).*/\\1/p' | head -n 1)
  if [ -z "$kw" ]; then
    echo "opskit: Slurm's KillWait unknown (scontrol show config): the containers get --grace ${GRACE}s to stop" >&2
    echo "$stop"; return 0
  fi
  reserve=$((kw / 4)); [ "$reserve" -lt 3 ] && reserve=3  # the node task's own end after the stop
  bound=$((kw - reserve)); [ "$bound" -lt 1 ] && bound=1
  [ "$stop" -gt "$bound" ] && stop=$bound
  echo "opskit: Slurm's KillWait is ${kw}s (scontrol show config; a step's tasks are killed that long after their SIGTERM): each node's container gets ${stop}s to stop (--grace ${GRACE}s)" >&2
  echo "$stop"
}"""


LEFT_FN = """opskit_left() {  # seconds before the job's time limit (squeue %L), empty when unknown
  local t d=0 s=0 p parts
  t=$(squeue -h -j "$SLURM_JOB_ID" -o %L 2>/dev/null | head -n 1)
  case "$t" in ""|*[!0-9:-]*) return 0 ;; esac
  case "$t" in *-*) d=${t%%-*} t=${t#*-} ;; esac
  IFS=: read -ra parts <<<"$t"
  for p in "${parts[@]}"; do s=$((s * 60 + 10#$p)); done
  echo $((10#$d * 86400 + s))
}"""


def render(spec: SbatchSpec) -> str:
    """The whole sbatch script."""
    head = "\n".join(f"#SBATCH {o}" for o in spec.sbatch_options())
    args = " ".join(_q(a) for a in [spec.model, *spec.train_args])
    return f"""#!/bin/bash
{head}
# opskit run {spec.run_id}: {args}
# Rendered by opskit ({kept(spec)} in runs/{spec.run_id}/job.sbatch); one task per node runs the image by ID.
set -u
umask 077
RUN_ID={_q(spec.run_id)}
RUN_DIR={_q(spec.run_dir)}
GRACE={int(spec.grace)}
WARN={spec.warn_s if spec.time else 0}
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
FIRST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
OPSKIT_RDZV_ADDR="$FIRST"
OPSKIT_RDZV_PORT=$(({int(spec.port)} + SLURM_JOB_ID % 1000))  # jobs sharing a node: their own ports
OPSKIT_RDZV="$OPSKIT_RDZV_ADDR:$OPSKIT_RDZV_PORT"
export RUN_ID RUN_DIR GRACE OPSKIT_RDZV OPSKIT_RDZV_ADDR OPSKIT_RDZV_PORT
{WAIT_FN}
export -f opskit_wait
{EXIT_FN}
{STOP_FN}
{LEFT_FN}
{shell_writer()}
STOP=$(opskit_stop_timeout)
OPSKIT_NODE_TASK=$(cat <<'OPSKIT_TASK'
{node_task(spec)}OPSKIT_TASK
)
export OPSKIT_NODE_TASK STOP
mkdir -p "$RUN_DIR"
echo "opskit: job $SLURM_JOB_ID on $SLURM_JOB_NODELIST, rank 0 on $FIRST, results in $RUN_DIR" >&2
trap 'echo "opskit: SIGTERM: the nodes stop (the training entry checkpoints)" >&2' TERM
srun --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c "$OPSKIT_NODE_TASK" &
opskit_wait $!
RC=$(opskit_exit $?)
ENDED="" LEFT=""
if [ "$WARN" -gt 0 ] && [ -e "$RUN_DIR/.stopped-${{SLURMD_NODENAME:-}}" ]; then  # stopped: by the --time warning?
  LEFT=$(opskit_left)
  [ -n "$LEFT" ] && [ "$LEFT" -le $((WARN + 90)) ] && ENDED=time-limit
fi
opskit_sentinel "$RC" "$STARTED" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$ENDED"
if [ "$ENDED" = time-limit ]; then  # Slurm ends the job at its limit: TIMEOUT, as it should say
  echo "opskit: the --time limit is ${{LEFT}}s away: the nodes checkpointed and stopped, the sentinel is written; Slurm ends the job at its limit (TIMEOUT)" >&2
  sleep $((LEFT + 120)) &
  trap 'kill $! 2>/dev/null; exit "$RC"' TERM
  opskit_wait $!
fi
exit "$RC"
"""
