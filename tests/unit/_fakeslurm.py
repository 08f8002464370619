"""A pretend Slurm allocation on this machine, for unit tests of the sbatch script's control
flow: ``srun`` runs the node task once per "node" (SLURM_NODEID, SLURMD_NODENAME set, all at
once, its exit status the highest of the tasks'), ``scontrol show hostnames`` expands the
node list, ``scontrol show config`` says KillWait, ``squeue -o %L`` the time left, ``docker`` runs a pretend training container: it writes into its ``/out`` bind
mount, prints a few lines, and on ``docker stop`` "checkpoints" and exits 143. The real path
is tests/integration/test_run_slurm.py (a real Slurm, real engines)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

SRUN = r"""#!/bin/bash
# fake srun: one task per node of $FAKE_NODES, at once; exit status: the highest
[ "$1" = --ntasks-per-node=1 ] && [ "$2" = --kill-on-bad-exit=1 ] || { echo "srun: unexpected $*" >&2; exit 2; }
shift 2
i=0 pids=()
for node in $FAKE_NODES; do
  SLURM_NODEID=$i SLURMD_NODENAME=$node "$@" &
  pids+=($!) i=$((i + 1))
done
echo "${pids[*]}" >"$FAKE_STATE/tasks.tmp" && mv "$FAKE_STATE/tasks.tmp" "$FAKE_STATE/tasks"  # whole when seen
rc=0
for p in "${pids[@]}"; do wait "$p"; r=$?; [ "$r" -gt "$rc" ] && rc=$r; done
exit "$rc"
"""

SCONTROL = r"""#!/bin/bash
case "$1 $2" in
  "show hostnames") for n in $FAKE_NODES; do echo "$n"; done ;;
  "show config")  # as Slurm 22.05 prints it (FAKE_KILLWAIT empty: a line without it)
    echo "Configuration data as of 2026-11-30T18:00:00"
    echo "KeepAliveTime           = NONE"
    [ -n "${FAKE_KILLWAIT-10}" ] && echo "KillWait                = ${FAKE_KILLWAIT-10} sec"
    echo "KillOnBadExit           = 0" ;;
  *) echo "scontrol: unexpected $*" >&2; exit 2 ;;
esac
"""

SQUEUE = r"""#!/bin/bash
# fake squeue -h -j JOB -o %L: the time left ($FAKE_LEFT)
[ "$*" = "-h -j $SLURM_JOB_ID -o %L" ] || { echo "squeue: unexpected $*" >&2; exit 2; }
echo "${FAKE_LEFT:-UNLIMITED}"
"""

DOCKER = r"""#!/bin/bash
# fake docker: one pretend container per node ($SLURMD_NODENAME), state in $FAKE_STATE/$node
d="$FAKE_STATE/$SLURMD_NODENAME"
cmd=$1; shift
case "$cmd" in
  run)
    [ -n "${FAKE_NO_IMAGE:-}" ] && { echo "Unable to find image '${FAKE_NO_IMAGE}' locally" >&2; exit 125; }
    mkdir -p "$d"; printf '%s\n' "$@" >"$d/argv"
    out=$(printf '%s\n' "$@" | sed -n 's/^type=bind,source=\(.*\),target=\/out$/\1/p')
    (
      put() { echo "$2" >"$d/$1.tmp" && mv "$d/$1.tmp" "$d/$1"; }  # pid, code: never seen empty
      trap 'mkdir -p "$out/checkpoints"; echo ckpt >"$out/checkpoints/last.pt"; echo "checkpointed" >>"$d/log"; put code 143; exit 0' USR1
      put pid "$BASHPID"  # once it is ready for 'docker stop'
      echo "rank $SLURM_NODEID: step 1/2 loss=2.3" >>"$d/log"
      echo "{\"node\": \"$SLURMD_NODENAME\"}" >"$out/summary.json"
      [ -n "${FAKE_ODD:-}" ] && echo odd >"$out/$FAKE_ODD"
      for _ in $(seq 1 "${FAKE_STEPS_S:-0}"); do sleep 0.1; done
      echo "rank $SLURM_NODEID: step 2/2 loss=2.1" >>"$d/log"
      put code "${FAKE_EXIT:-0}"
    ) &
    echo fakeid ;;
  stop) echo "$*" >"$d/stop_args"; while [ ! -e "$d/pid" ]; do sleep 0.05; done; kill -USR1 "$(cat "$d/pid")"; while [ ! -e "$d/code" ]; do sleep 0.05; done ;;
  wait) while [ ! -e "$d/code" ]; do sleep 0.05; done; cat "$d/code" ;;
  logs) while [ ! -e "$d/code" ]; do sleep 0.05; done; [ "$2" = --since ] || cat "$d/log" ;;
  inspect) [ -e "$d/pid" ] && [ ! -e "$d/removed" ] ;;
  rm) [ -e "$d/removed" ] && { echo "Error: No such container: $1" >&2; exit 1; }; echo removed >"$d/removed" ;;
  *) echo "docker: unexpected $cmd" >&2; exit 2 ;;
esac
"""


def fake_cluster(folder: Path, nodes: list[str]) -> dict[str, str]:
    """The fake commands in ``folder/bin``; the environment a script runs in (PATH first)."""
    bin_dir, state = folder / "bin", folder / "state"
    bin_dir.mkdir(parents=True)
    state.mkdir()
    for name, text in (("srun", SRUN), ("scontrol", SCONTROL), ("squeue", SQUEUE), ("docker", DOCKER)):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_NODES": " ".join(nodes),
            "FAKE_STATE": str(state), "SLURM_JOB_ID": "42", "SLURM_JOB_NODELIST": "n[1-2]",
            "SLURM_NNODES": str(len(nodes)), "SLURMD_NODENAME": nodes[0]}
