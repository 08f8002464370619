"""A hostile run folder (field cases security/01-04 and 20) against collect, with this machine
playing the host (:class:`opskit.testing.hostlike.HostLike`: real sh, find, sha256sum, mv).

What the container controls: every name in its /out (= ~/.opskit/runs/RUN on the host), links
included, and its own output. Nothing opskit writes may land outside the run's folders, nothing
the container wrote may be lost unmentioned, and no record may be replaced by a result.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from opskit.jobs import collect as collectmod
from opskit.jobs import runner
from opskit.jobs.store import RunStore
from opskit.testing.hostlike import FakeContainer, HostLike, fake_docker_cli

OWNER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwnerKey owner@laptop\n"
ATTACKER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAttackerKey attacker@container\n"


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A host home with login files, a finished run r1, and an empty local store."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh/authorized_keys").write_text(OWNER_KEY)
    (home / ".bashrc").write_text("# the user's own shell setup\n")
    (home / ".profile").write_text("# profile\n")
    run_dir = home / ".opskit/runs/r1"
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text('{"status": "completed"}\n')
    monkeypatch.setenv("PATH", fake_docker_cli(tmp_path / "fakebin", ATTACKER_KEY))
    outside = tmp_path / "local-secret.txt"
    outside.write_text("a file of the local user\n")
    container = FakeContainer(name="opskit-run-r1", status="exited")
    store = RunStore(tmp_path / "runs")
    store.save("r1", {"run_id": "r1", "host": "gpu1", "host_home": str(home), "args": ["--epochs", "1"]})
    return SimpleNamespace(home=home, run_dir=run_dir, t=HostLike("gpu1", [container]), store=store,
                           container=container, outside=outside, tmp=tmp_path)


def tree_state(root: Path, skip: tuple[Path, ...]) -> dict[str, str]:
    """{path: sha256 or link target} of every file under root except the skipped folders."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in skip]
        for name in filenames:
            p = Path(dirpath, name)
            out[str(p)] = os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def collect(w, **kw):
    return runner.collect_results(w.t, "r1", w.store, w.store.load("r1"), **kw)


def test_01_a_link_at_the_log_capture_name_writes_nothing_through_it(world):
    os.symlink(world.home / ".ssh/authorized_keys", world.run_dir / "logs.txt.tmp")
    os.symlink(world.home / ".ssh/authorized_keys", world.run_dir / "logs.txt")  # the 'already saved' decoy
    res = collect(world)
    assert (world.home / ".ssh/authorized_keys").read_text() == OWNER_KEY
    assert (world.store.path("r1") / "logs.txt").read_text() == ATTACKER_KEY  # the real output, saved
    assert res.logs and {m["path"] for m in res.not_collected} == {"logs.txt", "logs.txt.tmp"}
    assert all("symbolic link" in m["reason"] for m in res.not_collected)


def test_01_a_regular_logs_file_left_by_the_container_is_a_result_not_the_logs(world):
    (world.run_dir / "logs.txt").write_text("fake logs\n")
    res = collect(world)
    assert (world.store.path("r1") / "logs.txt").read_text() == ATTACKER_KEY
    assert (world.store.path("r1") / "results/logs.txt").read_text() == "fake logs\n" and res.complete


def test_02_manifest_temp_link_and_a_crafted_name_change_no_login_file(world):
    (world.run_dir / ".opskit").mkdir()
    os.symlink(world.home / ".bashrc", world.run_dir / ".opskit/manifest.sha256.tmp")
    os.symlink(world.home / ".profile", world.run_dir / ".opskit/manifest.sha256")
    (world.run_dir / "x;cd;touch PWNED;#").write_text("a result with a crafted name\n")
    before = tree_state(world.home, (world.home / ".opskit",))
    res = collect(world)
    assert tree_state(world.home, (world.home / ".opskit",)) == before
    assert (world.store.path("r1") / "results/x;cd;touch PWNED;#").read_text() == "a result with a crafted name\n"
    subprocess.run(["bash", "--norc", "-c", f". '{world.home}/.bashrc'"], cwd=world.home, check=False,
                   env={"PATH": os.environ["PATH"], "HOME": str(world.home)}, capture_output=True)
    assert not (world.home / "PWNED").exists()
    assert "x;cd;touch PWNED;#" in res.files


def test_03_results_named_like_records_stay_results(world):
    forged = {"run_id": "r1", "host": "gpu2", "host_home": "/home/someone-else"}
    (world.run_dir / "job.json").write_text(json.dumps(forged))
    (world.run_dir / "manifest.json").write_text('{"my": "dataset manifest"}\n')
    collect(world)
    card = world.store.load("r1")
    assert (card["host"], card["host_home"], card["args"]) == ("gpu1", str(world.home), ["--epochs", "1"])
    results = world.store.path("r1") / "results"
    assert json.loads((results / "job.json").read_text()) == forged
    assert (results / "manifest.json").read_text() == '{"my": "dataset manifest"}\n'
    again = collect(world, remove_remote=True)  # the card still points at the right home
    assert again.removed_remote and again.complete and not world.run_dir.exists()


