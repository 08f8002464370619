"""nvidia-smi parsing on real captured output (tests/unit/data/nvidia-smi-*, from
utkuozdemir/nvidia_gpu_exporter's captures) and the fake nvidia-smi script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from opskit.checks import gpu
from opskit.checks.sections import GPU_APP_FIELDS, GPU_FIELDS, Section
from opskit.errors import ParseError

DATA = Path(__file__).parent / "data"
FAKE = Path(__file__).resolve().parents[2] / "opskit" / "testing" / "bin" / "nvidia-smi"


def fixture(name: str) -> str:
    lines = (DATA / name).read_text().splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("#"))


def test_query_gpu_h100_with_header_and_units():
    (row,) = gpu.parse_csv_query(fixture("nvidia-smi-h100-load.query-gpu.csv"), GPU_FIELDS)
    assert row["name"] == "NVIDIA H100 80GB HBM3" and row["index"] == 0
    assert row["memory.used"] == 19818 and row["memory.total"] == 81559
    assert row["utilization.gpu"] == 100 and row["temperature.gpu"] == 59
    assert row["power.draw"] == 631.95 and row["enforced.power.limit"] == 700.0
    assert row["fan.speed"] is None  # [N/A] on a datacenter card
    assert row["driver_version"] == "590.48.01"


def test_query_gpu_mig_has_no_utilization():
    (row,) = gpu.parse_csv_query(fixture("nvidia-smi-h100-mig-load.query-gpu.csv"), GPU_FIELDS)
    assert row["utilization.gpu"] is None and row["utilization.memory"] is None
    assert row["memory.used"] == 11125


def test_query_gpu_consumer_card_fan():
    (row,) = gpu.parse_csv_query(fixture("nvidia-smi-rtx2080-595-load.query-gpu.csv"), GPU_FIELDS)
    assert row["fan.speed"] == 38 and row["name"] == "NVIDIA GeForce RTX 2080 SUPER"


def test_compute_apps():
    apps = gpu.parse_gpu_processes(fixture("nvidia-smi-h100-load.compute-apps.csv"), "h")
    assert [(p.pid, p.used_memory, p.command) for p in apps] == [
        (11327, 2566, "memhog"), (11328, 1542, "memhog"), (11345, 15690, "gpu_burn")]
    assert gpu.parse_gpu_processes(fixture("nvidia-smi-h100-idle.compute-apps.csv"), "h") == []


def test_compute_apps_windows_paths_and_unknown_memory():
    apps = gpu.parse_gpu_processes(
        fixture("nvidia-smi-rtx2080-win-610-load.compute-apps.csv"), "h")
    assert len(apps) == 21 and all(p.used_memory is None for p in apps)
    edge = next(p for p in apps if p.pid == 17840)
    assert edge.process_name.startswith("C:\\Program Files (x86)\\")
    assert edge.command == "msedgewebview2.exe"


def test_cuda_and_driver_versions():
    assert gpu.parse_cuda_version(fixture("nvidia-smi-h100-load.default.txt")) == "13.1"
    assert gpu.parse_cuda_version(fixture("nvidia-smi-h100.version.txt")) == "13.1"
    # driver 610 renamed them: "CUDA UMD Version" / "KMD Version"
    assert gpu.parse_cuda_version(fixture("nvidia-smi-rtx2080-610-load.default.txt")) == "13.3"
    assert gpu.parse_cuda_version(fixture("nvidia-smi-rtx2080-610.version.txt")) == "13.3"
    assert gpu.parse_driver_version(fixture("nvidia-smi-rtx2080-610.version.txt")) == "610.57.04"
    assert gpu.parse_driver_version(fixture("nvidia-smi-h100-load.default.txt")) == "590.48.01"
    assert gpu.parse_cuda_version("no version here") is None


def test_name_with_commas_stays_in_the_last_column():
    text = "0, GPU-1, 00000000:01:00.0, 550.1, 40, 30, 5, 1, 10, 100, 50.5, 250.0, Odd, Name\n"
    (row,) = gpu.parse_csv_query(text, GPU_FIELDS)
    assert row["name"] == "Odd, Name" and row["power.draw"] == 50.5


@pytest.mark.parametrize("text, bad", [
    ("0, GPU-1, 40\n", "0, GPU-1, 40"),
    ("0, GPU-1, bus, 550, hot, 30, 5, 1, 10, 100, 50, 250, X\n", "hot"),
    ("index, uuid, name\n", "index, uuid, name"),
])
def test_query_garbage_names_host_and_line(text, bad):
    with pytest.raises(ParseError) as err:
        gpu.parse_csv_query(text, GPU_FIELDS, "gpu3", what="nvidia-smi --query-gpu")
    assert "gpu3" in str(err.value) and bad in str(err.value)


def test_report_states():
    absent = gpu.gpu_report("h", Section("gpu_query", "", "nvidia-smi: command not found", 127),
                            None, None)
    assert absent.status == "absent" and absent.message == "no NVIDIA GPU (nvidia-smi not found)"
    broken = gpu.gpu_report("h", Section("gpu_query", gpu_fail := (
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"), "", 9),
        None, None)
    assert broken.status == "error" and gpu_fail.strip() in broken.message
    hung = gpu.gpu_report("h", Section("gpu_query", "", "", 124), None, None)
    assert hung.status == "error"
    assert hung.message == "nvidia-smi did not answer within 20s (stopped on the host)"
    assert hung.problems == (hung.message,)
    driver = gpu.gpu_report("h", Section("gpu_query", "", "nvidia-smi: command not found, yet "
                                         "the NVIDIA driver is loaded", 127), None, None)
    assert driver.status == "error" and driver.problems  # a GPU host without its tool


# -- the fake nvidia-smi ----------------------------------------------------------------------
GPUS = {
    "driver_version": "590.48.01", "cuda_version": "13.1",
    "gpus": [
        {"name": "NVIDIA H100 80GB HBM3", "pci.bus_id": "00000000:00:09.0",
         "temperature.gpu": 59, "fan.speed": None, "utilization.gpu": 100,
         "utilization.memory": 11, "memory.used": 19818, "memory.total": 81559,
         "power.draw": 631.95, "enforced.power.limit": 700.0},
        {"name": "NVIDIA H100 80GB HBM3", "temperature.gpu": 30, "utilization.gpu": 0,
         "utilization.memory": 0, "memory.used": 0, "memory.total": 81559,
         "power.draw": 70.0, "enforced.power.limit": 700.0},
    ],
    "processes": [{"gpu": 0, "pid": 4242, "process_name": "python", "used_gpu_memory": 15690},
                  {"gpu": 1, "pid": 4343, "process_name": "/opt/a, b/train",
                   "used_gpu_memory": None}],
}


def fake(tmp_path, *args, data=GPUS):
    path = tmp_path / ("missing.json" if data is None else "gpus.json")
    if data is not None:
        path.write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, str(FAKE), *args], capture_output=True, text=True,
                          env={"OPSKIT_FAKE_NVIDIA_SMI": str(path)}, timeout=30)
    return proc.returncode, proc.stdout


def test_fake_answers_what_status_asks(tmp_path):
    code, out = fake(tmp_path, f"--query-gpu={','.join(GPU_FIELDS)}",
                     "--format=csv,noheader,nounits")
    assert code == 0
    rows = gpu.parse_csv_query(out, GPU_FIELDS)
    assert [r["index"] for r in rows] == [0, 1]
    assert rows[0]["memory.used"] == 19818 and rows[0]["fan.speed"] is None
    assert rows[1]["uuid"] == "GPU-00000000-0000-0000-0000-000000000001"
    code, out = fake(tmp_path, f"--query-compute-apps={','.join(GPU_APP_FIELDS)}",
                     "--format=csv,noheader,nounits")
    apps = gpu.parse_gpu_processes(out, "h", [gpu.Gpu(r) for r in rows])
    assert [(a.pid, a.gpu_index, a.used_memory) for a in apps] == [(4242, 0, 15690),
                                                                     (4343, 1, None)]
    assert apps[1].process_name == "/opt/a, b/train"


def test_fake_with_header_and_units_like_the_real_tool(tmp_path):
    code, out = fake(tmp_path, "--query-gpu=index,memory.used,power.draw,name", "--format=csv")
    assert out.splitlines()[0] == "index, memory.used [MiB], power.draw [W], name"
    assert out.splitlines()[1] == "0, 19818 MiB, 631.95 W, NVIDIA H100 80GB HBM3"
    rows = gpu.parse_csv_query(out, ["index", "memory.used", "power.draw", "name"])
    assert rows[0]["power.draw"] == 631.95


def test_fake_versions_and_failures(tmp_path):
    assert gpu.parse_cuda_version(fake(tmp_path, "--version")[1]) == "13.1"
    assert gpu.parse_cuda_version(fake(tmp_path)[1]) == "13.1"
    assert gpu.parse_driver_version(fake(tmp_path)[1]) == "590.48.01"
    assert "GPU 1: NVIDIA H100" in fake(tmp_path, "-L")[1]
    code, out = fake(tmp_path, "--query-gpu=bogus", "--format=csv")
    assert code == 2 and 'Field "bogus" is not a valid field' in out
    code, out = fake(tmp_path, "--query-gpu=index", "--format=csv", data=None)
    assert code == 9 and "couldn't communicate with the NVIDIA driver" in out
    code, out = fake(tmp_path, "--query-gpu=index", "--format=csv", data={"gpus": []})
    assert code == 6 and "No devices were found" in out
    code, out = fake(tmp_path, "--query-gpu=index", "--format=csv",
                     data={"fail": {"message": "Unable to determine the device handle",
                                    "exit_code": 15}, "gpus": []})
    assert code == 15 and "device handle" in out


@pytest.mark.skipif(Path("/etc/opskit/fake-nvidia-smi.json").exists(),
                    reason="this machine has its own fake GPU data")
def test_fake_default_data_ships_beside_the_script():
    env = {"PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, str(FAKE), f"--query-gpu={','.join(GPU_FIELDS)}",
                           "--format=csv,noheader,nounits"], capture_output=True, text=True,
                          env=env, timeout=30)
    rows = gpu.parse_csv_query(proc.stdout, GPU_FIELDS)
    assert proc.returncode == 0 and [r["index"] for r in rows] == [0, 1]
    assert all(r["name"] == "NVIDIA H100 80GB HBM3" for r in rows)
