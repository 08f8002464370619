"""A submitted Slurm run's status, following and cancel (opskit.jobs.slurm.follow, .cluster)
against a fake login host keyed by command: scontrol's answers (22.05 format, as in
test_slurm_parse), sinfo's, the output file and the sentinel as files. The real path is
tests/integration/test_run_slurm.py."""

from __future__ import annotations

import json

import pytest
from test_slurm_parse import NODE_FAIL, PENDING, RUNNING

from opskit import events as ev
from opskit.errors import JobError
from opskit.hosts.spec import HostSpec
from opskit.jobs.slurm import cluster, follow
from opskit.jobs.slurm.sentinel import FORMAT
from opskit.jobs.store import RunStore
from opskit.testing.fake import FakeReply, FakeTransport

RUN_DIR = "/shared/opskit/runs/r1"
GONE = FakeReply(stderr="slurm_load_jobs error: Invalid job id specified\n", exit_code=1)
SINFO = "slurm-node1|gpu*|idle|gpu:2|2\nslurm-node2|gpu*|down*|gpu:2|2\n"


def as_job(line: str, job_id: str = "7") -> str:
    return line.replace(line.split()[0], f"JobId={job_id}", 1) + "\n"


def sentinel(code: int) -> bytes:
    return json.dumps({"format": FORMAT, "run_id": "r1", "slurm_job_id": "7", "exit_code": code,
                       "started": "2026-11-30T18:00:00Z", "finished": "2026-11-30T18:01:00Z",
                       "batch_host": "slurm-node1", "nodes": "slurm-node[1-2]",
                       "files": {"results/summary.json": "a" * 64}, "unlisted": 0}).encode()


def card() -> dict:
    return {"run_id": "r1", "model": "lenet", "scheduler": "slurm",
            "slurm": {"job_id": "7", "login": "login", "run_dir": RUN_DIR, "shared": True, "partition": "gpu"}}


def SPECS(names: list[str]) -> list[HostSpec]:  # noqa: N802 - a constant-like resolver
    return [HostSpec(n, hostname=n) for n in names]


def open_run(login: FakeTransport, store: RunStore | None = None) -> follow.SlurmRun:
    if store is not None:
        store.save("r1", card())
    return follow.SlurmRun(card(), lambda spec: login, SPECS)


def login(scontrol, files=None) -> FakeTransport:
    return FakeTransport("login", {"scontrol -o show job 7": scontrol, "sinfo -h -N -o '%N|%P|%T|%G|%c'": SINFO},
                         files=files or {})


def test_pending_with_its_reason_in_words():
    st = open_run(login(as_job(PENDING))).status()
    assert (st.state, st.slurm_state, st.exit_code, st.active) == ("pending", "PENDING", None, True)
    assert st.reason == "Resources: waiting for resources: the nodes or GPUs it asks for are in use"


def test_forgotten_by_slurm_known_from_the_sentinel():
    st = open_run(login(GONE, {f"{RUN_DIR}/opskit-sentinel.json": sentinel(143)})).status()
    assert (st.state, st.exit_code, st.detail) == ("interrupted", 143, "from the job's sentinel")
    assert st.sentinel is not None and st.sentinel.files == {"results/summary.json": "a" * 64}


def test_forgotten_without_a_sentinel_says_so():
    st = open_run(login(GONE)).status()
    assert st.state == "unknown" and "Slurm no longer knows job 7" in st.detail
    assert f"{RUN_DIR}/opskit-sentinel.json is not there" in st.detail


@pytest.mark.parametrize("with_sentinel", [False, True])
def test_node_failure_is_reported_with_the_lost_node(with_sentinel):
    files = {f"{RUN_DIR}/opskit-sentinel.json": sentinel(1)} if with_sentinel else {}
    st = open_run(login(as_job(NODE_FAIL), files)).status()
    assert (st.state, st.slurm_state) == ("lost", "NODE_FAIL")
    assert "node(s) lost: slurm-node2 (down*)" in st.detail
    assert st.reason == "NodeDown: a node it needs (or ran on) is down"


def test_lost_is_kept_after_slurm_forgets_the_job(tmp_path):
    store = RunStore(tmp_path)
    run = open_run(login(as_job(NODE_FAIL), {f"{RUN_DIR}/opskit-sentinel.json": sentinel(1)}), store)
    run.remember(store, run.status())
    later = follow.SlurmRun(store.load("r1"), run.connect, run.resolve)
    later.login.add("scontrol -o show job 7", GONE)
    assert later.status().state == "lost"


