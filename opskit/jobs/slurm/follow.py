"""A submitted Slurm run, from its run card: status, output (``logs [-f]``), ``cancel``.

Status: ``scontrol -o show job`` while Slurm knows the job, then the sentinel the script wrote
(:mod:`.sentinel`); no ``sacct``. When neither says how it ended, what Slurm said last is kept,
and the nodes Slurm reports down are named. Output: the job's Slurm output file
(``RUN_DIR/slurm-JOBID.out``), read from the shared folder through the login host, or from
the batch host (node-local); following re-reads from the start after a lost connection
(``logs -f`` again), as for SSH hosts.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opskit import events as ev
from opskit.errors import HostError, JobError
from opskit.hosts.spec import HostSpec
from opskit.hosts.transport import Transport
from opskit.jobs.runner import Detached
from opskit.jobs.slurm import cluster
from opskit.jobs.slurm.parse import SlurmJob, expand_hostlist
from opskit.jobs.slurm.sentinel import SENTINEL, Sentinel, parse_sentinel
from opskit.jobs.store import RunStore

MAX_LINE = 64 << 10
SLURM_ENDS = ("lost", "timeout", "oom-killed")  # ends Slurm decides: its word wins over the script's exit code
_LABEL = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*/node\d+): (.*)$", re.S)
_TASK = re.compile(r"^opskit\[([A-Za-z0-9][A-Za-z0-9._-]*)\]: (.*)$", re.S)


def log_event(host: str, run_id: str, line: str) -> ev.LogLine:
    """A line of the output file as a LogLine of the node it came from (``NODE/nodeN: text``:
    its container's lines; ``opskit[NODE]: text``: its task's own, shown as ``[NODE] opskit: text``),
    else (the batch script's lines, Slurm's) of the host the file was read from."""
    m = _LABEL.match(line)
    if m:
        return ev.LogLine(m.group(1), run_id, m.group(2))
    m = _TASK.match(line)
    return ev.LogLine(m.group(1), run_id, f"opskit: {m.group(2)}") if m else ev.LogLine(host, run_id, line)


def is_slurm(card: dict | None) -> bool:
    return bool(card and card.get("scheduler") == "slurm" and (card.get("slurm") or {}).get("job_id"))


@dataclass
class SlurmStatus:
    run_id: str
    host: str  # the login host
    job_id: str
    state: str  # pending | running | exited | failed | interrupted | lost | timeout | oom-killed | unknown
    slurm_state: str  # Slurm's word ("" once Slurm has forgotten the job)
    reason: str  # Slurm's reason, in words
    exit_code: int | None
    nodes: str
    batch_host: str
    started: str
    finished: str
    detail: str = ""  # how the end is known, a lost node, ...
    sentinel: Sentinel | None = None

    @property
    def active(self) -> bool:
        return self.state in ("pending", "running", "suspended")

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "sentinel"}
        return {**d, "sentinel": self.sentinel.to_dict() if self.sentinel else None}


class SlurmRun:
    """One connection to the login host (and, node-local, to the batch host), opened on use."""

    def __init__(self, card: dict, connect: Callable[[HostSpec], Transport],
                 resolve: Callable[[list[str]], list[HostSpec]], transports: dict[str, Transport] | None = None,
                 local: Path | None = None):
        self.card, self.slurm = card, card["slurm"]
        self.run_id, self.job_id = card["run_id"], str(self.slurm["job_id"])
        self.connect, self.resolve = connect, resolve
        self.local = local  # runs/RUN/ here: the collected sentinel, once the cluster's copy is gone
        self._t: dict[str, Transport] = {} if transports is None else transports  # by host; shareable
        self.last: SlurmJob | None = None

    def __enter__(self) -> SlurmRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for t in self._t.values():
            t.close()
        self._t.clear()

    def transport(self, host: str) -> Transport:
        if host not in self._t:
            self._t[host] = self.connect(self.resolve([host])[0])
        return self._t[host]

    @property
    def login(self) -> Transport:
        return self.transport(self.slurm["login"])

    @property
    def run_dir(self) -> str:
        return str(self.slurm["run_dir"])

    @property
    def output(self) -> str:
        return f"{self.run_dir}/slurm-{self.job_id}.out"

    def files_host(self, job: SlurmJob | None = None) -> str:
        """Where the run's folder is read: the login host (shared folder) or the batch host."""
        if self.slurm.get("shared"):
            return str(self.slurm["login"])
        batch = (job.batch_host if job else "") or self.slurm.get("batch_host") or ""
        if not batch:
            raise JobError(f"run {self.run_id}: Slurm job {self.job_id} has no batch host yet (node-local results)",
                           "wait until it runs: 'opskit jobs' shows its state")
        return batch

    def job(self) -> SlurmJob | None:
        job = self.mine(cluster.job(self.login, self.job_id))
        if job is not None:
            self.last = job
        return job

    def mine(self, job: SlurmJob | None) -> SlurmJob | None:
        """``job`` when it is this run's (a recreated cluster numbers its jobs from 1 again)."""
        return job if job is None or not job.name or job.name == f"opskit-{self.run_id}" else None

    def sentinel(self, job: SlurmJob | None) -> Sentinel | None:
        try:
            host = self.files_host(job)
        except JobError:
            return None
        data = cluster.read_from(self.transport(host), f"{self.run_dir}/{SENTINEL}", 0)
        if not data:
            return None
        return parse_sentinel(data, f"{host}:{self.run_dir}/{SENTINEL}", self.run_id, self.job_id)

    def collected(self) -> Sentinel | None:
        """The sentinel collected here (runs/RUN/), when it still matches the sha256 the run
        card recorded at collect; None when there is none."""
        if self.local is None:
            return None
        path = Path(self.local) / SENTINEL
        try:
            data = path.read_bytes()
        except OSError:
            return None
        want = ((self.card.get("collected") or {}).get("files") or {}).get(SENTINEL)
        if want and hashlib.sha256(data).hexdigest() != want:
            return None
        return parse_sentinel(data, str(path), self.run_id, self.job_id)

    def end_record(self, job: SlurmJob | None) -> tuple[Sentinel | None, str]:
        """The job's sentinel on the cluster, else the copy collected here: (sentinel, how known)."""
        try:
            sent = self.sentinel(job)
        except HostError:
            sent, kept = None, self.collected()
            if kept is None:
                raise
        if sent is not None:
            return sent, "from the job's sentinel"
        kept = self.collected()
        if kept is None:
            return None, ""
        return kept, (f"from the sentinel collected here (runs/{self.run_id}/{SENTINEL}); the cluster's copy "
                      f"({self.run_dir}) is gone")

    def status(self) -> SlurmStatus:
        return self.status_of(self.job())

    def status_of(self, job: SlurmJob | None) -> SlurmStatus:
        """The status from ``job`` as Slurm has just given it (None: Slurm no longer knows it)."""
        if job is not None and job.active:
            return self.from_job(job, "")
        sent, how = self.end_record(job or self.last)
        if sent is not None and job is not None and job.state in SLURM_ENDS:  # Slurm ended it: say so
            st = self.from_job(job, "the job's sentinel was written as Slurm ended the job")
            st.sentinel = sent
            return st
        seen = self.card.get("slurm_status") or {}  # what Slurm said last, as recorded here
        if sent is not None and job is None and seen.get("state") in SLURM_ENDS:
            return SlurmStatus(**{**seen, "sentinel": sent})
        if sent is not None:
            return SlurmStatus(self.run_id, self.slurm["login"], self.job_id, sent.state,
                               job.slurm_state if job else "", "", sent.exit_code, sent.nodes, sent.batch_host,
                               sent.started, sent.finished, how, sent)
        if job is not None:
            return self.from_job(job, "the job's script wrote no sentinel (Slurm ended it before the script's end)")
        return SlurmStatus(self.run_id, self.slurm["login"], self.job_id, "unknown", "", "", None,
                           self.slurm.get("nodes", ""), self.slurm.get("batch_host", ""), "", "",
                           f"Slurm no longer knows job {self.job_id} and {self.run_dir}/{SENTINEL} is not there: "
                           "the job was killed before its script ended")

    def from_job(self, job: SlurmJob, detail: str) -> SlurmStatus:
        state = job.state
        if not job.active:
            names = expand_hostlist(job.nodes)
            lost = cluster.lost_nodes(self.login, names) if names else []
            if lost:
                state = "lost" if state in ("failed", "lost", "interrupted") else state
                detail = f"node(s) lost: {', '.join(lost)}" + (f"; {detail}" if detail else "")
        code = job.exit_code if not job.active else None
        if code is not None and job.signal:
            code = 128 + job.signal
        return SlurmStatus(self.run_id, self.slurm["login"], self.job_id, state, job.slurm_state,
                           job.reason_words(), code, job.nodes, job.batch_host, job.start, job.end, detail)

    def remember(self, store: RunStore, st: SlurmStatus) -> None:
        """The run card learns the nodes, batch host and state as Slurm gives them."""
        if not store.exists(self.run_id):
            return
        slurm = dict(store.load(self.run_id).get("slurm") or self.slurm)
        if st.nodes:
            slurm["nodes"] = st.nodes
        if st.batch_host:
            slurm["batch_host"] = st.batch_host
        self.slurm.update(slurm)
        store.update(self.run_id, slurm=slurm, state=st.state, exit_code=st.exit_code,
                     slurm_status=st.to_dict())


