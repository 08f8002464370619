"""The run's containers left on its nodes once its Slurm job has ended, removed (``cancel`` and
``collect`` do it where opskit reaches the nodes over SSH).

Each node's task stops its container with ``docker stop -t`` within Slurm's KillWait, and
the engine finishes a stop whose client is killed (measured on Docker 20.10), so a task Slurm
SIGKILLs KillWait seconds after its SIGTERM leaves no container running. It can leave one
stopped (killed between the stop and its ``docker rm``; not ``--rm``, so that the exit code
stays readable), or, killed before it could ask the engine to stop it at all (an OOM kill of
the task, a node's slurmstepd killed), running. The sweep finds them by their labels
(``opskit.run``, ``opskit.slurm_job``), never by name, and removes them, running or not (a
job Slurm has ended owns no GPUs: a container still on them would double-book them).
"""

from __future__ import annotations

from opskit.errors import OpskitError
from opskit.jobs.slurm.follow import SlurmRun
from opskit.jobs.slurm.parse import expand_hostlist

TIMEOUT = 120.0


GONE = ("No such container", "is already in progress")  # the node task's own docker rm got there first
STATES = ("created", "restarting", "running", "paused", "exited", "dead")  # all but "removing"


def leftover_filters(run_id: str, job_id: str) -> list[str]:
    """``docker ps`` filters of the run's containers (labels; any state but being removed)."""
    states = [a for s in STATES for a in ("--filter", f"status={s}")]
    return ["--filter", f"label=opskit.run={run_id}", "--filter", f"label=opskit.slurm_job={job_id}", *states]


def sweep(run: SlurmRun, nodes: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``docker rm -f`` of the run's containers on each of ``nodes`` (a Slurm host list):
    ({node: container IDs removed}, {node: why it could not be checked})."""
    removed: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    for node in expand_hostlist(nodes):
        try:
            t = run.transport(node)
            found = t.run(["docker", "ps", "-aq", *leftover_filters(run.run_id, run.job_id)], timeout=TIMEOUT)
            found.check("can this user reach the node's Docker engine?")
            ids = found.stdout.split()
            if ids:
                rm = t.run(["docker", "rm", "-f", *ids], timeout=TIMEOUT)
                bad = [ln for ln in rm.stderr.splitlines() if ln.strip() and not any(g in ln for g in GONE)]
                if rm.exit_code != 0 and bad:
                    rm.check()
                removed[node] = ids
        except (OpskitError, OSError) as exc:
            errors[node] = str(getattr(exc, "message", None) or exc).splitlines()[0]
    return removed, errors


def said(removed: dict[str, list[str]], errors: dict[str, str]) -> str:
    """One line for the status' detail ("" when there was nothing to say)."""
    parts = [f"removed {len(ids)} container(s) the job left on {node}" for node, ids in sorted(removed.items())]
    parts += [f"could not check {node} for containers the job left ({why})" for node, why in sorted(errors.items())]
    return "; ".join(parts)
