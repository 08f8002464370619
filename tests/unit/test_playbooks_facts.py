"""The facts a playbook's when: reads, from the one host-facts gatherer's sections (the fake
GPU host answers them as a GPU host's script would)."""

from __future__ import annotations

import json

from opskit.playbooks.hostfacts import FACT_NAMES, gather
from opskit.testing.fakehost import FakeEngine, fake_gpu_host, host_sections


def test_gpu_host_facts(tmp_path):
    facts = gather(fake_gpu_host("gpu1", FakeEngine(), home=tmp_path, gpus=2))
    assert set(facts) == set(FACT_NAMES)
    assert facts["gpu_count"] == 2 and len(facts["gpus"]) == 2
    g = facts["gpus"][0]
    assert g["memory_free"] == g["memory_total"] - g["memory_used"]
    assert facts["gpu_free_mib"] == max(x["memory_free"] for x in facts["gpus"])
    assert facts["driver_version"] and facts["cuda_version"]
    assert facts["docker_version"] and facts["image_store"] == "legacy" and facts["docker_error"] is None
    assert facts["status"]["host"] == "gpu1" and facts["status"]["gpu"]["gpus"]


def test_containerd_store_and_a_host_without_an_engine(tmp_path):
    sections = dict(host_sections(gpus=0, home=str(tmp_path)))
    info = json.loads(sections["docker_info"][0])
    info["DriverStatus"] = [["driver-type", "io.containerd.snapshotter.v1"]]
    sections["docker_info"] = (json.dumps(info) + "\n", "", 0)
    facts = gather(fake_gpu_host("cd1", FakeEngine(), home=tmp_path, sections=sections))
    assert facts["image_store"] == "containerd" and facts["gpu_count"] == 0 and facts["gpu_free_mib"] == 0
    sections["docker_info"] = ("", "permission denied while trying to connect to the Docker daemon socket", 1)
    facts = gather(fake_gpu_host("nodock", FakeEngine(), home=tmp_path, sections=sections))
    assert facts["docker_version"] is None and facts["image_store"] is None
    assert "permission denied" in facts["docker_error"]
