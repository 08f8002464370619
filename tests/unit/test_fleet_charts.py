"""The numbers behind the waffle of GPUs (state of each GPU) and the Venn diagram of layers."""

from __future__ import annotations

from types import SimpleNamespace

from opskit.checks.gpu import Gpu, GpuProcess, GpuReport
from opskit.reports.figures import to_plotly
from opskit.reports.fleet import gpu_cells, gpu_state, venn, waffle


def g(index, temp=40, util=0, procs=(), errors=()):
    return Gpu({"index": index, "name": "H100", "temperature.gpu": temp, "utilization.gpu": util,
                "memory.used": 10, "memory.total": 80}, tuple(procs), tuple(errors))


def snap(host, gpus, problems=()):
    return SimpleNamespace(host=host, gpu=GpuReport("ok", gpus=tuple(gpus), problems=tuple(problems)))


def test_states_busy_idle_hot_faulty():
    proc = GpuProcess("GPU-1", 42, "/usr/bin/python", 100)
    assert gpu_state(g(0, util=95)) == "busy"
    assert gpu_state(g(0, util=0, procs=[proc])) == "busy"  # a process holds it, even at 0%
    assert gpu_state(g(0, util=9)) == "idle"
    assert gpu_state(g(0, temp=91, util=100)) == "too hot"  # hot whatever the load
    assert gpu_state(g(0, temp=None, util=None)) == "idle"  # MIG: no utilisation figure
    assert gpu_state(g(0, errors=[("temperature.gpu", "GPU requires reset")])) == "faulty"
    assert gpu_state(g(0, temp=80), hot_c=75) == "too hot"


def test_cells_per_host_and_lost_gpus():
    cells = gpu_cells([snap("a", [g(0, util=50), g(1)]),
                       snap("b", [g(0, temp=95)], ["GPU 00000000:4A:00.0 is lost: Unable to determine"])])
    assert [(c["label"], c["state"]) for c in cells] == [
        ("a:0", "busy"), ("a:1", "idle"), ("b:0", "too hot"), ("b:00000000:4A:00.0", "faulty")]
    fig = waffle(cells)
    assert fig.title == "GPUs of the fleet: 1 busy, 1 idle, 1 too hot, 1 faulty"
    data = to_plotly(fig)["data"]
    assert [(d["name"], d["x"], d["y"]) for d in data] == [
        ("busy (1)", [0], [0]), ("idle (1)", [1], [0]), ("too hot (1)", [2], [0]), ("faulty (1)", [3], [0])]


def test_waffle_wraps_rows_of_sixteen():
    cells = [{"label": str(i), "state": "idle", "text": ""} for i in range(20)]
    (idle, *_) = to_plotly(waffle(cells))["data"]
    assert idle["x"][15:17] == [15, 0] and idle["y"][15:17] == [0, -1]


def test_venn_regions_and_bytes():
    fig = venn("app:v1", "app:v2", (1, 5, 2), (10, 2 << 30, 3 << 20))
    assert fig.sets == {"a": "app:v1", "b": "app:v2", "only_a": 1, "both": 5, "only_b": 2,
                        "only_a_size": "10 B", "both_size": "2.0 GiB", "only_b_size": "3.0 MiB"}
    texts = to_plotly(fig)["data"][0]["text"]
    assert texts == ["1 layers<br>10 B", "5 layers<br>2.0 GiB", "2 layers<br>3.0 MiB", "app:v1", "app:v2"]


def test_hosts_venn_counts_held_layers():
    from opskit.reports.fleet import hosts_venn

    lay = [SimpleNamespace(index=i, size=10 ** i) for i in range(4)]
    image = SimpleNamespace(ref="app:v3", layers=lay)
    a = SimpleNamespace(host="gpu1", send=[lay[3]])  # holds 0, 1, 2
    b = SimpleNamespace(host="gpu2", send=[lay[2], lay[3]])  # holds 0, 1
    fig = hosts_venn(image, [a, b])
    assert (fig.sets["only_a"], fig.sets["both"], fig.sets["only_b"]) == (1, 2, 0)
    assert fig.sets["both_size"] == "11 B" and fig.sets["only_a_size"] == "100 B"
    assert fig.note.endswith("1 of 4 held by neither")
