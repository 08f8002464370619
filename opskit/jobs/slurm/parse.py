"""What Slurm's commands print, parsed (Slurm 22.05 formats; no ``sacct``).

- ``sbatch --parsable``: ``JOBID`` or ``JOBID;CLUSTER`` (src/sbatch/sbatch.c);
- ``scontrol -o show job [ID]``: one line of ``Key=Value`` per job (src/api/job_info.c); the
  ``Reason`` has its spaces replaced by ``_``; ``No jobs in the system`` when there are none;
- ``sinfo -h -N -o '%N|%P|%T|%G|%c'``: one line per node and partition; the default partition
  carries a ``*``; a node state may end in a flag (``*`` not responding, ``~`` powered off,
  ``#``, ``!``, ``%``, ``$``, ``@``, ``^``, ``-``) (src/common/slurm_protocol_defs.c);
- job states (``job_state_string``) mapped onto opskit's words, pending reasons
  (``job_reason_string``) explained in words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from opskit.errors import JobError

SINFO_FORMAT = "%N|%P|%T|%G|%c"
NODE_FLAGS = "*~#!%$@^-+"

# Slurm's job states -> opskit's words (the same as for a container: running, exited, failed,
# interrupted, oom-killed) plus pending, lost (a node failed), timeout, unknown.
STATES = {
    "PENDING": "pending", "CONFIGURING": "running", "RUNNING": "running", "COMPLETING": "running",
    "SUSPENDED": "suspended", "STOPPED": "suspended", "RESIZING": "running", "SIGNALING": "running",
    "STAGE_OUT": "running", "REQUEUED": "pending", "REQUEUE_HOLD": "pending", "REQUEUE_FED": "pending",
    "RESV_DEL_HOLD": "pending", "SPECIAL_EXIT": "failed", "REVOKED": "interrupted",
    "COMPLETED": "exited", "CANCELLED": "interrupted", "FAILED": "failed", "TIMEOUT": "timeout",
    "NODE_FAIL": "lost", "PREEMPTED": "interrupted", "BOOT_FAIL": "failed", "DEADLINE": "timeout",
    "OUT_OF_MEMORY": "oom-killed",
}
ACTIVE = {"pending", "running", "suspended"}

# Why a job waits (or ended), in words. Slurm's own name is always shown beside these.
REASONS = {
    "None": "",
    "Resources": "waiting for resources: the nodes or GPUs it asks for are in use",
    "Priority": "other jobs come first (higher priority) in this partition",
    "Dependency": "waits for another job it depends on",
    "DependencyNeverSatisfied": "a job it depends on ended in a way that never satisfies it",
    "ReqNodeNotAvail": "a node it needs is not available (down, drained or reserved)",
    "NodeDown": "a node it needs (or ran on) is down",
    "PartitionDown": "its partition is down",
    "PartitionInactive": "its partition is inactive",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows or has",
    "PartitionTimeLimit": "its --time is over the partition's time limit",
    "BeginTime": "its start time is still in the future",
    "JobHeldUser": "held by its user (scontrol release JOBID)",
    "JobHeldAdmin": "held by an administrator",
    "Reservation": "waits for its reservation to start",
    "BadConstraints": "no node satisfies what it asks for (constraints, GRES, memory)",
    "Licenses": "waits for licenses",
    "Prolog": "its prolog runs on the nodes",
    "Cleaning": "its nodes are being cleaned up after a previous job",
    "SchedDefer": "the scheduler has deferred it",
    "FrontEndDown": "no front end node is available",
    "InvalidAccount": "its account is invalid",
    "InvalidQOS": "its QOS is invalid",
    "NonZeroExitCode": "it exited with a non-zero exit code",
    "JobLaunchFailure": "Slurm could not launch it on its nodes",
    "SystemFailure": "a failure of Slurm, the file system or the network",
    "TimeLimit": "it ran into its time limit",
    "InactiveLimit": "it reached the system's inactivity limit",
    "OutOfMemory": "it ran out of memory",
}


@dataclass
class SlurmNode:
    name: str
    partition: str  # without the default mark
    default: bool  # the partition is the default one
    state: str  # the base state, lower case: idle, mixed, allocated, down, drained, ...
    flags: str  # the state's flag characters ("*": not responding)
    gpus: int
    cpus: int

    @property
    def responding(self) -> bool:
        return "*" not in self.flags

    @property
    def usable(self) -> bool:
        return self.responding and self.state in ("idle", "mixed", "allocated", "completing", "planned")

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SlurmJob:
    """One job as ``scontrol -o show job`` shows it (the fields opskit reads)."""

    job_id: str
    name: str
    slurm_state: str  # PENDING, RUNNING, COMPLETED, ...
    reason: str  # Slurm's reason, spaces restored: "Resources", "ReqNodeNotAvail, UnavailableNodes:n2"
    partition: str = ""
    nodes: str = ""  # the node list as Slurm writes it (slurm-node[1-2]); "(null)" -> ""
    batch_host: str = ""
    exit_code: int | None = None
    signal: int | None = None
    start: str = ""
    end: str = ""
    stdout: str = ""
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return STATES.get(self.slurm_state, "unknown")

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def reason_words(self) -> str:
        return reason_words(self.reason)

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "fields"}
        return {**d, "state": self.state, "reason_words": self.reason_words()}


def parse_parsable(stdout: str) -> tuple[str, str]:
    """``sbatch --parsable``'s answer -> (job ID, cluster or "")."""
    line = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    job_id, _, cluster = line.partition(";")
    if not job_id.isdigit():
        raise JobError(f"sbatch --parsable answered {stdout.strip()!r}, not a job ID",
                       "check the login host's sbatch (opskit needs Slurm's own)")
    return job_id, cluster


