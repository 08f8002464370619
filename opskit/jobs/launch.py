"""Containers for runs: start one (labelled, GPUs, shm, output folder), find, list, stop.

See :mod:`opskit.jobs.spec` for how a run ID maps onto a container and a folder on the host.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from opskit.errors import JobError, UsageError
from opskit.hosts.dockererrors import docker_error, is_conflict, is_docker_exception, or_none
from opskit.hosts.privatedirs import private_dirs
from opskit.hosts.transport import Transport
from opskit.jobs.preflight import HostFacts
from opskit.jobs.spec import (
    CONTAINER_OUT,
    HOST_RUNS_DIR,
    LABEL_ARGS,
    LABEL_HOST,
    LABEL_IMAGE,
    LABEL_MODEL,
    LABEL_NODE,
    LABEL_RUN,
    GpuRequest,
    JobSpec,
    container_name,
)

OOM_EXIT = 137
SIGTERM_EXIT = 143
MAX_LINE = 64 << 10  # one line of a followed log kept in memory, at most
PIDS_LIMIT = 4096  # data-loader workers and their threads fit; a fork bomb does not
# What a training container may do: run as the login user's uid, read its image, write /out
# (the run's folder) and /tmp, use the GPUs asked for. No capabilities (a non-root process
# needs none), no privilege gain through setuid files, a bounded number of processes; the
# only mount is the run's folder (never the Docker socket, never the host's root).
HARDENING: dict[str, Any] = {
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "pids_limit": PIDS_LIMIT,
    "privileged": False,
}


def host_run_dir(home: str, run_id: str) -> str:
    return f"{home.rstrip('/')}/{HOST_RUNS_DIR}/{run_id}"


def device_requests(req: GpuRequest, facts: HostFacts) -> list[Any]:
    from docker.types import DeviceRequest

    mode = req.mode
    if mode == "auto":
        mode = "all" if facts.gpus else "none"
    if mode == "none":
        return []
    if mode == "devices":
        return [DeviceRequest(driver="nvidia", device_ids=list(req.devices), capabilities=[["gpu"]])]
    count = -1 if mode == "all" else req.count
    return [DeviceRequest(driver="nvidia", count=count, capabilities=[["gpu"]])]


def find_container(transport: Transport, run_id: str) -> Any | None:
    client = transport.docker()
    return or_none(lambda: client.containers.get(container_name(run_id)))


def require_container(transport: Transport, run_id: str) -> Any:
    c = find_container(transport, run_id)
    if c is None:
        raise no_container(transport.host, run_id)
    return c


def no_container(host: str, run_id: str) -> UsageError:
    return UsageError(f"{host}: no container for run {run_id!r} (looked for {container_name(run_id)})",
                      "see 'opskit jobs --host HOST' for the runs there")


def start_container(transport: Transport, job: JobSpec, facts: HostFacts, image_id: str) -> Any:
    """Start the run's container, detached. Refuses a run ID that already has a container
    (the engine's unique names: a 409 conflict, without a lookup first)."""
    from docker.types import Mount

    run_dir = host_run_dir(facts.home, job.run_id)
    private_dirs(transport, facts.home, [f"{HOST_RUNS_DIR}/{job.run_id}"])  # 0700, whatever the umask
    labels = {
        LABEL_RUN: job.run_id,
        LABEL_MODEL: job.model,
        LABEL_ARGS: json.dumps(job.train_args),
        LABEL_IMAGE: f"{job.image}@{image_id}",
        LABEL_HOST: transport.host,
    }
    kwargs: dict[str, Any] = {
        "command": job.entry_argv(),
        "name": job.container,
        "labels": labels,
        "detach": True,
        "init": True,  # SIGTERM reaches the training entry, zombies are reaped
        "shm_size": job.shm_size,
        "mounts": [Mount(CONTAINER_OUT, run_dir, type="bind")],
        "user": f"{facts.uid}:{facts.gid}",
        "environment": {"HOME": "/tmp", "PYTHONUNBUFFERED": "1", "OPSKIT_RUN_ID": job.run_id},
        "device_requests": device_requests(job.gpus, facts),
        **HARDENING,
    }
    if job.node is not None:  # a node of a multi-host job (opskit.jobs.nodes)
        add_node(kwargs, job)
    if job.memory:
        kwargs["mem_limit"] = job.memory
        kwargs["memswap_limit"] = job.memory
    try:
        return transport.docker().containers.run(image_id, **kwargs)
    except Exception as exc:
        if is_conflict(exc):
            raise already_exists(transport.host, job.run_id, "existing") from exc
        if not is_docker_exception(exc):
            raise
        raise docker_error(exc, f"{transport.host}: the engine would not start run {job.run_id}",
                           error=JobError) from exc


def add_node(kwargs: dict[str, Any], job: JobSpec) -> None:
    """A node of a multi-host job: torchrun as the entrypoint, the HOST's network (the other
    nodes reach rank 0's rendezvous port and the collective's ports on the host's address;
    deliberate: only these containers get it) and the interface NCCL/gloo use. The hardening
    above stays as it is."""
    node = job.node
    assert node is not None
    kwargs["entrypoint"] = list(node.ENTRYPOINT)
    kwargs["network_mode"] = "host"
    kwargs["environment"].update(dict(node.environment))
    kwargs["labels"][LABEL_NODE] = str(node.rank)


def already_exists(host: str, run_id: str, state: str) -> UsageError:
    """A run ID that is taken: a refusal of the input (exit 2, as other usage errors), not a
    failed job."""
    return UsageError(
        f"{host}: run {run_id!r} already exists there ({state}); a run ID starts one job only",
        f"follow it with 'opskit logs {run_id} -f', or pick another --run-id",
    )


@dataclass
class JobState:
    run_id: str
    host: str
    model: str
    state: str  # running | exited | failed | interrupted | oom-killed | created
    exit_code: int | None
    oom_killed: bool
    started: str
    finished: str | None
    duration: float | None
    image: str
    args: list[str]

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _parse_time(text: str | None) -> float | None:
    if not text or text.startswith("0001-"):
        return None
    from datetime import datetime

    head = text.rstrip("Z").split(".")[0]
    frac = text.rstrip("Z").split(".")[1] if "." in text else "0"
    return datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + frac[:6])


