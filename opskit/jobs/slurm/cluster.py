"""Slurm's commands over the login host's connection (one :class:`Transport`), parsed.

Every command is an argv list (never a pasted string); the script travels on ``sbatch``'s
stdin, so nothing is written on the login host to submit it. No ``sacct``.
"""

from __future__ import annotations

from opskit.errors import JobError
from opskit.hosts.transport import Transport
from opskit.jobs.slurm import parse
from opskit.jobs.slurm.parse import SlurmJob, SlurmNode

TOOLS = ("sbatch", "scontrol", "sinfo", "scancel")
TIMEOUT = 60.0


def require_slurm(t: Transport) -> None:
    """The login host has Slurm's commands on the PATH of a non-interactive SSH command."""
    res = t.run(["sh", "-c", 'for c in "$@"; do command -v "$c" >/dev/null || echo "$c"; done', "sh", *TOOLS],
                timeout=TIMEOUT)
    missing = res.stdout.split()
    if res.exit_code != 0 or missing:
        raise JobError(
            f"{t.host}: no {', '.join(missing) or 'Slurm commands'} on the PATH there "
            "(a login host submits with sbatch, asks scontrol, sinfo, scancel)",
            f"give --host the cluster's login host (where 'ssh {t.host} sbatch --version' works); "
            "if Slurm is installed off the PATH of a non-interactive shell, add it to the PATH in ~/.ssh/environment "
            "or the shell's rc file, or install slurm-client there",
        )


def test_only(t: Transport, options: list[str]) -> str:
    """``sbatch --test-only OPTIONS`` (nothing is submitted): Slurm's own refusal of a
    partition, a GRES, a node count or a time it cannot give, before anything is shipped."""
    res = t.run(["sbatch", "--test-only", *options], stdin=b"#!/bin/sh\ntrue\n", timeout=TIMEOUT)
    if res.exit_code != 0:
        raise refused(t.host, res.stderr)
    return res.stderr.strip()


def refused(host: str, stderr: str) -> JobError:
    return JobError(f"{host}: Slurm refuses the job:\n  " + parse.sbatch_message(stderr).replace("\n", "\n  "),
                    "fix what Slurm names (see 'sinfo -s' for partitions, 'sinfo -o \"%P %G\"' for GRES "
                    "on the login host); nothing was submitted")


def nodes(t: Transport) -> list[SlurmNode]:
    res = t.run(["sinfo", "-h", "-N", "-o", parse.SINFO_FORMAT], timeout=TIMEOUT)
    res.check(f"sinfo failed on {t.host}: is slurmctld reachable from there?")
    return parse.parse_sinfo(res.stdout)


def submit(t: Transport, script: str) -> tuple[str, str]:
    """``sbatch --parsable`` with the script on stdin -> (job ID, cluster)."""
    res = t.run(["sbatch", "--parsable"], stdin=script.encode(), timeout=TIMEOUT)
    if res.exit_code != 0:
        raise refused(t.host, res.stderr)
    return parse.parse_parsable(res.stdout)


def job(t: Transport, job_id: str) -> SlurmJob | None:
    """The job as Slurm knows it now; None once it has forgotten it (after MinJobAge)."""
    res = t.run(["scontrol", "-o", "show", "job", job_id], timeout=TIMEOUT)
    if res.exit_code != 0:
        if "Invalid job id" in res.stderr:
            return None
        res.check(f"scontrol failed on {t.host}: is slurmctld reachable from there?")
    return parse.parse_jobs(res.stdout).get(job_id)


def jobs(t: Transport) -> dict[str, SlurmJob]:
    """Every job Slurm knows now."""
    res = t.run(["scontrol", "-o", "show", "job"], timeout=TIMEOUT)
    res.check(f"scontrol failed on {t.host}: is slurmctld reachable from there?")
    return parse.parse_jobs(res.stdout)


def signal(t: Transport, job_id: str, sig: str | None) -> None:
    """``scancel --signal=SIG JOB`` (the job's steps: each node's task; the batch script goes
    on and writes the sentinel), or ``scancel JOB`` (Slurm ends it all) when ``sig`` is None."""
    argv = ["scancel", *([f"--signal={sig}"] if sig else []), job_id]
    res = t.run(argv, timeout=TIMEOUT)
    if res.exit_code != 0 and "already completing or completed" not in res.stderr:
        raise JobError(f"{t.host}: {' '.join(argv)} failed: {parse.sbatch_message(res.stderr)}")


def read_from(t: Transport, path: str, offset: int, limit: int = 8 << 20) -> bytes:
    """Bytes of a file on the host from ``offset`` (b"" when it is not there yet)."""
    if t.stat(path) is None:
        return b""
    with t.open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(limit)


def lost_nodes(t: Transport, names: list[str]) -> list[str]:
    """Those of ``names`` that Slurm says are down or not responding, with their state."""
    wanted = set(names)
    return sorted({f"{n.name} ({n.state}{n.flags})" for n in nodes(t)
                   if n.name in wanted and (not n.responding or n.state in ("down", "fail", "failing"))})
