"""The job commands on what the local store of runs records, when the world moved on: a host
the inventory/ssh config no longer knows, a container removed after collect, multi-host cards,
the newest runs. Fake hosts (opskit.testing.fakehost) and a fake ``launch.list_jobs``: no
Docker, no SSH; the real paths are tests/integration/test_run_remote.py and test_run_multihost.py."""

from __future__ import annotations

import json

import pytest

from opskit.errors import UsageError
from opskit.jobs import launch
from opskit.jobs import operations as ops
from opskit.jobs.store import RunStore, card_files, card_hosts, recent_runs
from tests.unit.test_jobs_operations import connect_to
from tests.unit.test_runner import LOGS, Setup, docker_logs_cli  # noqa: F401


@pytest.fixture(autouse=True)
def inventory(tmp_path, monkeypatch) -> str:
    """gpu1 and gpu2 in an inventory of their own; 'gone-lab' is in neither it nor the ssh config."""
    path = tmp_path / "hosts.yaml"
    path.write_text("hosts:\n  gpu1: {hostname: 127.0.0.1}\n  gpu2: {hostname: 127.0.0.2}\n")
    (tmp_path / "ssh_config").write_text("")
    monkeypatch.setenv("OPSKIT_SSH_CONFIG", str(tmp_path / "ssh_config"))
    monkeypatch.setenv("OPSKIT_INVENTORY", str(path))
    return str(path)


class _Quiet:
    def __init__(self, host: str):
        self.host = host

    def close(self) -> None:
        pass


def _state(run_id: str, host: str) -> launch.JobState:
    return launch.JobState(run_id, host, "lenet", "exited", 0, False, "2026-11-30T10:00:00Z", None, 1.0, "img", [])


@pytest.fixture
def asked(monkeypatch) -> list[str]:
    """launch.list_jobs answers one exited run per host asked; the hosts asked are recorded."""
    hosts: list[str] = []

    def fake(transport):
        hosts.append(transport.host)
        return [_state(f"on-{transport.host}", transport.host)]

    monkeypatch.setattr(launch, "list_jobs", fake)
    return hosts


def _store(tmp_path) -> RunStore:
    store = RunStore(tmp_path / "runs")
    store.save("a-1", {"run_id": "a-1", "host": "gpu1", "created": "2026-11-30T09:00:00Z"})
    store.save("b-1", {"run_id": "b-1", "host": "gone-lab", "created": "2026-11-30T09:01:00Z"})
    store.save("m-1", {"run_id": "m-1", "host": "gpu1", "hosts": ["gpu1", "gpu2"], "created": "2026-11-30T09:02:00Z"})
    return store


# -- 1. jobs: a host the config no longer knows is that host's error ----------------------------
def test_jobs_reports_an_unknown_recorded_host_and_lists_the_others(tmp_path, asked) -> None:
    res = ops.list_jobs((), None, _store(tmp_path), connect=lambda spec: _Quiet(spec.name))
    assert sorted(asked) == ["gpu1", "gpu2"]  # every host that resolves is still asked
    assert sorted(res.succeeded) == ["gpu1", "gpu2"]
    err = res.failed["gone-lab"]
    assert isinstance(err, UsageError) and "unknown host 'gone-lab'" in err.message
    assert "recorded by run b-1" in err.message and "the other hosts' are" in err.hint


def test_jobs_with_a_named_unknown_host_is_still_a_usage_error(tmp_path, asked) -> None:
    with pytest.raises(UsageError, match="unknown host 'gone-lab'"):
        ops.list_jobs(("gone-lab",), None, _store(tmp_path), connect=lambda spec: _Quiet(spec.name))
    assert asked == []


def test_jobs_cli_partial_failure_table_json_and_exit(tmp_path, asked, opskit_cli) -> None:
    _store(tmp_path)
    runs = str(tmp_path / "runs")
    code, out, err = opskit_cli("jobs", "--runs-dir", runs)
    assert code == 1  # as 'hosts list', 'df' ...: some host failed
    assert "on-gpu1" in out and "on-gpu2" in out and "unknown host 'gone-lab'" in err
    code, out, _ = opskit_cli("jobs", "--json", "--runs-dir", runs)
    doc = json.loads(out)
    assert code == 1 and sorted(doc["hosts"]) == ["gpu1", "gpu2"]
    assert "unknown host 'gone-lab'" in doc["errors"]["gone-lab"]["message"]


# -- 2. runs list: multi-host cards ---------------------------------------------------------
def test_card_files_and_hosts_read_both_shapes() -> None:
    one = {"host": "gpu1", "collected": {"files": {"a": "x", "b": "y"}}}
    multi = {"host": "gpu1", "hosts": ["gpu1", "gpu2"],
             "collected": {"nodes": {"gpu1": {"files": ["a", "b", "c"]}, "gpu2": {"files": ["d"]}}}}
    assert (card_files(one), card_hosts(one)) == (2, ["gpu1"])
    assert (card_files(multi), card_hosts(multi)) == (4, ["gpu1", "gpu2"])
    assert card_files({"collected": None}) == 0 and card_files({"collected": {"nodes": {"h": None}}}) == 0