def describe_state(state: dict) -> str:
    if state.get("Running"):
        return "running"
    if state.get("OOMKilled"):
        return "oom-killed"
    if state.get("Status") == "created":
        return "created"
    code = state.get("ExitCode")
    if code == 0:
        return "exited"
    if code == SIGTERM_EXIT:
        return "interrupted"
    return "failed"


def job_state(container: Any, host: str) -> JobState:
    attrs = container.attrs
    state = attrs.get("State") or {}
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    started = _parse_time(state.get("StartedAt"))
    finished = _parse_time(state.get("FinishedAt"))
    end = finished if (finished and not state.get("Running")) else time.time()
    try:
        args = json.loads(labels.get(LABEL_ARGS, "[]"))
    except json.JSONDecodeError:
        args = []
    return JobState(
        run_id=labels.get(LABEL_RUN, container.name),
        host=host,
        model=labels.get(LABEL_MODEL, "?"),
        state=describe_state(state),
        exit_code=None if state.get("Running") else state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        started=state.get("StartedAt", ""),
        finished=None if state.get("Running") else state.get("FinishedAt"),
        duration=(end - started) if started else None,
        image=labels.get(LABEL_IMAGE, ""),
        args=args,
    )


def list_jobs(transport: Transport) -> list[JobState]:
    client = transport.docker()
    containers = client.containers.list(all=True, filters={"label": LABEL_RUN})
    return sorted((job_state(c, transport.host) for c in containers), key=lambda j: j.started)


def stream_logs(transport: Transport, run_id: str, follow: bool, *, container: Any = None) -> Iterator[str]:
    """The run's output lines (stdout and stderr, in order), following until it ends
    (``container``: the run's, when the caller has it; else it is looked up)."""
    container = container if container is not None else require_container(transport, run_id)
    buf = b""
    for chunk in container.logs(stream=True, follow=follow, stdout=True, stderr=True):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace").rstrip("\r")
        while len(buf) > MAX_LINE:  # a line without end: shown in pieces, memory stays bounded
            yield buf[:MAX_LINE].decode("utf-8", "replace") + f" [line cut at {MAX_LINE} bytes]"
            buf = buf[MAX_LINE:]
    if buf:
        yield buf.decode("utf-8", "replace")


def wait_exit(transport: Transport, run_id: str, timeout: float | None = None, *,
              container: Any = None) -> JobState:
    container = container if container is not None else require_container(transport, run_id)
    container.wait(timeout=timeout)
    container.reload()
    return job_state(container, transport.host)


def cancel(transport: Transport, run_id: str, grace: float) -> JobState:
    """SIGTERM (the training entry checkpoints and exits 143), then SIGKILL after ``grace``."""
    container = require_container(transport, run_id)  # fresh state: containers.get inspects
    if container.status == "running":
        container.stop(timeout=int(max(1, grace)))
    container.reload()
    return job_state(container, transport.host)