def output_lines(run: SlurmRun, host: str, offset: int, buf: bytes) -> tuple[list[str], int, bytes]:
    """New whole lines of the output file since ``offset`` (the partial last line kept in ``buf``)."""
    data = cluster.read_from(run.transport(host), run.output, offset)
    buf += data
    *lines, buf = buf.split(b"\n")
    while len(buf) > MAX_LINE:
        lines.append(buf[:MAX_LINE])
        buf = buf[MAX_LINE:]
    return [ln.decode("utf-8", "replace").rstrip("\r") for ln in lines], offset + len(data), buf


def print_output(run: SlurmRun, emit: ev.EventFn) -> None:
    """The job's output so far."""
    host = run.files_host(run.job())
    lines, _, rest = output_lines(run, host, 0, b"")
    for line in lines + ([rest.decode("utf-8", "replace")] if rest else []):
        emit(log_event(host, run.run_id, line))


def follow(run: SlurmRun, store: RunStore, emit: ev.EventFn, poll: float = 2.0) -> SlurmStatus:
    """State changes (a pending reason in words) as steps, the output's lines as they come,
    until the job ends; the end (from the sentinel when there is one) is recorded in the card.
    A lost connection or Ctrl-C: :class:`Detached` (the job goes on)."""
    login = run.slurm["login"]
    try:
        return _follow(run, store, emit, poll)
    except KeyboardInterrupt:
        raise Detached(login, run.run_id, "stopped following (Ctrl-C)", 130) from None
    except (HostError, OSError, EOFError) as exc:
        run.close()
        raise Detached(login, run.run_id, f"lost the connection while following ({getattr(exc, 'message', exc)})",
                       1) from exc


