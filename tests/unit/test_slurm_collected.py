"""A Slurm run after it was collected here: its state once the cluster's copy is gone (the
collected sentinel), ``--remove-remote`` (opskit.jobs.slurm.remove), ``jobs --host LOGIN``
(opskit.cli.slurm.SlurmJobs.spare), each node's own label on its lines, the --plan script's
comment. Fakes keyed by command (as test_slurm_status); the real path is
tests/integration/test_run_slurm.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

from test_slurm_parse import RUNNING
from test_slurm_status import GONE, RUN_DIR, SPECS, as_job, card, login, sentinel

from opskit.errors import HostError
from opskit.hosts.group import GroupResult, HostOutcome
from opskit.jobs import collect as collectmod
from opskit.jobs import hostfs
from opskit.jobs.slurm import follow, remove
from opskit.jobs.slurm.script import SbatchSpec, render
from opskit.testing.fake import FakeTransport

COMPLETED = RUNNING.replace("JobState=RUNNING Reason=None", "JobState=COMPLETED Reason=None")
SENT = "opskit-sentinel.json"


class Unreachable(FakeTransport):
    def stat(self, path: str):  # the first use of a node whose container is gone
        raise HostError(self.host, "ssh: connect to host slurm-node1 port 22: No route to host")


def collected_here(tmp_path: Path, data: bytes) -> tuple[dict, Path]:
    """runs/r1/ with the collected sentinel, and the card that recorded its sha256."""
    local = tmp_path / "r1"
    local.mkdir()
    (local / SENT).write_bytes(data)
    c = {**card(), "collected": {"files": {SENT: hashlib.sha256(data).hexdigest()}, "verified": True}}
    return c, local


def test_forgotten_job_whose_folder_is_gone_is_known_from_the_collected_sentinel(tmp_path):
    c, local = collected_here(tmp_path, sentinel(0))
    st = follow.SlurmRun(c, lambda spec: login(GONE), SPECS, local=local).status()
    assert (st.state, st.exit_code) == ("exited", 0)
    assert st.detail == (f"from the sentinel collected here (runs/r1/{SENT}); the cluster's copy ({RUN_DIR}) "
                         "is gone")


def test_ended_job_whose_folder_is_gone_is_known_from_the_collected_sentinel(tmp_path):
    c, local = collected_here(tmp_path, sentinel(0))
    st = follow.SlurmRun(c, lambda spec: login(as_job(COMPLETED)), SPECS, local=local).status()
    assert (st.state, st.exit_code, st.slurm_state) == ("exited", 0, "COMPLETED")
    assert "sentinel collected here" in st.detail and "wrote no sentinel" not in st.detail


def test_a_collected_sentinel_that_no_longer_verifies_is_not_believed(tmp_path):
    c, local = collected_here(tmp_path, sentinel(0))
    (local / SENT).write_bytes(sentinel(1))
    st = follow.SlurmRun(c, lambda spec: login(GONE), SPECS, local=local).status()
    assert st.state == "unknown" and "is not there" in st.detail


def test_an_unreachable_batch_host_falls_back_to_the_collected_sentinel(tmp_path):
    c, local = collected_here(tmp_path, sentinel(0))
    c["slurm"] = {**c["slurm"], "shared": False, "batch_host": "slurm-node1"}
    t = login(GONE)
    node = Unreachable("slurm-node1", {})
    st = follow.SlurmRun(c, lambda spec: node if spec.name == "slurm-node1" else t, SPECS, local=local).status()
    assert (st.state, st.exit_code) == ("exited", 0) and "collected here" in st.detail


def test_a_job_id_reused_by_a_recreated_cluster_is_not_this_run(tmp_path):
    c, local = collected_here(tmp_path, sentinel(0))
    other = as_job(COMPLETED).replace("JobName=opskit-r1", "JobName=opskit-someone-else")
    st = follow.SlurmRun(c, lambda spec: login(other), SPECS, local=local).status()
    assert (st.state, st.slurm_state) == ("exited", "")


def test_each_node_task_line_is_labelled_with_its_node():
    e = follow.log_event("slurm-node1", "r1", "opskit[slurm-node2]: container exited with 0")
    assert (e.host, e.line) == ("slurm-node2", "opskit: container exited with 0")
    e = follow.log_event("slurm-login", "r1", "opskit: job 7 on slurm-node[1-2]")
    assert (e.host, e.line) == ("slurm-login", "opskit: job 7 on slurm-node[1-2]")


def test_the_plan_script_says_it_would_be_kept():
    spec = SbatchSpec("r1", "lenet", [], RUN_DIR, 2, {}, "sha256:" + "a" * 64)
    assert "(kept in runs/r1/job.sbatch)" in render(spec)
    spec.plan = True
    assert "(would be kept, when submitted, in runs/r1/job.sbatch)" in render(spec)


# -- --remove-remote ----------------------------------------------------------------------------
def listing(*files: str) -> str:
    return "".join(f"f\0{len(f)}\0{f}\0" for f in files)


def host(name: str, *files: str) -> FakeTransport:
    t = FakeTransport(name, {("sh", "-c", hostfs._LIST, "sh", RUN_DIR): listing(*files),
                             ("rm", "-rf", "--", RUN_DIR): ""})
    t.makedirs(RUN_DIR)
    return t


def collected(tmp_path: Path, *rels: str) -> tuple[collectmod.CollectResult, collectmod.LocalRun]:
    local = collectmod.LocalRun(tmp_path / "r1")
    res = collectmod.CollectResult("r1", "login", str(local.root))
    for rel in rels:
        (local.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (local.root / rel).write_bytes(rel.encode())
        res.files[rel] = hashlib.sha256(rel.encode()).hexdigest()
    return res, local


def node_local_run(hosts: dict[str, FakeTransport]) -> follow.SlurmRun:
    c = card()
    c["slurm"] = {**c["slurm"], "shared": False, "candidates": sorted(hosts)}
    return follow.SlurmRun(c, lambda spec: hosts[spec.name], SPECS)


def removed_on(t: FakeTransport) -> bool:
    return any(argv[:2] == ("rm", "-rf") for argv, _, _ in t.calls)


def test_remove_remote_removes_every_nodes_folder_with_the_scripts_records(tmp_path):
    res, local = collected(tmp_path, "results/a.pt", "nodes/slurm-node2/x.log", SENT, "slurm-7.out")
    hosts = {"slurm-node1": host("slurm-node1", "results/a.pt", SENT, "slurm-7.out", ".exit-slurm-node1",
                                         ".stopped-slurm-node1"),
             "slurm-node2": host("slurm-node2", "nodes/slurm-node2/x.log", ".exit-slurm-node2"),
             "slurm-node3": host("slurm-node3")}  # shipped to, not allocated: the empty folder opskit made
    out = remove.remove_remote(node_local_run(hosts), [("slurm-node1", None), ("slurm-node2", "slurm-node2")],
                               res, local)
    assert out.kept == []
    assert out.removed == [f"{h}:{RUN_DIR}" for h in ("slurm-node1", "slurm-node2", "slurm-node3")]
    assert all(removed_on(t) for t in hosts.values())


def test_remove_remote_keeps_everything_when_one_file_is_not_here(tmp_path):
    res, local = collected(tmp_path, "results/a.pt", SENT)
    hosts = {"slurm-node1": host("slurm-node1", "results/a.pt", SENT),
             "slurm-node2": host("slurm-node2", "nodes/slurm-node2/late.log")}
    out = remove.remove_remote(node_local_run(hosts), [("slurm-node1", None), ("slurm-node2", "slurm-node2")],
                               res, local)
    assert out.removed == [] and not any(removed_on(t) for t in hosts.values())
    assert f"slurm-node2:{RUN_DIR}: 1 file(s) not collected here, e.g. nodes/slurm-node2/late.log" in out.kept


def test_remove_remote_keeps_everything_when_a_copy_here_no_longer_verifies(tmp_path):
    res, local = collected(tmp_path, "results/a.pt", SENT)
    (local.root / "results/a.pt").write_bytes(b"changed here")
    hosts = {"login": host("login", "results/a.pt", SENT)}
    run = follow.SlurmRun(card(), lambda spec: hosts[spec.name], SPECS)
    out = remove.remove_remote(run, [("login", None)], res, local)
    assert out.removed == [] and not removed_on(hosts["login"])
    assert "e.g. results/a.pt" in out.kept[0]


def test_remove_remote_after_an_incomplete_collect_removes_nothing(tmp_path):
    res, local = collected(tmp_path, SENT)
    res.miss("results/link", "a symbolic link: not collected, kept on the host")
    t = host("login", SENT, "results/link")
    out = remove.remove_remote(follow.SlurmRun(card(), lambda spec: t, SPECS), [("login", None)], res, local)
    assert out.removed == [] and out.kept == [f"login:{RUN_DIR}: 1 not collected here"] and t.calls == []


# -- jobs --host LOGIN ---------------------------------------------------------------------------
def test_a_login_host_without_docker_is_no_error_for_its_slurm_runs():
    from opskit.cli.slurm import SlurmJobs

    slurm = SlurmJobs([], {}, {"r1": card()})
    result = GroupResult([HostOutcome("login", error=HostError("login", "could not reach the Docker engine")),
                          HostOutcome("gpu1", error=HostError("gpu1", "connection refused"))])
    slurm.spare(result)
    assert [o.host for o in result if not o.ok] == ["gpu1"]
    assert "could not reach the Docker engine" in slurm.no_docker["login"]


def test_jobs_with_a_login_host_named_lists_its_slurm_runs(tmp_path, monkeypatch):
    from opskit.cli.slurm import SlurmJobs
    from opskit.jobs.slurm import ops
    from opskit.jobs.store import RunStore

    store = RunStore(tmp_path)
    store.save("r1", card())
    store.save("r2", {**card(), "run_id": "r2", "slurm": {**card()["slurm"], "login": "other"}})
    asked: list = []
    monkeypatch.setattr(ops, "statuses", lambda cards, inv, store=None: (asked.extend(cards), ([], {}))[1])
    assert set(SlurmJobs.of(store, None, ("login",)).cards) == {"r1"}
    assert [c["run_id"] for c in asked] == ["r1"]
