"""collect() with this machine playing the host: real sh, find, sha256sum, mv and files.

The "host" is :class:`opskit.testing.hostlike.HostLike`: no engine, no SSH needed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from opskit.hosts.local import LocalTransport
from opskit.jobs import collect as collectmod
from opskit.jobs import hostfs
from opskit.testing.hostlike import FakeContainer, HostLike, fake_docker_cli

RESULTS = {
    "metrics.jsonl": b"".join(b'{"step": %d, "loss": 0.5}\n' % i for i in range(2000)),
    "summary.json": b'{"status": "completed"}\n',
    "checkpoints/last.pt": bytes(range(256)) * 512,
}


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    """`docker logs X` on PATH prints the container's output (what it wrote on stdout)."""
    monkeypatch.setenv("PATH", fake_docker_cli(tmp_path / "fakebin", "epoch 1 loss 0.5\n"))


@pytest.fixture
def host(tmp_path, fake_docker):
    """A host home with one finished run r1 (its container exited)."""
    home = tmp_path / "home"
    run_dir = home / ".opskit/runs/r1"
    for rel, data in RESULTS.items():
        (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / rel).write_bytes(data)
    container = FakeContainer(name="opskit-run-r1", status="exited")
    return SimpleNamespace(home=home, run_dir=run_dir, t=HostLike("gpu1", [container]), container=container,
                           records=home / ".opskit/records/r1")


def collect(host, local, **kw):
    return collectmod.collect(host.t, "r1", str(host.home), local, **kw)


def test_collect_verifies_into_results_and_is_idempotent(host, tmp_path):
    local = tmp_path / "runs/r1"
    first = collect(host, local)
    assert first.complete and sorted(first.copied) == sorted(RESULTS)
    assert first.bytes_copied == sum(map(len, RESULTS.values())) + len("epoch 1 loss 0.5\n")
    assert all((local / "results" / rel).read_bytes() == data for rel, data in RESULTS.items())
    assert (local / "logs.txt").read_text() == "epoch 1 loss 0.5\n" and first.logs
    assert json.loads((host.records / "manifest.json").read_text())["files"] == first.files
    assert not (host.run_dir / ".opskit").exists() and not (host.run_dir / "logs.txt").exists()
    again = collect(host, local)
    assert again.copied == [] and sorted(again.already_here) == sorted(RESULTS) and again.bytes_copied == 0


def test_records_on_the_host_are_private_whatever_the_umask(host, tmp_path):
    old = os.umask(0o022)
    try:
        collect(host, tmp_path / "runs/r1")
    finally:
        os.umask(old)
    for folder in (host.home / ".opskit", host.home / ".opskit/records", host.records):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    for f in host.records.iterdir():
        assert f.stat().st_mode & 0o077 == 0, f