_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=")


def parse_kv_line(line: str) -> dict[str, str]:
    """``Key=Value Key2=Value two`` -> dict; a value runs until the next `` Key=``."""
    marks = list(_KEY.finditer(line))
    out: dict[str, str] = {}
    for m, nxt in zip(marks, [*marks[1:], None], strict=True):
        end = nxt.start() if nxt is not None else len(line)
        out.setdefault(m.group(1), line[m.end():end].strip())
    return out


def _null(value: str) -> str:
    return "" if value in ("(null)", "None", "Unknown", "N/A") else value


def parse_jobs(text: str) -> dict[str, SlurmJob]:
    """``scontrol -o show job`` (all jobs, or one) -> {job ID: SlurmJob}."""
    jobs: dict[str, SlurmJob] = {}
    for line in text.splitlines():
        if not line.startswith("JobId="):
            continue
        f = parse_kv_line(line)
        code, _, sig = f.get("ExitCode", "").partition(":")
        job = SlurmJob(
            job_id=f["JobId"], name=f.get("JobName", ""), slurm_state=f.get("JobState", "").split()[0] if
            f.get("JobState") else "", reason=f.get("Reason", "").replace("_", " "),
            partition=f.get("Partition", ""), nodes=_null(f.get("NodeList", "")),
            batch_host=_null(f.get("BatchHost", "")), exit_code=int(code) if code.isdigit() else None,
            signal=int(sig) if sig.isdigit() else None, start=_null(f.get("StartTime", "")),
            end=_null(f.get("EndTime", "")), stdout=_null(f.get("StdOut", "")), fields=f,
        )
        jobs[job.job_id] = job
    return jobs


def reason_words(reason: str) -> str:
    """Slurm's reason and what it means: ``Resources: waiting for resources: ...``;
    ``ReqNodeNotAvail, UnavailableNodes:n2`` names the nodes; an unknown one is shown as is."""
    if not reason or reason == "None":
        return ""
    head, _, rest = reason.partition(",")
    head = head.strip()
    words = REASONS.get(head)
    if words is None and head.startswith(("QOS", "Assoc")):
        words = "a limit of your account or QOS"
    extra = rest.strip()
    if extra.startswith("UnavailableNodes:"):
        extra = "unavailable: " + extra.split(":", 1)[1]
    text = f"{head}: {words}" if words else head
    return f"{text} ({extra})" if extra else text


def _gpus(gres: str) -> int:
    """``gpu:2``, ``gpu:a100:4(S:0-1)``, ``gpu:2,shard:4``, ``(null)`` -> the GPU count."""
    total = 0
    for item in gres.split(","):
        item = re.sub(r"\(.*?\)", "", item).strip()
        parts = item.split(":")
        if parts[0] == "gpu" and len(parts) >= 2 and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def parse_sinfo(text: str) -> list[SlurmNode]:
    """``sinfo -h -N -o '%N|%P|%T|%G|%c'`` -> one SlurmNode per node and partition."""
    nodes = []
    for line in text.splitlines():
        cols = [c.strip() for c in line.split("|")]
        if len(cols) != 5 or not cols[0]:
            continue
        name, part, state, gres, cpus = cols
        base = state.rstrip(NODE_FLAGS)
        nodes.append(SlurmNode(name, part.rstrip("*"), part.endswith("*"), base.lower(),
                               state[len(base):], _gpus(gres), int(cpus) if cpus.isdigit() else 0))
    return nodes


def partition_nodes(nodes: list[SlurmNode], partition: str | None) -> tuple[str, list[SlurmNode]]:
    """The partition asked for (else the default) and its nodes; an error naming the
    partitions there are when it does not exist."""
    names = sorted({n.partition for n in nodes})
    if partition is None:
        defaults = sorted({n.partition for n in nodes if n.default})
        if not defaults:
            raise JobError(f"Slurm has no default partition here (partitions: {', '.join(names) or 'none'})",
                           "name one with --partition")
        partition = defaults[0]
    mine = [n for n in nodes if n.partition == partition]
    if not mine:
        shown = ", ".join(f"{p} (default)" if any(n.default and n.partition == p for n in nodes) else p
                          for p in names)
        raise JobError(f"Slurm has no partition {partition!r} (sinfo lists: {shown or 'none'})",
                       "name one of those with --partition, or leave --partition out for the default")
    return partition, mine


def sbatch_message(stderr: str) -> str:
    """Slurm's own error lines (``sbatch: error: ...``), the prefix kept: what the user sees
    when running sbatch by hand."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return "\n".join(errors or lines[-3:]) or "(sbatch printed nothing)"


def expand_hostlist(text: str) -> list[str]:
    """A Slurm host list (``n[1-3,5],gpu07``) -> names, as ``scontrol show hostnames`` does
    (one bracket group per name; zero padding kept)."""
    out: list[str] = []
    for item in re.findall(r"[^,\[]+(?:\[[^\]]*\])?[^,]*", text):
        m = re.fullmatch(r"(.*?)\[([^\]]*)\](.*)", item)
        if not m:
            out.append(item)
            continue
        head, ranges, tail = m.groups()
        for r in ranges.split(","):
            lo, _, hi = r.partition("-")
            for i in range(int(lo), int(hi or lo) + 1):
                out.append(f"{head}{str(i).zfill(len(lo))}{tail}")
    return [x for x in out if x]