def test_runs_list_shows_every_node_and_its_files(tmp_path, opskit_cli) -> None:
    store = RunStore(tmp_path / "runs")
    store.save("mh-1", {"run_id": "mh-1", "host": "gpu1", "hosts": ["gpu1", "gpu2"], "state": "exited",
                        "collected": {"nodes": {"gpu1": {"files": ["a", "b"]}, "gpu2": {"files": ["c"]}}}})
    code, out, _ = opskit_cli("runs", "list", "--runs-dir", str(tmp_path / "runs"))
    row = next(line for line in out.splitlines() if line.startswith("mh-1"))
    assert code == 0 and row.split() == ["mh-1", "gpu1,gpu2", "exited", "3"]  # run, host, state, files


# -- 3. logs: the saved copy when the container or the host is gone ---------------------------
@pytest.fixture
def collected(tmp_path):
    """Run r1 on the fake gpu1, ended, collected with --remove-remote: its container is gone."""
    s = Setup(tmp_path, remove_remote=True)
    s.run()
    assert s.remote.containers.by_name == {} and (s.store.path("r1") / "logs.txt").is_file()
    return s


def test_logs_of_a_removed_container_come_from_the_saved_copy(collected) -> None:
    lines, notes = [], []
    ops.run_output("r1", hosts=(), inventory=None, store=collected.store, follow=False, emit=lines.append,
                   connect=connect_to(collected), on_saved=notes.append)
    assert [e.line for e in lines] == [x.decode().rstrip("\n") for x in b"".join(LOGS).splitlines(keepends=True)]
    assert "no container for run 'r1'" in notes[0].why and notes[0].path.endswith("r1/logs.txt")
    assert notes[0].state == "exited" and collected.host.closed


def test_logs_of_a_host_no_longer_configured_come_from_the_saved_copy(collected) -> None:
    collected.store.update("r1", host="gone-lab")
    lines, notes = [], []

    def never(spec):
        raise AssertionError("connected to a host the config does not know")

    ops.run_output("r1", hosts=(), inventory=None, store=collected.store, follow=True, emit=lines.append,
                   connect=never, on_saved=notes.append)
    assert len(lines) == len(b"".join(LOGS).splitlines()) and "unknown host 'gone-lab'" in notes[0].why


def test_logs_without_a_saved_copy_say_how_one_is_made(collected) -> None:
    (collected.store.path("r1") / "logs.txt").unlink()
    with pytest.raises(UsageError, match="no container for run 'r1'") as exc:
        ops.run_output("r1", hosts=(), inventory=None, store=collected.store, follow=False,
                       emit=lambda e: None, connect=connect_to(collected))
    assert "no saved copy of the output here either" in exc.value.hint and "opskit collect r1" in exc.value.hint


def test_logs_cli_says_it_shows_the_saved_copy(collected, opskit_cli) -> None:
    collected.store.update("r1", host="gone-lab")
    runs = str(collected.store.root)
    code, out, err = opskit_cli("logs", "r1", "--runs-dir", runs)
    assert code == 0 and out.splitlines() == [x.decode() for x in b"".join(LOGS).splitlines()]
    assert "showing the saved copy of run r1's output" in err and "unknown host 'gone-lab'" in err
    code, out, _ = opskit_cli("logs", "r1", "--json", "--runs-dir", runs)
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and events[0]["event"] == "saved_output" and events[1]["event"] == "log"


def test_multi_host_logs_from_the_saved_copies_when_the_hosts_are_gone(tmp_path, opskit_cli) -> None:
    store = RunStore(tmp_path / "runs")
    nodes = [{"host": "gone-a", "rank": 0, "nproc_per_node": 1}, {"host": "gone-b", "rank": 1, "nproc_per_node": 1}]
    store.save("mh-1", {"run_id": "mh-1", "host": "gone-a", "hosts": ["gone-a", "gone-b"], "nodes": {"nodes": nodes}})
    (store.path("mh-1") / "logs.txt").write_text("rank0 line\n")
    (store.path("mh-1") / "nodes" / "gone-b").mkdir(parents=True)
    (store.path("mh-1") / "nodes" / "gone-b" / "logs.txt").write_text("rank1 line\n")
    code, out, err = opskit_cli("logs", "mh-1", "--runs-dir", str(store.root))
    assert code == 0 and "rank0 line" in out and "rank1 line" in out
    assert "gone-a/rank0" in out and "gone-b/rank1" in out and err.count("showing the saved copy") == 2