def test_an_interrupted_copy_resumes(host, tmp_path):
    local = collectmod.LocalRun(tmp_path / "runs/r1")
    data = RESULTS["metrics.jsonl"]
    (local.root / collectmod.PARTIAL).mkdir(parents=True)
    part = local.root / collectmod.PARTIAL / local.partial_name(local.results, "metrics.jsonl")
    part.write_bytes(data[: len(data) // 2])  # what an earlier, cut collect left
    res = collect(host, local.root)
    assert (local.results / "metrics.jsonl").read_bytes() == data and not part.exists()
    assert "metrics.jsonl" in res.copied and res.complete


def test_a_corrupt_partial_copy_is_listed_never_renamed_into_place(host, tmp_path):
    local = collectmod.LocalRun(tmp_path / "runs/r1")
    (local.root / collectmod.PARTIAL).mkdir(parents=True)
    part = local.root / collectmod.PARTIAL / local.partial_name(local.results, "summary.json")
    part.write_bytes(b"XXXXXX")  # a partial copy whose bytes are wrong
    res = collect(host, local.root)
    assert [m["path"] for m in res.not_collected] == ["summary.json"]
    assert "changed on the host while copying" in res.not_collected[0]["reason"]
    assert not (local.results / "summary.json").exists() and not part.exists()
    assert sorted(res.copied) == ["checkpoints/last.pt", "metrics.jsonl"]  # the others came
    again = collect(host, local.root)  # a rerun starts that file afresh and verifies
    assert again.complete and (local.results / "summary.json").read_bytes() == RESULTS["summary.json"]


def test_a_result_truncated_on_the_host_is_listed_the_others_collected(host, tmp_path):
    collect(host, tmp_path / "first")
    (host.run_dir / "metrics.jsonl").write_bytes(RESULTS["metrics.jsonl"][:100])
    local = tmp_path / "second"
    res = collect(host, local)
    assert [m["path"] for m in res.not_collected] == ["metrics.jsonl"]
    assert "changed on the host since the first collect" in res.not_collected[0]["reason"]
    assert not (local / "results/metrics.jsonl").exists() and (local / "results/summary.json").exists()


def test_remote_copies_removed_only_after_verification(host, tmp_path):
    res = collect(host, tmp_path / "runs/r1", remove_remote=True)
    assert res.removed_remote and res.kept_on_host == [] and not host.run_dir.exists()
    assert not host.records.exists() and host.container.removed
    assert (tmp_path / "runs/r1/results/checkpoints/last.pt").read_bytes() == RESULTS["checkpoints/last.pt"]


def test_remote_copies_kept_when_a_local_copy_does_not_verify(host, tmp_path):
    local = collectmod.LocalRun(tmp_path / "runs/r1")
    res = collect(host, local.root)
    (local.results / "summary.json").write_bytes(b'{"status": "tampered"}\n')  # changed here since
    collectmod.remove_remote_copies(host.t, None, str(host.run_dir), str(host.records), local, res)
    assert res.kept_on_host == ["summary.json"]
    assert (host.run_dir / "summary.json").read_bytes() == RESULTS["summary.json"]
    assert not (host.run_dir / "metrics.jsonl").exists()
    assert any(m["path"] == "summary.json" for m in res.not_collected)


def test_collect_results_records_a_run_started_elsewhere_and_updates_a_known_one(host, tmp_path, monkeypatch):
    from opskit.jobs import runner
    from opskit.jobs.store import RunStore

    monkeypatch.setenv("HOME", str(host.home))
    store = RunStore(tmp_path / "runs")
    t = LocalTransport()
    monkeypatch.setattr(collectmod, "find_container", lambda transport, run_id: None)
    res = runner.collect_results(t, "r1", store, None)
    card = store.load("r1")
    assert (card["run_id"], card["host"], card["host_home"]) == ("r1", "localhost", str(host.home))
    assert card["collected"]["files"] == res.files and sorted(res.files) == sorted(RESULTS)
    assert card["collected"]["verified"] is True and "at" in card["collected"]
    state = SimpleNamespace(state="exited", exit_code=0, oom_killed=False)
    runner.collect_results(t, "r1", store, card, state=state)
    again = store.load("r1")
    assert (again["state"], again["exit_code"], again["oom_killed"]) == ("exited", 0, False)
    assert again["host_home"] == str(host.home) and again["collected"]["files"] == res.files


def test_host_listing_and_hashing_take_any_name_as_bytes(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    names = ["a b", "x;cd;touch PWNED;#", "line\nbreak", "quote'\"", "-rf", "é"]
    for n in names:
        (run / n).write_text(n)
    t = LocalTransport()
    listed = {e.path: e for e in hostfs.list_run(t, str(run))}
    assert sorted(listed) == sorted(names) and all(e.kind == "f" for e in listed.values())
    hashed = {h.path: h for h in hostfs.hash_files(t, str(run), names, 30)}
    assert all(hashed[n].status == 0 and len(hashed[n].sha256) == 64 for n in names)
    assert not (tmp_path / "PWNED").exists() and not (run / "PWNED").exists()
    hostfs.remove_files(t, str(run), names[:2])
    assert sorted(os.listdir(run)) == sorted(names[2:])


def test_private_dirs_are_0700(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    (home / ".opskit").mkdir(mode=0o755)
    old = os.umask(0o022)
    try:
        hostfs.private_dirs(LocalTransport(), str(home), [".opskit/runs/r9", ".opskit/ship"])
    finally:
        os.umask(old)
    for rel in (".opskit", ".opskit/runs", ".opskit/runs/r9", ".opskit/ship"):
        assert (home / rel).stat().st_mode & 0o777 == 0o700, rel
    assert Path(home).stat().st_mode & 0o777 == 0o755  # the home itself is not opskit's to change


def test_the_run_card_keeps_no_other_process_command_line():
    from opskit.jobs.store import redact_snapshot

    snap = {
        "host": "gpu1", "cpus": 8,
        "top_processes": [{"pid": 1, "user": "bob", "command": "mysql -pS3cret"}],
        "gpu": {"status": "ok", "gpus": [{"index": "0", "processes": [
            {"pid": 7, "used_memory": 100, "username": "bob", "command": "train --token=abc", "name": "python"}]}]},
    }
    card = redact_snapshot(snap)
    assert "top_processes" not in card and card["cpus"] == 8
    assert card["gpu"]["gpus"][0]["processes"] == [{"pid": 7, "used_memory": 100}]
    assert "S3cret" not in str(card) and "abc" not in str(card) and redact_snapshot(None) is None
