"""The one host-facts gatherer: a run's facts and the status snapshot from the sections of one
round trip (captured outputs; the real script through real sh; preflight on those facts)."""

from __future__ import annotations

import pytest

from opskit.checks.facts import FACT_SECTIONS, build_facts, gather_facts
from opskit.checks.sections import Section, build_script
from opskit.checks.status import STATUS_SECTIONS
from opskit.errors import DockerUnavailable, JobError
from opskit.hosts.local import LocalTransport
from opskit.jobs.preflight import evaluate, gather
from opskit.jobs.spec import GpuRequest
from opskit.testing.fake import FakeReply, FakeTransport
from tests.unit.test_checks_status import captured_sections, fixture

GIB = 1 << 30
DF_ROOT = ("Filesystem 1-blocks Used Available Capacity Mounted on\n"
           "/dev/vda 270553174016 33918775296 75025518592 32% /var/lib/docker\n")
DF_HOME = ("Filesystem 1-blocks Used Available Capacity Mounted on\n"
           "/dev/vdb 107374182400 1073741824 5368709120 1% /home\n")


def run_sections_of(**override: Section) -> dict[str, Section]:
    gpu = {
        "gpu_query": Section("gpu_query", fixture("nvidia-smi-h100-load.query-gpu.csv"), "", 0),
        "gpu_apps": Section("gpu_apps", "", "", 0),
        "gpu_version": Section("gpu_version", fixture("nvidia-smi-h100.version.txt"), "", 0),
    }
    base = captured_sections(**gpu)
    base.update({
        "ident": Section("ident", "1000\n1000\n/home/opskit\n", "", 0),
        "docker_info": Section("docker_info", fixture("docker-info.json"), "", 0),
        "run_disks": Section("run_disks", f"@root /var/lib/docker\n{DF_ROOT}@home /home/opskit\n"
                             f"{DF_HOME}", "", 0),
        "nvidia_hook": Section("nvidia_hook", "/usr/bin/nvidia-container-runtime-hook\n", "", 0),
    })
    base.update(override)
    return base


def test_facts_and_snapshot_from_one_set_of_sections() -> None:
    facts = build_facts("gpu1", run_sections_of())
    assert (facts.uid, facts.gid, facts.home) == (1000, 1000, "/home/opskit")
    assert facts.docker_version == "20.10.24+dfsg1" and facts.docker_root == "/var/lib/docker"
    assert facts.mem_total == 25276510208 and facts.ncpu == 2 and "runc" in facts.runtimes
    assert facts.root_free == 75025518592 and facts.home_free == 5368709120
    assert facts.nvidia_hook == "/usr/bin/nvidia-container-runtime-hook"
    # one data model: the GPUs are the snapshot's rows, CUDA its version
    assert facts.gpus == list(facts.snapshot.gpu.gpus) and facts.cuda == "13.1"
    card = facts.to_dict()
    assert card["gpus"] == [{"index": "0", "name": "NVIDIA H100 80GB HBM3",
                             "driver": "590.48.01", "memory_mib": 81559}]
    assert card["cuda"] == facts.snapshot.to_dict()["gpu"]["cuda_version"]


def test_preflight_reads_the_gathered_facts() -> None:
    facts = build_facts("gpu1", run_sections_of())
    checks = {c.name: c for c in evaluate(facts, GpuRequest("devices", devices=("0",)), GIB, GIB, GIB)}
    assert all(c.ok for c in checks.values()), checks
    assert "1 GPU(s) visible (NVIDIA H100 80GB HBM3)" in checks["gpus"].detail
    assert "driver 590.48.01, CUDA 13.1" in checks["gpus"].detail
    absent = evaluate(facts, GpuRequest("devices", devices=("1",)), GIB, 0, GIB)
    assert "GPU(s) 1 asked for are not there" in next(c.detail for c in absent if c.name == "gpus")


def test_a_gpu_reporting_an_nvml_error_is_not_offered_to_a_run() -> None:
    query = fixture("nvidia-smi-h100-load.query-gpu.csv").replace(", 59, ", ", [GPU requires reset], ")
    facts = build_facts("gpu1", run_sections_of(gpu_query=Section("gpu_query", query, "", 0)))
    assert facts.snapshot.gpu.status == "degraded" and len(facts.snapshot.gpu.gpus) == 1
    assert facts.gpus == []  # listed by status, not usable by a run
    gpus = next(c for c in evaluate(facts, GpuRequest("all"), GIB, 0, GIB) if c.name == "gpus")
    assert not gpus.ok and "nvidia-smi shows none" in gpus.detail


def test_login_user_without_a_home_is_refused() -> None:
    sections = run_sections_of(ident=Section("ident", "1000\n1000\n\n", "", 0))
    with pytest.raises(JobError, match=r"gpu1: the login user's \$HOME is '', not an absolute path"):
        build_facts("gpu1", sections)
    assert build_facts("here", sections, local_home="/root").home == "/root"  # a local run


def test_engine_refusing_the_login_user_is_docker_unavailable() -> None:
    denied = Section("docker_info", "", "permission denied while trying to connect to the Docker "
                     "daemon socket at unix:///var/run/docker.sock", 1)
    with pytest.raises(DockerUnavailable, match="gpu1: docker info: permission denied"):
        build_facts("gpu1", run_sections_of(docker_info=denied))


def test_df_that_says_nothing_leaves_free_space_unknown() -> None:
    facts = build_facts("gpu1", run_sections_of(run_disks=Section(
        "run_disks", "@root /var/lib/docker\n@home /home/opskit\n", "df: timed out", 124)))
    assert facts.root_free is None and facts.home_free is None
    disk = next(c for c in evaluate(facts, GpuRequest("none"), GIB, 0, GIB) if c.name == "disk")
    assert not disk.ok and disk.detail == "cannot read free space at /var/lib/docker"


def test_one_round_trip_gathers_everything() -> None:
    """Through the fake: exactly one command, the fixed script of every section."""
    names = (*STATUS_SECTIONS, *FACT_SECTIONS)
    answer = "".join(f"@@opskit-section:begin {n}\n{s.stdout}\n@@opskit-section:end {n} "
                     f"{s.exit_code}\n" for n, s in _all_sections().items())
    fake = FakeTransport("gpu1", {("sh", "-s"): FakeReply(stdout=answer)})
    facts = gather(fake)
    assert len(fake.calls) == 1 and fake.calls[0][1] == build_script(names).encode()
    assert facts.home == "/home/opskit" and facts.snapshot.hostname == "c1"


def _all_sections() -> dict[str, Section]:
    secs = run_sections_of()
    for name in (*STATUS_SECTIONS, *FACT_SECTIONS):
        secs.setdefault(name, Section(name, "", "", 0))
    return secs


def test_the_real_script_on_this_machine() -> None:
    facts = gather_facts(LocalTransport())
    assert facts.home.startswith("/") and facts.snapshot is not None
    assert facts.snapshot.cpus and facts.snapshot.cpus >= 1
