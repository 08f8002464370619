"""The playbooks that ship with opskit (playbooks/), run by ``opskit play`` against two
Docker-in-Docker GPU hosts (real sshd, a real inner engine, the fake NVIDIA stack): check
mode, real mode, and a second run with no changes; what they did is checked on the hosts."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from _helpers import point_opskit_at

from opskit.testing.cli import run_cli

BOOKS = Path(__file__).resolve().parents[2] / "playbooks"
PROBE = "opskit-play-probe:1"


@pytest.fixture
def bed(gpu_hosts, monkeypatch, tmp_path):
    monkeypatch.setenv("OPSKIT_PLAYS_DIR", str(tmp_path / "plays"))
    return point_opskit_at(gpu_hosts, monkeypatch, tmp_path)


def play(capsys, *args: str) -> tuple[int, list[dict], str]:
    code, out, err = run_cli(capsys, "play", "--json", *args)
    return code, [json.loads(line) for line in out.splitlines() if line.startswith("{")], err


def recap(events: list[dict]) -> dict:
    return [e for e in events if e["event"] == "recap"][-1]["hosts"]


def steps(events: list[dict], name: str) -> dict[str, dict]:
    return {e["host"]: e for e in events if e["event"] == "host_step" and e["step"] == name}


@pytest.fixture(scope="module")
def probe_image(docker_client):
    """A one-file image made here (docker import), removed at the end."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        body = b"probe\n"
        info = tarfile.TarInfo("probe.txt")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    docker_client.api.import_image_from_data(data.getvalue(), repository="opskit-play-probe", tag="1")
    yield PROBE
    docker_client.images.remove(PROBE, force=True)


def test_fleet_check_passes_then_thresholds_fail_hosts(capsys, bed):
    book = str(BOOKS / "fleet-check.yaml")
    code, ev, err = play(capsys, book, "--host", "@testbed", "--check")
    assert code == 0, err
    r = recap(ev)
    assert sorted(r) == sorted(bed.names)
    assert all(c["failed"] == 0 and c["changed"] == 0 for c in r.values()), r
    assert all(c["ok"] == 5 and c["skipped"] == 1 for c in r.values()), r  # no image_cuda given
    facts = steps(ev, "facts")
    assert all("GPU(s), driver" in f["message"] and "legacy store" in f["message"] for f in facts.values())
    code, ev, _ = play(capsys, book, "--host", "@testbed", "--yes", "--var", "max_disk_percent=0",
                       "--var", "image_cuda='99.0'")
    assert code == 1
    assert all(s["status"] == "failed" for s in steps(ev, "disks below max_disk_percent").values())
    code, ev, _ = play(capsys, book, "--host", "@testbed", "--yes", "--var", "image_cuda='99.0'")
    cuda = steps(ev, "the driver's CUDA covers the training image's")
    assert code == 1 and all(s["status"] == "failed" and "older" in s["message"] for s in cuda.values())


def test_prepare_hosts_ships_once_to_every_host(capsys, bed, probe_image):
    book = str(BOOKS / "prepare-hosts.yaml")
    for host in bed.hosts:
        host.exec(["docker", "image", "rm", "-f", probe_image], user="opskit")
    args = (book, "--host", "@testbed", "--var", f"images=[{probe_image}]")
    code, ev, err = play(capsys, *args, "--check")
    assert code == 0, err
    ship = steps(ev, "images shipped")
    assert sorted(ship) == sorted(bed.names)
    assert all(s["status"] == "changed" and "would ship" in s["message"] for s in ship.values())
    assert all(h.exec(["docker", "image", "inspect", probe_image], user="opskit")[0] != 0 for h in bed.hosts)
    code, ev, err = play(capsys, *args, "--yes")
    assert code == 0, err
    assert all(s["status"] == "changed" for s in steps(ev, "images shipped").values())
    assert all(h.exec(["docker", "image", "inspect", probe_image], user="opskit")[0] == 0 for h in bed.hosts)
    code, ev, err = play(capsys, *args)  # nothing to change: no plan to confirm
    assert code == 0, err
    assert all(c["changed"] == 0 for c in recap(ev).values())


