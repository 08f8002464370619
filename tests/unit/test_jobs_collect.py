"""collect() over the local transport (real files, real find/sha256sum; no engine needed)."""

from __future__ import annotations

import pytest

from opskit.errors import ChecksumMismatch
from opskit.hosts.local import LocalTransport
from opskit.jobs import collect as collectmod

RESULTS = {
    "metrics.jsonl": b"".join(b'{"step": %d, "loss": 0.5}\n' % i for i in range(2000)),
    "summary.json": b'{"status": "completed"}\n',
    "checkpoints/last.pt": bytes(range(256)) * 512,
}


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A 'host' home with one finished run (no container: the engine is not needed)."""
    monkeypatch.setattr(collectmod, "find_container", lambda transport, run_id: None)
    home = tmp_path / "home"
    run_dir = home / ".opskit/runs/r1"
    for rel, data in RESULTS.items():
        (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / rel).write_bytes(data)
    return home, run_dir


def collect(home, local, **kw):
    return collectmod.collect(LocalTransport(), "r1", str(home), local, **kw)


def test_collect_verifies_and_is_idempotent(host, tmp_path):
    home, run_dir = host
    local = tmp_path / "runs/r1"
    first = collect(home, local)
    assert sorted(first.copied) == sorted(RESULTS) and first.bytes_copied == sum(map(len, RESULTS.values()))
    assert all((local / rel).read_bytes() == data for rel, data in RESULTS.items())
    assert (run_dir / ".opskit/manifest.sha256").exists()  # the reference kept on the host
    again = collect(home, local)
    assert again.copied == [] and sorted(again.skipped) == sorted(RESULTS)


def test_an_interrupted_copy_resumes(host, tmp_path):
    home, _ = host
    local = tmp_path / "runs/r1"
    data = RESULTS["metrics.jsonl"]
    part = local / ".metrics.jsonl.opskit-part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[: len(data) // 2])  # what an earlier, cut collect left
    res = collect(home, local)
    assert (local / "metrics.jsonl").read_bytes() == data and not part.exists()
    others = sum(len(v) for k, v in RESULTS.items() if k != "metrics.jsonl")
    assert res.bytes_copied == others + len(data) - len(data) // 2


def test_a_corrupt_partial_copy_is_never_renamed_into_place(host, tmp_path):
    home, _ = host
    local = tmp_path / "runs/r1"
    part = local / ".summary.json.opskit-part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b'XXXXXX')  # a partial copy whose bytes are wrong
    with pytest.raises(ChecksumMismatch, match="summary.json"):
        collect(home, local)
    assert not (local / "summary.json").exists() and not part.exists()
    collect(home, local)  # a rerun starts that file afresh and verifies
    assert (local / "summary.json").read_bytes() == RESULTS["summary.json"]


def test_a_result_truncated_on_the_host_is_reported_not_collected(host, tmp_path):
    home, run_dir = host
    collect(home, tmp_path / "first")
    (run_dir / "metrics.jsonl").write_bytes(RESULTS["metrics.jsonl"][:100])
    local = tmp_path / "second"
    with pytest.raises(ChecksumMismatch, match=r"metrics\.jsonl") as err:
        collect(home, local)
    assert "changed or truncated on the host" in err.value.message
    assert not (local / "metrics.jsonl").exists()


def test_remote_copies_removed_only_after_verification(host, tmp_path):
    home, run_dir = host
    res = collect(home, tmp_path / "runs/r1", remove_remote=True)
    assert res.removed_remote and not run_dir.exists()
    assert (tmp_path / "runs/r1/checkpoints/last.pt").read_bytes() == RESULTS["checkpoints/last.pt"]


def test_remote_copies_kept_when_a_local_copy_does_not_verify(host, tmp_path):
    home, run_dir = host
    local = tmp_path / "runs/r1"
    res = collect(home, local)
    (local / "summary.json").write_bytes(b'{"status": "tampered"}\n')  # changed here after the collect
    with pytest.raises(ChecksumMismatch, match="summary.json"):
        collectmod.remove_remote_copies(LocalTransport(), None, str(run_dir), local, res.files)
    assert all((run_dir / rel).read_bytes() == data for rel, data in RESULTS.items())


def test_collect_results_records_a_run_started_elsewhere_and_updates_a_known_one(host, tmp_path, monkeypatch):
    from opskit.jobs import runner
    from opskit.jobs.store import RunStore

    home, _ = host
    monkeypatch.setenv("HOME", str(home))  # the local "host"'s home, where its runs live
    store = RunStore(tmp_path / "runs")
    res = runner.collect_results(LocalTransport(), "r1", store, None)
    card = store.load("r1")
    assert (card["run_id"], card["host"], card["host_home"]) == ("r1", "localhost", str(home))
    assert card["collected"]["files"] == res.files and sorted(res.files) == sorted(RESULTS)
    assert card["collected"]["verified"] is True and "at" in card["collected"]

    state = type("S", (), {"state": "exited", "exit_code": 0, "oom_killed": False})()
    runner.collect_results(LocalTransport(), "r1", store, card, state=state)
    again = store.load("r1")
    assert (again["state"], again["exit_code"], again["oom_killed"]) == ("exited", 0, False)
    assert again["host_home"] == str(home) and again["collected"]["files"] == res.files
