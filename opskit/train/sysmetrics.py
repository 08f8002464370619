"""System metrics beside the training figures: CPU and memory of the training process and of
the host (psutil), and GPU utilisation and memory where the run has a GPU.

One ``sample()`` per metrics line (every ``--log-every`` steps) reads a few ``/proc`` files:
tens of microseconds, nothing per step. psutil is optional (``opskit[train]`` installs it);
without it the lines simply have no ``sys_*`` keys. CPU percentages are over the time since
the previous sample, as ``top`` shows them (the process figure can exceed 100 with threads).
"""

from __future__ import annotations

from typing import Any


class SystemSampler:
    def __init__(self, device: Any):
        try:
            import psutil
        except ImportError:
            self.psutil = None
            return
        self.psutil = psutil
        self.proc = psutil.Process()
        self.proc.cpu_percent(None)  # the first call starts the interval
        psutil.cpu_percent(None)
        self.device = device if getattr(device, "type", None) == "cuda" else None
        self.gpu_util = self.device is not None

    @property
    def available(self) -> bool:
        return self.psutil is not None

    def sample(self) -> dict:
        if self.psutil is None:
            return {}
        out = {
            "sys_proc_cpu_percent": self.proc.cpu_percent(None),
            "sys_proc_rss_bytes": self.proc.memory_info().rss,
            "sys_host_cpu_percent": self.psutil.cpu_percent(None),
            "sys_host_mem_percent": self.psutil.virtual_memory().percent,
        }
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