def test_multi_host_logs_without_a_node_s_saved_copy_say_how_one_is_made(tmp_path) -> None:
    from opskit.jobs.multiops import node_list, print_saved

    store = RunStore(tmp_path / "runs")
    nodes = [{"host": "gone-a", "rank": 0, "nproc_per_node": 1}, {"host": "gone-b", "rank": 1, "nproc_per_node": 1}]
    store.save("mh-1", {"run_id": "mh-1", "host": "gone-a", "hosts": ["gone-a", "gone-b"], "nodes": {"nodes": nodes}})
    (store.path("mh-1") / "logs.txt").write_text("rank0 line\n")  # gone-b's output never collected
    lines, notes = [], []
    card = store.load("mh-1")
    with pytest.raises(UsageError, match="unknown host") as exc:
        print_saved(store, card, node_list(card), UsageError("unknown host 'gone-b'", "fix the inventory"),
                    lines.append, notes.append)
    assert [e.line for e in lines] == ["rank0 line"] and [n.host for n in notes] == ["gone-a/rank0"]
    assert exc.value.hint.startswith("fix the inventory; no saved copy of gone-b's output here either")
    assert "'opskit collect mh-1' saves it while the containers exist" in exc.value.hint


# -- 4. the "recent runs" hint: newest by the card's creation time -----------------------------
def test_recent_runs_are_the_newest_by_creation_not_by_name(tmp_path) -> None:
    store = RunStore(tmp_path / "runs")
    for i, model in enumerate(["zeta", "yolo", "alpha", "beta", "gamma", "delta", "omega"]):
        store.save(f"{model}-1", {"run_id": f"{model}-1", "created": f"2026-11-30T09:0{i}:00Z"})
    assert recent_runs(store.root) == ["omega-1", "delta-1", "gamma-1", "beta-1", "alpha-1"]
    with pytest.raises(UsageError) as exc:
        store.load("nope")
    assert "recent runs here: omega-1, delta-1, gamma-1, beta-1, alpha-1" in exc.value.hint


def test_multi_host_logs_of_removed_containers_per_node(tmp_path, monkeypatch) -> None:
    from opskit.hosts.spec import HostSpec
    from opskit.jobs.multiops import Nodes
    from tests.unit.test_multihost import Bed

    bed = Bed(tmp_path)
    bed.run()  # followed to the end and collected: every node's output saved here
    bed.engines["gpu2"].containers.by_name.clear()  # gpu2's container removed; gpu1's still there
    lines, notes, looked = [], [], []
    find = launch.find_container
    monkeypatch.setattr(launch, "find_container", lambda t, run_id: (looked.append(t.host), find(t, run_id))[1])
    specs = [HostSpec(n, hostname=n) for n in ("gpu1", "gpu2")]
    with Nodes(bed.store.load("mh"), specs, lambda spec: bed.hosts[spec.name]) as nodes:
        assert nodes.gone()
        nodes.print_logs(lines.append, bed.store, notes.append)
    assert [n.host for n in notes] == ["gpu2/ranks2-3"] and notes[0].path.endswith("mh/nodes/gpu2/logs.txt")
    assert {e.host for e in lines} == {"gpu1/ranks0-1", "gpu2/ranks2-3"}  # 2 GPUs each
    assert sorted(looked) == ["gpu1", "gpu2"]  # each node's container looked up once, not per question


# -- 5. a run ID that is taken is a usage refusal (exit 2) -------------------------------------
def test_a_duplicate_run_id_exits_2(tmp_path, opskit_cli) -> None:
    store = RunStore(tmp_path / "runs")
    store.save("r1", {"run_id": "r1", "host": "gpu1"})
    code, _, err = opskit_cli("run-remote", "--host", "gpu1", "--image", "img:1", "--run-id", "r1",
                              "--runs-dir", str(store.root), "lenet", "--small")
    assert code == 2 and "run 'r1' already exists" in err and "pick another --run-id" in err


def test_run_folders_without_a_card_are_ordered_by_their_change_time(tmp_path) -> None:
    import os

    from opskit.project.runread import resolve_run

    for i, name in enumerate(["zz-old", "aa-new"]):  # 'opskit train --out' folders: no job.json
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text("{}")
        os.utime(tmp_path / name, (1_700_000_000 + i, 1_700_000_000 + i))
    with pytest.raises(UsageError) as exc:
        resolve_run("nope", tmp_path)
    assert f"recent runs in {tmp_path}: aa-new, zz-old" in exc.value.hint


def test_multi_host_logs_follow_every_node_to_its_end(tmp_path, monkeypatch) -> None:
    """``logs -f`` of a multi-host run: asked whether a node is gone, then every node followed,
    each node's container looked up once for both."""
    from opskit.hosts.spec import HostSpec
    from opskit.jobs.multiops import Nodes
    from tests.unit.test_multihost import Bed

    bed = Bed(tmp_path, detach=True)
    bed.run()
    lines, looked = [], []
    find = launch.find_container
    monkeypatch.setattr(launch, "find_container", lambda t, run_id: (looked.append(t.host), find(t, run_id))[1])
    specs = [HostSpec(n, hostname=n) for n in ("gpu1", "gpu2")]
    with Nodes(bed.store.load("mh"), specs, lambda spec: bed.hosts[spec.name]) as nodes:
        assert not nodes.gone()
        out = nodes.follow(lines.append)
    assert [(n.host, n.state, n.exit_code) for n in out.nodes] == [("gpu1", "exited", 0), ("gpu2", "exited", 0)]
    assert {e.host for e in lines if e.kind == "log"} == {"gpu1/ranks0-1", "gpu2/ranks2-3"}
    assert sorted(looked) == ["gpu1", "gpu2"]