def _follow(run: SlurmRun, store: RunStore, emit: ev.EventFn, poll: float) -> SlurmStatus:
    seen, offset, buf, host = "", 0, b"", ""
    while True:
        st = run.status()
        if st.state != "pending" and not host:
            host = _files_host(run)
        if host:  # the output so far, then the state: an end is said after the lines before it
            lines, offset, buf = output_lines(run, host, offset, buf)
            for line in lines:
                emit(log_event(host, run.run_id, line))
        said = f"{st.slurm_state or st.state}: {st.reason}" if st.reason else (st.slurm_state or st.state)
        if said != seen:
            seen = said
            emit(ev.Step(st.host, f"Slurm job {run.job_id} {said}" + (f" on {st.nodes}" if st.nodes else "")))
            run.remember(store, st)
        if not st.active:
            if buf:
                emit(log_event(host, run.run_id, buf.decode("utf-8", "replace")))
            run.remember(store, st)
            return st
        time.sleep(poll)


def _files_host(run: SlurmRun) -> str:
    try:
        return run.files_host(run.last)
    except JobError:
        return ""


def cancel(run: SlurmRun, store: RunStore, grace: float, poll: float = 1.0) -> SlurmStatus:
    """SIGTERM to every node's task (each stops its container: the training entry
    checkpoints; the script writes the sentinel), then ``scancel`` after ``grace`` seconds
    if the job still runs. A pending job is simply removed."""
    st = run.status()
    if not st.active:
        return st
    if st.state == "pending":
        cluster.signal(run.login, run.job_id, None)
    else:
        cluster.signal(run.login, run.job_id, "TERM")
        deadline = time.monotonic() + grace + 5  # the nodes' own docker stop -t GRACE, then a margin
        while time.monotonic() < deadline and st.active:
            time.sleep(poll)
            st = run.status()
        if st.active:
            cluster.signal(run.login, run.job_id, None)
    st = _settled(run, poll)
    run.remember(store, st)
    return st


def _settled(run: SlurmRun, poll: float, timeout: float = 120.0) -> SlurmStatus:
    """The status once the job has left the active states (the sentinel written, when it was)."""
    end = time.monotonic() + timeout
    st = run.status()
    while st.active and time.monotonic() < end:
        time.sleep(poll)
        st = run.status()
    if st.slurm_state == "COMPLETING" or (st.sentinel is None and st.state != "unknown"):
        time.sleep(poll)  # the script may still be writing the sentinel
        st = run.status()
    return st