def test_04_remove_remote_deletes_exactly_what_was_verified(world):
    (world.run_dir / "checkpoints").mkdir()
    (world.run_dir / "predictions.tmp").write_bytes(b"p" * 4096)
    (world.run_dir / "checkpoints/epoch_10.pt").write_bytes(b"w" * 8192)
    os.symlink("epoch_10.pt", world.run_dir / "checkpoints/best.pt")
    (world.run_dir / "shard-0.opskit-part").write_bytes(b"d" * 100)
    os.mkfifo(world.run_dir / "queue")
    res = collect(world, remove_remote=True)
    results = world.store.path("r1") / "results"
    assert (results / "predictions.tmp").read_bytes() == b"p" * 4096
    assert (results / "shard-0.opskit-part").read_bytes() == b"d" * 100
    assert {m["path"] for m in res.not_collected} == {"checkpoints/best.pt", "queue"}
    assert res.kept_on_host == ["checkpoints/best.pt", "queue"]
    assert os.readlink(world.run_dir / "checkpoints/best.pt") == "epoch_10.pt"
    assert not (world.run_dir / "checkpoints/epoch_10.pt").exists()  # verified here, so removed there
    card = world.store.load("r1")["collected"]
    assert card["kept_on_host"] == res.kept_on_host and len(card["not_collected"]) == 2


def test_20_one_slow_file_does_not_stop_the_others(world):
    with open(world.run_dir / "scratch.bin", "wb") as fh:
        fh.truncate(16 << 30)  # sparse: no blocks, but 16 GiB to read
    res = collectmod.collect(world.t, "r1", str(world.home), world.store.path("r1"),
                             limits=collectmod.Limits(hash_timeout=1))
    assert "summary.json" in res.files and (world.store.path("r1") / "results/summary.json").exists()
    assert [m["path"] for m in res.not_collected] == ["scratch.bin"]
    assert "longer than 1s" in res.not_collected[0]["reason"]
    big = collectmod.collect(world.t, "r1", str(world.home), world.store.path("r1"),
                             limits=collectmod.Limits(max_file_bytes=1 << 30))
    assert [m["path"] for m in big.not_collected] == ["scratch.bin"] and "over the limit" in big.not_collected[0]["reason"]


def test_20_odd_names_are_listed_the_others_collected(world):
    for name in ("line\nbreak", "esc\x1b]0;title\x07", "tab\there"):
        (world.run_dir / name).write_text("odd")
    (world.run_dir / b"latin\xe9".decode("latin-1")).write_bytes(b"x")  # valid UTF-8 here: collected
    os.close(os.open(os.fsencode(world.run_dir) + b"/raw\xff", os.O_CREAT | os.O_WRONLY, 0o644))
    res = collect(world)
    assert "summary.json" in res.files and "latin\xe9" in res.files
    odd = sorted(m["path"] for m in res.not_collected)
    assert len(odd) == 4 and all("\n" not in p and "\x1b" not in p for p in odd)
    assert sorted(os.listdir(world.store.path("r1") / "results")) == ["latin\xe9", "summary.json"]


def test_links_planted_at_every_name_opskit_writes_here_are_refused(world):
    local = collectmod.LocalRun(world.store.path("r1"))
    (world.run_dir / "checkpoints").mkdir()
    (world.run_dir / "checkpoints/last.pt").write_bytes(b"w" * 100)
    (world.run_dir / "metrics.jsonl").write_text("{}\n")
    local.results.mkdir(parents=True)
    os.symlink(world.outside, local.results / "summary.json")  # a final name
    os.symlink(world.tmp, local.results / "checkpoints")  # a folder on the way
    (local.root / collectmod.PARTIAL).mkdir()
    os.symlink(world.outside, local.root / collectmod.PARTIAL / local.partial_name(local.results, "metrics.jsonl"))
    before = world.outside.read_text()
    res = collect(world)
    assert world.outside.read_text() == before and not (world.tmp / "last.pt").exists()
    missed = {m["path"]: m["reason"] for m in res.not_collected}
    assert sorted(missed) == ["checkpoints/last.pt", "metrics.jsonl"]
    assert all("symbolic link" in r for r in missed.values())
    assert (local.results / "summary.json").read_text() == '{"status": "completed"}\n'  # the link replaced
    assert not (local.results / "summary.json").is_symlink()


def test_20_a_host_command_limit_shorter_than_the_slow_file_isolates_it(world):
    class CappedHost(HostLike):  # every host command limited to 2 s, as a slow host would be
        def run(self, argv, *, timeout=None, **kw):
            return super().run(argv, timeout=min(timeout or 2, 2), **kw)

    with open(world.run_dir / "scratch.bin", "wb") as fh:
        fh.truncate(16 << 30)
    (world.run_dir / "zz.json").write_text("{}")
    t = CappedHost("gpu1", [world.container])
    res = collectmod.collect(t, "r1", str(world.home), world.store.path("r1"),
                             limits=collectmod.Limits(hash_timeout=3))  # no hasher left running long
    assert sorted(res.files) == ["summary.json", "zz.json"]
    assert [m["path"] for m in res.not_collected] == ["scratch.bin"]