def test_follow_states_then_each_nodes_lines_then_the_end(tmp_path):
    answers = iter([as_job(PENDING), as_job(RUNNING), GONE, GONE])
    out = f"{RUN_DIR}/slurm-7.out"
    t = login(lambda argv, stdin: next(answers))
    t.files[out] = b"opskit: job 7 on slurm-node[1-2]\nslurm-node1/node0: step 1/2\nslurm-node2/node1: hello\npart"
    t.files[f"{RUN_DIR}/opskit-sentinel.json"] = sentinel(0)
    store = RunStore(tmp_path)
    events: list[ev.Event] = []
    st = follow.follow(open_run(t, store), store, events.append, poll=0)
    assert st.state == "exited" and st.exit_code == 0
    steps = [e.message for e in events if e.kind == "step"]
    assert steps[0] == "Slurm job 7 PENDING: Resources: waiting for resources: the nodes or GPUs it asks for are in use"
    assert steps[1] == "Slurm job 7 RUNNING on slurm-node[1-2]"
    logs = [(e.host, e.line) for e in events if e.kind == "log"]
    assert logs == [("login", "opskit: job 7 on slurm-node[1-2]"), ("slurm-node1/node0", "step 1/2"),
                    ("slurm-node2/node1", "hello"), ("login", "part")]
    saved = store.load("r1")
    assert saved["state"] == "exited" and saved["slurm"]["batch_host"] == "slurm-node1"


def test_cancel_of_a_pending_job_is_a_plain_scancel(tmp_path):
    answers = iter([as_job(PENDING), GONE, GONE, GONE])
    t = login(lambda argv, stdin: next(answers))
    t.add("scancel 7", "")
    store = RunStore(tmp_path)
    st = follow.cancel(open_run(t, store), store, grace=1, poll=0)
    assert [c[0] for c in t.calls if c[0][0] == "scancel"] == [("scancel", "7")]
    assert st.state == "unknown"


def test_a_login_host_without_sbatch_is_named():
    t = FakeTransport("login", {"sh -c 'for c in \"$@\"; do command -v \"$c\" >/dev/null || echo \"$c\"; done' "
                                "sh sbatch scontrol sinfo scancel": "sbatch\n"})
    with pytest.raises(JobError, match=r"login: no sbatch on the PATH there") as exc:
        cluster.require_slurm(t)
    assert "give --host the cluster's login host" in (exc.value.hint or "")


def test_jobs_one_scontrol_per_login_host_then_sentinels(tmp_path):
    from opskit.jobs.slurm import ops

    done = as_job(RUNNING.replace("JobState=RUNNING", "JobState=COMPLETED"), "9").replace("opskit-r1", "opskit-r3")
    t = FakeTransport("login", {"scontrol -o show job": as_job(PENDING) + done,
                                "sinfo -h -N -o '%N|%P|%T|%G|%c'": SINFO.replace("down*", "idle")},
                      files={"/shared/opskit/runs/r2/opskit-sentinel.json": sentinel(0).replace(b'"r1"', b'"r2"')
                             .replace(b'"slurm_job_id": "7"', b'"slurm_job_id": "8"')})
    other = {"run_id": "r2", "scheduler": "slurm",
             "slurm": {"job_id": "8", "login": "login", "run_dir": "/shared/opskit/runs/r2", "shared": True}}
    ended = {"run_id": "r3", "scheduler": "slurm", "slurm": {**other["slurm"], "job_id": "9", "run_dir": "/r3"}}
    states, errors = ops.statuses([card(), other, ended], None, connect=lambda spec: t, resolve=SPECS)
    assert errors == {}
    assert [(s.run_id, s.state) for s in states] == [("r1", "pending"), ("r2", "exited"), ("r3", "exited")]
    assert (states[2].slurm_state, states[2].exit_code) == ("COMPLETED", 0)  # Slurm's word, no sentinel at /r3
    assert [c[0] for c in t.calls if c[0][0] == "scontrol"] == [("scontrol", "-o", "show", "job")]  # once, for all


def test_jobs_names_a_login_host_that_fails():
    from opskit.jobs.slurm import ops

    t = FakeTransport("login", {"scontrol -o show job": FakeReply(stderr="slurm_load_jobs error: Unable to "
                                                                         "contact slurm controller", exit_code=1)})
    states, errors = ops.statuses([card()], None, connect=lambda spec: t, resolve=SPECS)
    assert states == [] and "Unable to contact slurm controller" in errors["login"]
