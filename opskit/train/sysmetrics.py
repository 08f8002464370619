"""System metrics beside the training figures: CPU and memory of the training process and of
the host, and GPU utilisation and memory where the run has a GPU.

With psutil (``opskit[train]`` installs it) the figures are psutil's; without it, on Linux
(a training image whose requirements lack psutil), the same figures are read from ``/proc``
as psutil reads them: process CPU from ``/proc/self/stat``, its RSS from ``/proc/self/statm``,
host CPU from ``/proc/stat`` and memory in use as ``(MemTotal - MemAvailable) / MemTotal``.
Elsewhere the lines simply have no ``sys_*`` keys.

One ``sample()`` per metrics line (every ``--log-every`` steps) reads a few small files:
about 100 microseconds, nothing per step. CPU percentages are over the time since the
previous sample, as ``top`` shows them (the process figure can exceed 100 with threads).
"""

from __future__ import annotations

import os
import time
from typing import Any


class ProcReader:
    """psutil's four figures from /proc (Linux), for images without psutil."""

    def __init__(self) -> None:
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.last_proc = (time.monotonic(), self._proc_cpu())
        self.last_host = self._host_cpu()

    @staticmethod
    def available() -> bool:
        return all(os.path.exists(p) for p in ("/proc/self/stat", "/proc/stat", "/proc/meminfo"))

    def _proc_cpu(self) -> float:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.ticks  # utime + stime, seconds

    @staticmethod
    def _host_cpu() -> tuple[int, int]:
        with open("/proc/stat", "rb") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values[:8]), idle  # guest time is already in user/nice

    def sample(self) -> dict:
        now, cpu = time.monotonic(), self._proc_cpu()
        then, cpu_then = self.last_proc
        self.last_proc = (now, cpu)
        total, idle = self._host_cpu()
        total0, idle0 = self.last_host
        self.last_host = (total, idle)
        with open("/proc/self/statm", "rb") as fh:
            rss = int(fh.read().split()[1]) * self.page
        mem: dict[str, int] = {}
        with open("/proc/meminfo", "rb") as fh:
            for line in fh:
                key, _, rest = line.partition(b":")
                if key in (b"MemTotal", b"MemAvailable"):
                    mem[key.decode()] = int(rest.split()[0])
        busy = (total - total0) - (idle - idle0)
        return {
            "sys_proc_cpu_percent": round(100.0 * (cpu - cpu_then) / max(now - then, 1e-9), 1),
            "sys_proc_rss_bytes": rss,
            "sys_host_cpu_percent": round(100.0 * busy / max(total - total0, 1), 1),
            "sys_host_mem_percent": round(100.0 * (mem["MemTotal"] - mem["MemAvailable"]) / mem["MemTotal"], 1),
        }


class PsutilReader:
    def __init__(self, psutil: Any):
        self.psutil = psutil
        self.proc = psutil.Process()
        self.proc.cpu_percent(None)  # the first call starts the interval
        psutil.cpu_percent(None)

    def sample(self) -> dict:
        return {
            "sys_proc_cpu_percent": self.proc.cpu_percent(None),
            "sys_proc_rss_bytes": self.proc.memory_info().rss,
            "sys_host_cpu_percent": self.psutil.cpu_percent(None),
            "sys_host_mem_percent": self.psutil.virtual_memory().percent,
        }


class SystemSampler:
    def __init__(self, device: Any, *, use_psutil: bool = True):
        self.reader: Any = None
        try:
            if not use_psutil:
                raise ImportError("psutil not wanted")
            import psutil

            self.reader = PsutilReader(psutil)
        except ImportError:
            if ProcReader.available():
                self.reader = ProcReader()
        self.device = device if getattr(device, "type", None) == "cuda" else None
        self.gpu_util = self.device is not None

    @property
    def available(self) -> bool:
        return self.reader is not None

    def sample(self) -> dict:
        out = self.reader.sample() if self.reader is not None else {}
        if self.device is not None:
            out.update(self._gpu())
        return out

    def _gpu(self) -> dict:
        import torch

        free, total = torch.cuda.mem_get_info(self.device)
        out = {"sys_gpu_mem_bytes": total - free}
        if self.gpu_util:
            try:  # needs NVML (nvidia-ml-py); asked once, then left alone
                out["sys_gpu_util_percent"] = float(torch.cuda.utilization(self.device))
            except Exception:  # noqa: BLE001 - no NVML: memory only
                self.gpu_util = False
        return out
