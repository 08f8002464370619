"""Devices and torchrun: rank from the environment, one process group, DDP when needed.

``torchrun --nproc_per_node=N -m opskit.train ...`` sets RANK, WORLD_SIZE and LOCAL_RANK (and
MASTER_ADDR/MASTER_PORT); a plain run has none of them and is rank 0 of 1. The backend is
NCCL on GPUs and gloo on CPUs. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from opskit.train.errors import DeviceError, TrainUsageError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise TrainUsageError(f"environment variable {name}={value!r} is not an integer") from None


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if requested not in ("auto", "cpu", "cuda"):
        raise TrainUsageError(f"--device {requested!r}: choose auto, cpu or cuda")
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = "a CPU-only torch build" if torch.version.cuda is None else "no visible GPU"
        raise DeviceError(
            f"--device cuda: CUDA is not available here ({build}, torch {torch.__version__})",
            "use --device cpu (or auto), or run on a host with a GPU and a CUDA build of torch",
        )
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise DeviceError(f"LOCAL_RANK={local_rank} but only {count} GPU(s) are visible")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def setup(requested_device: str) -> DistInfo:
    """Read the torchrun environment, pick the device, start the process group if N > 1."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    device = pick_device(requested_device, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=device)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True when ``flag`` is true on any rank (so that every rank stops at the same step)."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def wrap_ddp(model: torch.nn.Module, info: DistInfo, find_unused: bool) -> torch.nn.Module:
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DDP(model, device_ids=ids, find_unused_parameters=find_unused)
