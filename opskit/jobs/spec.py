"""What to run: a run ID, a model and its training arguments, an image, GPUs, limits.

Design (how a run maps onto a host):
- a run is identified by its run ID (``lenet-20261127-101500-ab12`` by default, or ``--run-id``);
- on the host its container is named ``opskit-run-<RUN>`` and labelled ``opskit.run=<RUN>``
  (plus model, args, image): the engine's unique container names make "same run ID twice"
  impossible, and ``opskit jobs`` finds runs by label;
- its output folder on the host is ``~/.opskit/runs/<RUN>/`` (the login user's home), mounted
  at ``/out`` in the container and given to the training entry as ``--out /out``; the container
  runs as the login user's uid:gid so that the user owns (and may remove) every result;
- locally, ``runs/<RUN>/`` holds ``job.json`` (opskit's run card) and the collected results.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field

from opskit.errors import UsageError
from opskit.settings import parse_size  # noqa: F401  (the one size parser; callers use it from here)

RUN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
CONTAINER_PREFIX = "opskit-run-"
LABEL_RUN = "opskit.run"
LABEL_MODEL = "opskit.model"
LABEL_ARGS = "opskit.args"
LABEL_IMAGE = "opskit.image"
LABEL_HOST = "opskit.host"
LABEL_NODE = "opskit.node"  # the node rank of a multi-host job
HOST_RUNS_DIR = ".opskit/runs"  # under the login user's home on the host
CONTAINER_OUT = "/out"
DEFAULT_SHM = 1 << 30  # 1 GiB: enough for a few data-loader workers
MIN_SHM = 64 << 20


def new_run_id(model: str, now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    base = re.sub(r"[^a-z0-9_.-]", "-", model.lower())[:32] or "run"
    return f"{base}-{stamp}-{secrets.token_hex(2)}"


def check_run_id(run_id: str) -> str:
    if not RUN_ID_RE.match(run_id):
        raise UsageError(
            f"invalid run ID {run_id!r}",
            "use 1-63 characters: lowercase letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
        )
    return run_id


def container_name(run_id: str) -> str:
    return CONTAINER_PREFIX + run_id


@dataclass(frozen=True)
class GpuRequest:
    """``--gpus``: ``auto`` (all the host has, none on a CPU host), ``all``, ``none``/``0``,
    a count ``N``, or device indexes ``0,1`` (also ``device=0``)."""

    mode: str  # auto | all | none | count | devices
    count: int = 0
    devices: tuple[str, ...] = ()

    @property
    def wants_gpus(self) -> bool:
        return self.mode in ("all", "count", "devices")

    def describe(self) -> str:
        if self.mode == "count":
            return f"{self.count} GPU(s)"
        if self.mode == "devices":
            return "GPU(s) " + ",".join(self.devices)
        return {"auto": "all GPUs the host has", "all": "all GPUs", "none": "no GPU"}[self.mode]

    def to_dict(self) -> dict:
        return {"mode": self.mode, "count": self.count, "devices": list(self.devices)}


def parse_gpus(text: str) -> GpuRequest:
    value = text.strip().lower()
    if value in ("auto", ""):
        return GpuRequest("auto")
    if value == "all":
        return GpuRequest("all")
    if value in ("none", "0"):
        return GpuRequest("none")
    if value.startswith("device="):
        value = value.split("=", 1)[1]
        if value.isdigit():
            return GpuRequest("devices", devices=(value,))
    if "," in value:
        parts = tuple(p.strip() for p in value.split(",") if p.strip())
        if parts and all(p.isdigit() for p in parts):
            return GpuRequest("devices", devices=parts)
    elif value.isdigit():
        return GpuRequest("count", count=int(value))
    raise UsageError(
        f"invalid --gpus value {text!r}",
        "use all, auto, none (or 0), a count such as 2, or device indexes such as 0,1",
    )


@dataclass(frozen=True)
class NodeLaunch:
    """How one node of a multi-host job starts (:mod:`opskit.jobs.nodes`): torchrun before
    the training entry, on the host's network, with the node's environment."""

    rank: int
    torchrun: tuple[str, ...]
    environment: tuple[tuple[str, str], ...]

    ENTRYPOINT = ("python", "-m", "opskit.train.torchrun")  # torchrun; a signal's exit is 128+N


@dataclass
class JobSpec:
    """Everything needed to start one run on one host."""

    run_id: str
    model: str
    train_args: list[str]  # after MODEL, without --out
    image: str  # local reference (tag or ID)
    gpus: GpuRequest = field(default_factory=lambda: GpuRequest("auto"))
    shm_size: int = DEFAULT_SHM
    memory: int | None = None  # hard memory limit for the container (bytes)
    node: NodeLaunch | None = None  # one node of a multi-host job (else a plain single run)

    @property
    def container(self) -> str:
        return container_name(self.run_id)

    def entry_argv(self) -> list[str]:
        """Arguments for the image's ENTRYPOINT (the training entry)."""
        entry = [self.model, *self.train_args, "--out", CONTAINER_OUT]
        if self.node is not None:  # the ENTRYPOINT is torchrun's: it starts the entry per process
            return [*self.node.torchrun, "-m", "opskit.train", *entry]
        return entry

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id, "model": self.model, "train_args": list(self.train_args),
            "image": self.image, "gpus": self.gpus.to_dict(), "shm_size": self.shm_size,
            "memory": self.memory,
        }


def validate_train_args(model: str, train_args: list[str]) -> dict:
    """Run the training entry's own argument parsing here, before anything is shipped.

    Returns the parsed arguments (a dict). Raises UsageError with argparse's message for a bad
    option, and for an unknown model (names the known ones).
    """
    import contextlib
    import io

    from opskit.train.args import parse_args

    if any(a == "--out" or a.startswith("--out=") for a in train_args):
        raise UsageError(
            "--out is set by opskit for remote runs (the run's folder on the host)",
            "leave --out out; results come back to runs/RUN/ with 'opskit collect RUN'",
        )
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parsed = parse_args([model, *train_args, "--out", CONTAINER_OUT])
    except SystemExit as exc:
        if exc.code == 0:
            raise UsageError("the training options asked for help; nothing to run") from None
        lines = [ln for ln in err.getvalue().strip().splitlines() if ln.startswith(("error", "python"))]
        raise UsageError(
            "the training entry rejects these options: " + (lines[-1] if lines else err.getvalue().strip()),
            "see 'python -m opskit.train --help' for the options after MODEL",
        ) from None
    from opskit.models.catalogue import UnknownModelError, entry  # torch-free data

    try:
        entry(model)
    except UnknownModelError as exc:
        raise UsageError(str(exc), "see 'opskit models list'") from None
    return parsed.to_dict()