def test_cleanup_lists_then_removes_old_images_and_run_folders(capsys, bed, probe_image):
    host = bed.hosts[-1]
    code, ev, err = play(capsys, str(BOOKS / "prepare-hosts.yaml"), "--host", host.name, "--yes",
                         "--var", f"images=[{probe_image}]")
    assert code == 0, err
    for cmd in (["docker", "tag", probe_image, "opskit-deps:old"],
                ["mkdir", "-p", ".opskit/runs/old-run", ".opskit/runs/new-run"],
                ["touch", "-d", "20 days ago", ".opskit/runs/old-run"]):
        assert host.exec(["sh", "-c", 'cd && "$@"', "sh", *cmd], user="opskit")[0] == 0
    book = str(BOOKS / "cleanup.yaml")
    args = (book, "--host", host.name, "--var", "older_than_days=10")
    code, ev, err = play(capsys, *args, "--check")
    (step,) = [e for e in ev if e["event"] == "host_step"]
    # the image was made now (docker import): only the old folder is older than 10 days
    assert code == 0 and step["status"] == "changed" and "old-run" in step["message"]
    assert "new-run" not in step["message"] and "opskit-deps:old" not in step["message"]
    code, ev, err = play(capsys, book, "--host", host.name, "--var", "older_than_days=0", "--check")
    (step,) = [e for e in ev if e["event"] == "host_step"]
    assert "opskit-deps:old" in step["message"] and PROBE not in step["message"]
    assert host.exec(["docker", "image", "inspect", "opskit-deps:old"], user="opskit")[0] == 0
    code, ev, err = play(capsys, *args, "--yes")
    assert code == 0, err
    code, out = host.exec(["sh", "-c", "ls ~/.opskit/runs"], user="opskit")
    left = out.split()  # other tests' recent runs on this shared host stay too
    assert code == 0 and "new-run" in left and "old-run" not in left
    code, ev, err = play(capsys, book, "--host", host.name, "--var", "older_than_days=0", "--yes")
    assert code == 0, err
    assert host.exec(["docker", "image", "inspect", "opskit-deps:old"], user="opskit")[0] != 0
    assert host.exec(["docker", "image", "inspect", probe_image], user="opskit")[0] == 0
    code, ev, err = play(capsys, *args)  # second run: nothing older than 10 days is left
    assert code == 0 and all(c["changed"] == 0 for c in recap(ev).values())


QUICK = ["--small", "--steps", "8", "--batch-size", "16", "--log-every", "4",
         "--train-samples", "128", "--val-samples", "32"]


def test_train_sweep_runs_one_set_per_free_host_and_collects_all(capsys, bed, training_image,
                                                                 tmp_path, monkeypatch):
    import yaml

    runs = tmp_path / "runs"
    monkeypatch.setenv("OPSKIT_RUNS_DIR", str(runs))
    sets = yaml.safe_dump([[*QUICK, "--lr", "0.1"], [*QUICK, "--lr", "0.01"]], default_flow_style=True)
    args = (str(BOOKS / "train-sweep.yaml"), "--host", "@testbed", "--var", f"image={training_image}",
            "--var", f"option_sets={sets.strip()}", "--var", "sweep=sw", "--var", "min_gpu_free_mib=1")
    code, ev, err = play(capsys, *args, "--check")
    assert code == 0, err
    would = sorted(e["message"] for e in steps(ev, "runs").values())
    assert len(would) == 2 and all(w.startswith("would run lenet --small") for w in would)
    assert not runs.exists() or not any(runs.iterdir())
    code, ev, err = play(capsys, *args, "--yes")
    assert code == 0, (err, ev)
    done = steps(ev, "runs")
    assert sorted(done) == sorted(bed.names) and all(s["status"] == "changed" for s in done.values())
    hosts_used = set()
    for run_id, lr in (("sw-0", "0.1"), ("sw-1", "0.01")):
        card = json.loads((runs / run_id / "job.json").read_text())
        assert card["exit_code"] == 0 and card["collected"]["files"], card
        assert card["args"][-2:] == ["--lr", lr], card["args"]
        hosts_used.add(card["host"])
    assert hosts_used == set(bed.names)  # one set per free host
    code, ev, err = play(capsys, *args)  # second play: both runs already collected
    assert code == 0, err
    assert all(s["status"] == "ok" for s in steps(ev, "runs").values())


def test_run_detached_then_cancel_and_collect_steps(capsys, bed, training_image, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("OPSKIT_RUNS_DIR", str(runs))
    host = bed.names[0]
    book = tmp_path / "stop.yaml"
    long = [*QUICK[:2], "100000", *QUICK[3:]]
    book.write_text(f"""
- hosts: {host}
  steps:
    - run: {{model: lenet, args: {json.dumps(long)}, image: {training_image}, run_id: pb-stop, detach: true}}
    - name: training started
      shell:
        cmd: "until docker logs opskit-run-pb-stop 2>&1 | grep -q 'step '; do sleep 0.5; done"
        timeout: 120
      changed_when: false
    - cancel: {{run_id: pb-stop, grace: 60}}
    - collect: pb-stop
""")
    code, ev, err = play(capsys, str(book), "--yes")
    assert code == 0, (err, ev)
    got = {e["step"].split(" ")[0]: e for e in ev if e["event"] == "host_step"}
    assert got["training"]["status"] == "ok", got["training"]
    assert got["run"]["status"] == "changed" and "detached" in got["run"]["message"]
    assert got["cancel"]["status"] == "changed" and "exit" in got["cancel"]["message"]
    assert got["collect"]["status"] == "changed", got["collect"]
    card = json.loads((runs / "pb-stop" / "job.json").read_text())
    assert card["state"] != "running" and card["collected"]["files"]
    code, ev, err = play(capsys, str(book), "--yes")  # nothing changes the second time
    assert code == 0, err
    assert all(c["changed"] == 0 and c["ok"] == 4 for c in recap(ev).values()), ev
    bed.host(host).exec(["docker", "rm", "-f", "opskit-run-pb-stop"], user="opskit")
