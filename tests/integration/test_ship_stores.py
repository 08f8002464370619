"""ship to a Docker 26 host on the containerd image store over real SSH: only the missing
layers travel in the hybrid archive, no fallback, the host's image proven by digests and diff
IDs; and a host whose engine lists a layer it cannot unpack gets the full archive, saying why.
(The four local->host directions, run-remote included, are in test_engines_matrix.py.)"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from opskit.hosts.group import connect
from opskit.images import ship as shipmod

MIB = 1 << 20


def small_image(client, tmp: Path, tag: str, base: str, files: dict[str, bytes]) -> str:
    ctx = tmp / f"ctx-{tag.replace(':', '-').replace('/', '-')}"
    ctx.mkdir()
    lines = [f"FROM {base}"]
    for name, data in files.items():
        (ctx / name).write_bytes(data)
        os.utime(ctx / name, (0, 0))  # same bytes, same layer, whenever it is built
        lines.append(f"COPY {name} /app/{name}")
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
    client.images.build(path=str(ctx), tag=tag, rm=True, pull=False)
    return tag


def host_image(host, ref: str) -> tuple[int, str]:
    return host.exec(["docker", "image", "inspect", "-f", "{{.Id}} {{json .RootFS.Layers}}", ref])


def test_one_line_change_to_a_containerd_host_sends_only_that_layer(docker_client, containerd_host, base_image, tmp_path):
    spec, host = containerd_host.specs()[0], containerd_host.hosts[0]
    data = random.Random(8).randbytes(2 * MIB)
    v1 = small_image(docker_client, tmp_path, "opskit-shipstore:v1", base_image, {"data.bin": data, "settings.py": b"VALUE = 1\n"})
    v2 = small_image(docker_client, tmp_path, "opskit-shipstore:v2", base_image, {"data.bin": data, "settings.py": b"VALUE = 2\n"})
    image, plans = shipmod.plan_only(v1, docker_client, [spec])
    assert plans.outcomes[0].value.store == "containerd"
    first = shipmod.ship(docker_client, v1, [spec]).outcomes[0]
    assert first.ok, first.error
    assert first.value.fallback == "" and first.value.store == "containerd"
    r = shipmod.ship(docker_client, v2, [spec]).outcomes[0]
    assert r.ok, r.error
    local = shipmod.local_image(docker_client, v2)
    assert (r.value.mode, r.value.layers_sent, r.value.fallback) == ("delta", 1, "")  # only the code layer
    assert r.value.wire_bytes < 16 * 1024
    assert r.value.host_image_id == local.described.manifest_digest != local.image_id  # the containerd store's ID
    code, out = host_image(host, v2)
    assert code == 0 and json.loads(out.split(" ", 1)[1]) == local.diff_ids  # the very layers
    code, out = host.exec(["docker", "run", "--rm", "--pull", "never", "--network", "none", "--entrypoint", "cat",
                           v2, "/app/settings.py"])
    assert code == 0 and out.strip() == "VALUE = 2", out
    again = shipmod.ship(docker_client, v2, [spec]).outcomes[0].value
    assert (again.mode, again.wire_bytes, again.host_image_id) == ("none", 0, r.value.host_image_id)


@pytest.fixture(params=["legacy", "containerd"])
def any_host(request):
    """One host of each image store (the same test runs on both)."""
    bed = request.getfixturevalue("gpu_hosts" if request.param == "legacy" else "containerd_host")
    return bed.specs()[0], bed.hosts[0]


def test_a_host_that_lost_a_lower_layer_after_planning_gets_the_full_archive(docker_client, any_host, tmp_path):
    """The plan counted on the host's lower layers; they are gone by the time the archive
    loads (someone pruned the host). The partial load fails (on the containerd store docker
    load may even exit 0), what it left is removed, and the full archive goes, saying why."""
    spec, host = any_host
    low = small_image(docker_client, tmp_path, "opskit-shipstore:low", "scratch",
                      {"a.bin": random.Random(1).randbytes(MIB), "b.txt": b"lower\n"})
    top = small_image(docker_client, tmp_path, "opskit-shipstore:top", low, {"c.txt": b"top\n"})
    assert shipmod.ship(docker_client, low, [spec]).ok
    image = shipmod.local_image(docker_client, top)
    t = connect(spec)
    spool = tmp_path / "spool"
    spool.mkdir()
    try:
        hp = shipmod.plan_host(t, image)
        assert [lay.index for lay in hp.send] == [2]  # the two lower layers are there now
        for argv in (["docker", "image", "rm", "-f", low], ["docker", "image", "prune", "-f"]):
            assert host.exec(argv)[0] == 0
        parts = shipmod.save_wanted(docker_client, image, [hp], str(spool))[hp.codec]
        events: list[str] = []
        r = shipmod.ship_one(t, image, hp, parts, shipmod.ShipOptions(on_event=lambda h, m: events.append(m)))
    finally:
        t.close()
    assert (r.mode, r.layers_sent, r.store) == ("full", 3, hp.store)
    assert r.fallback and any("sending the full archive" in e for e in events), events
    assert r.host_image_id == (parts.manifest_digest if hp.store == "containerd" else parts.config_digest)
    code, out = host.exec(["docker", "create", "--pull", "never", "--entrypoint", "/x", top])
    assert code == 0, out
    host.exec(["docker", "rm", "-f", out.strip().splitlines()[-1]])
    for ref in (top, low):
        host.exec(["docker", "image", "rm", "-f", ref])


def test_from_a_containerd_local_engine_one_ship_to_hosts_of_both_stores(docker_client, local_engine_factory,
                                                                         gpu_hosts, containerd_host, base_image,
                                                                         tmp_path):
    """The sending engine on the containerd store (layers read from its content store, gzip
    blobs as stored): one call, a legacy and a containerd host, only the code layer travels."""
    from opskit.testing.localengine import copy_image

    engine = local_engine_factory("containerd")
    copy_image(docker_client, engine, base_image)
    specs = [gpu_hosts.specs()[0], containerd_host.specs()[0]]
    hosts = {gpu_hosts.hosts[0].name: gpu_hosts.hosts[0], containerd_host.hosts[0].name: containerd_host.hosts[0]}
    for value in (1, 2):
        ref = small_image(engine.client, tmp_path, f"opskit-shipstore:cd-v{value}", base_image,
                          {"settings.py": f"VALUE = {value}\n".encode()})
        result = shipmod.ship(engine.client, ref, specs)
        assert result.ok, result.failed
    local = shipmod.local_image(engine.client, ref)
    assert local.store == "containerd" and local.described is not None
    by_host = {o.host: o.value for o in result}
    assert {r.store for r in by_host.values()} == {"legacy", "containerd"}
    for name, r in by_host.items():
        assert (r.mode, r.layers_sent, r.fallback, r.source) == ("delta", 1, "", "containerd store"), r
        # The legacy store names the image by its config digest; the containerd store by the
        # manifest, which is the local image's own (sent as stored).
        assert r.host_image_id == (local.config_digest if r.store == "legacy" else local.described.manifest_digest)
        code, out = hosts[name].exec(["docker", "run", "--rm", "--pull", "never", "--network", "none",
                                      "--entrypoint", "cat", ref, "/app/settings.py"])
        assert code == 0 and out.strip() == "VALUE = 2", out
