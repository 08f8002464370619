"""ship and run-remote across image stores: every direction between a legacy (Docker 20.10,
overlay2) and a containerd-store (Docker 26.1.5) engine, the local engine and the host alike.

The legacy local engine is this machine's own; the containerd one is a Docker-in-Docker engine
made the local engine (:mod:`opskit.testing.localengine`), holding a copy of the training image
and building the test's own layer itself. Hosts: a legacy GPU host (``gpu_hosts``) and a
containerd-store one (``containerd_host``). "Verified" means the host's image has the very
config digest and layer diff IDs of the local one (image IDs differ by store; see
:mod:`opskit.testing.stores`) and runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opskit.images import ship as shipmod
from opskit.testing.localengine import copy_image
from opskit.testing.stores import host_facts, local_facts

QUICK = ["lenet", "--small", "--steps", "12", "--batch-size", "16", "--log-every", "4",
         "--train-samples", "256", "--val-samples", "64"]
REPO = "opskit-train-matrix"
SESSION = os.getpid()  # tags of this session's own (see ``base``)
BUILT: list[tuple[Any, str]] = []  # (engine client, tag) of the images the tests built, removed at the end
DIRECTIONS = [("legacy", "legacy"), ("legacy", "containerd"), ("containerd", "containerd"),
              ("containerd", "legacy")]


@dataclass
class Source:
    kind: str
    client: Any  # docker-py client of the local engine
    env: dict[str, str]  # what points opskit at it ({} for this machine's own engine)


@pytest.fixture(scope="module")
def base(docker_client, training_image):
    """The training image under a tag of this module's own, per session (the shared tag may be
    rebuilt by a parallel session from another tree while this module runs, and two sessions
    running this module would move each other's tags)."""
    docker_client.images.get(training_image).tag(REPO, f"base-{SESSION}")
    yield f"{REPO}:base-{SESSION}"
    for client, tag in [*BUILT, (docker_client, f"{REPO}:base-{SESSION}")]:
        try:
            client.images.remove(tag, force=True)
        except Exception:  # noqa: BLE001 - an engine already gone has nothing left to remove
            pass


@pytest.fixture(scope="module")
def sources(docker_client, local_engine_factory, base) -> dict[str, Source]:
    engine = local_engine_factory("containerd")
    copy_image(docker_client, engine, base)  # docker save | docker load, ~1 GB
    return {"legacy": Source("legacy", docker_client, {}),
            "containerd": Source("containerd", engine.client, engine.env())}


@pytest.fixture(scope="module")
def targets(gpu_hosts, containerd_host) -> dict[str, tuple[Any, Any]]:
    return {"legacy": (gpu_hosts, gpu_hosts.hosts[0]),
            "containerd": (containerd_host, containerd_host.hosts[0])}


def opskit(env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opskit", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def code_image(client: Any, base: str, tmp: Path, tag: str, value: str) -> str:
    """``base`` plus one layer of code, built by ``client``'s engine."""
    ctx = tmp / f"ctx-{tag.replace(':', '-')}"
    ctx.mkdir()
    (ctx / "settings.py").write_text(f"VALUE = {value!r}\n")
    os.utime(ctx / "settings.py", (0, 0))
    (ctx / "Dockerfile").write_text(f"FROM {base}\nCOPY settings.py /app/src/settings.py\n")
    client.images.build(path=str(ctx), tag=tag, rm=True, pull=False)
    BUILT.append((client, tag))
    return tag


def remove_run(host: Any, run_id: str) -> None:
    """Remove a run's container and results folder from a (shared, session-wide) test host."""
    host.exec(["docker", "rm", "-f", f"opskit-run-{run_id}"])
    host.exec(["rm", "-rf", f"/home/opskit/.opskit/runs/{run_id}"])


def assert_verified(host: Any, client: Any, ref: str, value: str | None = None) -> None:
    here, there = local_facts(client, ref), host_facts(host, ref)
    assert there is not None, f"{host.name} has no image {ref}"
    assert there.same_image() == here.same_image()  # config digest and diff IDs
    if value is not None:  # and it runs
        code, out = host.exec(["docker", "run", "--rm", "--entrypoint", "cat", ref, "/app/src/settings.py"])
        assert code == 0 and out.strip() == f"VALUE = {value!r}", out


@pytest.mark.parametrize(("src", "dst"), DIRECTIONS, ids=[f"{a}-to-{b}" for a, b in DIRECTIONS])
def test_ship_and_run_remote_between_stores(src, dst, sources, targets, base, tmp_path, request):
    source, (bed, host) = sources[src], targets[dst]
    env = {**os.environ, **bed.env(), **source.env, "OPSKIT_RUNS_DIR": str(tmp_path / "runs"),
           "COLUMNS": "200"}
    shipped = opskit(env, "ship", base, "--host", host.name, "--json")
    assert shipped.returncode == 0, shipped.stderr + shipped.stdout
    first = json.loads(shipped.stdout)["hosts"][host.name]
    assert first["image_id"] and first["fallback"] == "" and first["mode"] in ("full", "none", "delta")
    assert first["store"] in (dst, "")
    assert_verified(host, source.client, base)

    value = f"{src} to {dst}"
    image = code_image(source.client, base, tmp_path, f"{REPO}:{src}-{dst}-{SESSION}", value)
    run_id = f"mx-{src[:2]}-{dst[:2]}"
    request.addfinalizer(lambda: remove_run(host, run_id))  # the shared hosts' job lists stay as they were
    res = opskit(env, "run-remote", "--host", host.name, "--image", image, "--run-id", run_id, *QUICK)
    assert res.returncode == 0, res.stderr + res.stdout
    assert "step 12/12" in res.stdout
    run = Path(env["OPSKIT_RUNS_DIR"]) / run_id
    assert json.loads((run / "results/summary.json").read_text())["status"] == "completed"
    card = json.loads((run / "job.json").read_text())
    assert card["image"]["layers"] == list(local_facts(source.client, image).diff_ids)
    assert card["collected"]["verified"] is True
    assert_verified(host, source.client, image, value)
    # Only the missing (code) layer travelled, in the one hybrid archive, with no fallback;
    # the card names the image's ID on each side (they differ when the stores differ).
    assert card["image"]["shipped"] == {**card["image"]["shipped"], "mode": "delta", "layers_sent": 1, "fallback": ""}
    assert card["image"]["host_store"] == dst
    assert card["image"]["host_id"] == host_facts(host, image).image_id
    assert card["image"]["id"] == local_facts(source.client, image).image_id


def test_one_ship_to_a_legacy_and_a_containerd_host(docker_client, gpu_hosts, containerd_host, base, tmp_path):
    specs = gpu_hosts.specs()[:1] + containerd_host.specs()
    assert shipmod.ship(docker_client, base, specs).ok  # the lower layers (already there in a full run)
    image = code_image(docker_client, base, tmp_path, f"{REPO}:both-{SESSION}", "both")
    result = shipmod.ship(docker_client, image, specs)
    assert result.ok, result.failed
    assert sorted(o.host for o in result) == sorted(s.name for s in specs)
    got = {(o.value.store, o.value.mode, o.value.layers_sent, o.value.fallback) for o in result}
    assert got == {("legacy", "delta", 1, ""), ("containerd", "delta", 1, "")}  # only the code layer, no fallback
    for host in (gpu_hosts.hosts[0], containerd_host.hosts[0]):
        assert_verified(host, docker_client, image, "both")
