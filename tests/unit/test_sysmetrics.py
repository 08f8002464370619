"""System metrics in metrics.jsonl: measured with psutil on a real run; the GPU branch through
torch.cuda's own calls (monkeypatched here: no GPU on this machine)."""

from __future__ import annotations

import json
import os

import pytest

from opskit.train.args import TrainArgs
from opskit.train.entry import train
from opskit.train.sysmetrics import SystemSampler

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_run_logs_process_and_host_figures(tmp_path):
    args = TrainArgs(model="lenet", small=True, steps=6, batch_size=8, train_samples=48,
                     val_samples=8, log_every=2, device="cpu", out=str(tmp_path), progress="none")
    assert train(args) == 0
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_lines = [r for r in lines if r["kind"] == "train"]
    assert len(train_lines) == 3
    for r in train_lines:
        assert 0 < r["sys_proc_rss_bytes"] < os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        assert 0 <= r["sys_host_mem_percent"] <= 100 and 0 <= r["sys_host_cpu_percent"] <= 100
        assert r["sys_proc_cpu_percent"] >= 0 and "sys_gpu_mem_bytes" not in r
    assert all("sys_proc_rss_bytes" not in r for r in lines if r["kind"] == "eval")


def test_gpu_figures_come_from_torch_cuda(monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d: (calls.append(d) or (3 << 30, 8 << 30)))

    def no_nvml(d):
        raise ModuleNotFoundError("pynvml")

    monkeypatch.setattr(torch.cuda, "utilization", no_nvml)
    s = SystemSampler(torch.device("cuda", 0))
    first = s.sample()
    assert first["sys_gpu_mem_bytes"] == 5 << 30 and "sys_gpu_util_percent" not in first
    assert not s.gpu_util  # NVML is asked once, then left alone
    monkeypatch.setattr(torch.cuda, "utilization", lambda d: 87)
    assert "sys_gpu_util_percent" not in s.sample()
    s2 = SystemSampler(torch.device("cuda", 0))
    assert s2.sample()["sys_gpu_util_percent"] == 87.0


def test_without_psutil_proc_gives_the_same_figures_as_psutil():
    """The /proc reader (images without psutil) against psutil itself on this machine."""
    import psutil

    from opskit.train.sysmetrics import ProcReader

    ours, ref = SystemSampler("cpu", use_psutil=False), SystemSampler("cpu")
    assert isinstance(ours.reader, ProcReader)
    work = sum(i * i for i in range(3_000_000))  # some CPU time for both windows
    mine, theirs = ours.sample(), ref.sample()
    assert work > 0 and set(mine) == set(theirs)
    rss = psutil.Process().memory_info().rss
    assert abs(mine["sys_proc_rss_bytes"] - rss) <= 8 << 20  # read moments apart
    assert abs(mine["sys_host_mem_percent"] - psutil.virtual_memory().percent) <= 2.0
    assert 0 <= mine["sys_host_cpu_percent"] <= 100
    assert abs(mine["sys_proc_cpu_percent"] - theirs["sys_proc_cpu_percent"]) <= 25  # same window


def test_without_psutil_or_proc_lines_have_no_system_keys(monkeypatch):
    from opskit.train import sysmetrics

    monkeypatch.setattr(sysmetrics.ProcReader, "available", staticmethod(lambda: False))
    s = SystemSampler("cpu", use_psutil=False)
    assert not s.available and s.sample() == {}
