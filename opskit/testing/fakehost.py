"""A fake GPU host for unit tests of a job's control flow: this machine's files and commands
in the role of the host (:class:`~opskit.testing.hostlike.HostLike`), with the facts script and
``docker image inspect`` answered as a GPU host would, and a :class:`FakeEngine` in
docker-py's shape as the host's engine.

    engine = FakeEngine(logs=[b"step 1/2\\n"], outputs={"summary.json": b"{}"})
    host = fake_gpu_host("gpu1", engine, home=tmp_path / "home", image=IMAGE, gpus=2)
    Runner(store, opts, connect=lambda spec: host, engine=lambda: local_engine).run(spec, job)

The facts script (:mod:`opskit.checks.sections`) is answered section by section (a section
not given answers "command not found"); the engine runs containers that print ``logs``, write
``outputs`` into their bind mount (real files under ``home``) and exit with ``exit_code``;
collect then runs for real (find, sha256sum, mv; ``docker logs`` through
:func:`~opskit.testing.hostlike.fake_docker_cli`). Errors are docker-py's own classes
(NotFound, a 409 APIError); engine requests are counted in ``engine.requests``. Use beside the
integration tests of the real path (tests/integration/test_run_remote.py).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from opskit.hosts.transport import CommandResult
from opskit.testing.hostlike import HostLike

MIB = 1 << 20
GIB = 1 << 30
_STAMP = "2026-11-27T11:00:00.000000000Z"


def image_attrs(image_id: str, diff_ids: list[str], tags: list[str] | None = None) -> dict:
    """What ``docker image inspect`` says of an image (the keys opskit reads)."""
    return {"Id": image_id, "RepoTags": list(tags or []), "RootFS": {"Layers": list(diff_ids)},
            "Size": 1000 * len(diff_ids)}


def _api_error(status: int, message: str) -> Exception:
    import requests
    from docker.errors import APIError, NotFound

    response = requests.Response()
    response.status_code = status
    response._content = json.dumps({"message": message}).encode()
    cls = NotFound if status == 404 else APIError
    return cls(message, response=response, explanation=message)


class FakeContainer:
    """A container that has printed ``logs`` and exits with ``exit_code`` when waited for."""

    def __init__(self, engine: FakeEngine, name: str, image: str, kwargs: dict):
        self.engine = engine
        self.name = name
        self.image = image
        self.kwargs = kwargs
        self.exit_code: int | None = None
        self.stopped = threading.Event()  # stop() was called (a held run ends only then)

    @property
    def status(self) -> str:
        return "running" if self.exit_code is None else "exited"

    @property
    def attrs(self) -> dict:
        running = self.exit_code is None
        return {
            "Name": "/" + self.name,
            "State": {"Status": self.status, "Running": running, "OOMKilled": False,
                      "ExitCode": 0 if running else self.exit_code,
                      "StartedAt": _STAMP, "FinishedAt": "0001-01-01T00:00:00Z" if running else _STAMP},
            "Config": {"Labels": dict(self.kwargs.get("labels") or {})},
        }

    def logs(self, *, stream: bool = False, follow: bool = False, **_: Any) -> Iterator[bytes] | bytes:
        self.engine.requests["logs"] += 1
        chunks = list(self.engine.logs)
        if follow and self.engine.hold:
            return self._held(chunks)
        if follow:
            self._finish(self.engine.exit_code)
        return iter(chunks) if stream else b"".join(chunks)

    def _held(self, chunks: list[bytes]) -> Iterator[bytes]:
        """A run that goes on until it is stopped (at most 30 s): its lines, then the wait."""
        yield from chunks
        self.stopped.wait(30)
        self._finish(self.engine.exit_code)

    def wait(self, timeout: float | None = None) -> dict:
        self.engine.requests["wait"] += 1
        if self.engine.hold:
            self.stopped.wait(30)
        self._finish(self.engine.exit_code)
        return {"StatusCode": self.exit_code}

    def reload(self) -> None:
        self.engine.requests["inspect"] += 1

    def stop(self, timeout: int = 10) -> None:
        self.engine.requests["stop"] += 1
        self._finish(143)
        self.stopped.set()

    def remove(self, force: bool = False) -> None:
        self.engine.requests["remove"] += 1
        self.engine.containers.by_name.pop(self.name, None)

    def _finish(self, code: int) -> None:
        if self.exit_code is None:
            self.exit_code = code
            self.engine.write_outputs(self.kwargs)


class FakeContainers:
    def __init__(self, engine: FakeEngine):
        self.engine = engine
        self.by_name: dict[str, FakeContainer] = {}

    def get(self, name: str) -> FakeContainer:
        self.engine.requests["inspect"] += 1
        if name not in self.by_name:
            raise _api_error(404, f"No such container: {name}")
        return self.by_name[name]

    def run(self, image: str, **kwargs: Any) -> FakeContainer:
        self.engine.requests["run"] += 1
        name = kwargs["name"]
        if name in self.by_name:
            raise _api_error(409, f'Conflict. The container name "/{name}" is already in use')
        if self.engine.refuse_start:
            raise _api_error(500, self.engine.refuse_start)
        container = FakeContainer(self.engine, name, image, kwargs)
        self.by_name[name] = container
        return container

    def list(self, all: bool = False, filters: dict | None = None) -> list[FakeContainer]:
        self.engine.requests["list"] += 1
        return list(self.by_name.values())


class _FakeAPI:
    base_url = "fake://engine"  # not this machine's: the image store is never read directly

    def __init__(self, engine: FakeEngine):
        self.engine = engine

    def inspect_image(self, ref: str) -> dict:
        self.engine.requests["image_inspect"] += 1
        for key, attrs in self.engine.images.items():
            if ref in (key, attrs["Id"]) or ref in attrs.get("RepoTags", []):
                return attrs
        raise _api_error(404, f"No such image: {ref}")

    def history(self, ref: str) -> list[dict]:
        self.engine.requests["history"] += 1
        attrs = self.inspect_image(ref)
        return [{"Id": attrs["Id"] if i == 0 else "<missing>", "CreatedBy": f"layer {i}", "Size": 1000}
                for i in reversed(range(len(attrs["RootFS"]["Layers"])))]


class FakeEngine:
    """docker-py's client shape: ``containers``, ``api``, ``info()``; requests counted."""

    def __init__(
        self, images: Mapping[str, dict] | None = None, *, logs: list[bytes] | None = None,
        exit_code: int = 0, outputs: Mapping[str, bytes] | None = None,
        refuse_start: str | None = None, hold: bool = False,
    ):
        self.images = dict(images or {})
        self.logs = list(logs or [])
        self.exit_code = exit_code
        self.outputs = dict(outputs or {})
        self.refuse_start = refuse_start
        self.hold = hold  # a followed run goes on until stop() (a node the others must stop)
        self.requests: Counter[str] = Counter()
        self.containers = FakeContainers(self)
        self.api = _FakeAPI(self)

    def info(self) -> dict:
        self.requests["info"] += 1
        return {"ServerVersion": "20.10.24", "Driver": "overlay2", "DockerRootDir": "/var/lib/docker"}

    def image(self, ref: str) -> dict:
        return self.api.inspect_image(ref)

    def write_outputs(self, kwargs: dict) -> None:
        """What the run wrote into its bind mount (real files: the host is this machine)."""
        for mount in kwargs.get("mounts") or []:
            for rel, data in self.outputs.items():
                path = Path(mount["Source"], rel)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)


# -- the host's side: the commands a run sends ----------------------------------------------
GPU_ROW = ("{i}, GPU-0000000{i}-0000-0000-0000-000000000000, 00000000:0{i}:00.0, 550.54.15, 34, "
           "[N/A], 0 %, 0 %, 1 MiB, 81559 MiB, 70.00 W, 700.00 W, NVIDIA H100 80GB HBM3")


def host_sections(*, home: str = "/home/opskit", gpus: int = 0, free: int = 50 * GIB,
                  mem_total: int = 32 * GIB, runtimes: tuple[str, ...] = ("runc", "nvidia"),
                  hook: str = "/usr/bin/nvidia-container-runtime-hook") -> dict[str, tuple[str, str, int]]:
    """(stdout, stderr, exit status) of each section a run asks for, for a plausible host."""
    df = "Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/vda {t} {u} {f} 10% {m}\n"
    info = {"ServerVersion": "20.10.24", "DockerRootDir": "/var/lib/docker", "NCPU": 8,
            "MemTotal": mem_total, "Runtimes": {r: {"path": r} for r in runtimes}}
    out: dict[str, tuple[str, str, int]] = {
        "ident": (f"1000\n1000\n{home}\n", "", 0),
        "docker_info": (json.dumps(info) + "\n", "", 0),
        "run_disks": ("@root /var/lib/docker\n" + df.format(t=free * 2, u=free, f=free, m="/")
                      + f"@home {home}\n" + df.format(t=free * 2, u=free, f=free, m="/"), "", 0),
        "nvidia_hook": (hook + "\n" if hook else "", "", 0),
        "hostname": ("gpu-host\n", "", 0),
        "uname": ("Linux 6.1.0-18-amd64 x86_64\n", "", 0),
        "nproc": ("count 8\n", "", 0),
        "meminfo": (f"MemTotal: {mem_total // 1024} kB\nMemAvailable: {mem_total // 2048} kB\n", "", 0),
    }
    if gpus:
        out["gpu_query"] = ("\n".join(GPU_ROW.format(i=i) for i in range(gpus)) + "\n", "", 0)
        out["gpu_apps"] = ("", "", 0)
        out["gpu_version"] = ("DRIVER version : 550.54.15\nCUDA Version : 12.4\n", "", 0)
    return out


def sections_reply(sections: Mapping[str, tuple[str, str, int]]) -> Callable[[tuple, bytes | None], str]:
    """A FakeTransport answer for ``sh -s``: frames each section the script asks for (a
    section not given answers "command not found", status 127), as the real script does."""
    from opskit.checks.sections import MARK

    def answer(argv: tuple, stdin: bytes | None) -> str:
        names = re.findall(rf"'{re.escape(MARK)}begin (\w+)'", (stdin or b"").decode())
        parts = []
        for name in names:
            out, err, code = sections.get(name, ("", f"{name}: command not found", 127))
            stderr = f"\n{MARK}stderr {name}\n{err}" if err else ""
            parts.append(f"{MARK}begin {name}\n{out}{stderr}\n{MARK}end {name} {code}\n")
        return "".join(parts)

    return answer


class FakeGpuHost(HostLike):
    """This machine as the host ``name``: the facts script and ``docker image inspect`` are
    answered from ``sections`` and ``image``; every other command runs for real."""

    def __init__(self, name: str, engine: FakeEngine, sections: Mapping[str, tuple[str, str, int]],
                 image: dict | None):
        super().__init__(name)
        self._engine = engine
        self.sections = dict(sections)
        self.image = image
        self.calls: list[tuple[str, ...]] = []
        self.closed = False

    def run(self, argv: Sequence[str], *, timeout: float | None = None, stdin: bytes | None = None,
            check: bool = False, env: dict[str, str] | None = None) -> CommandResult:
        argv_t = tuple(str(a) for a in argv)
        self.calls.append(argv_t)
        if argv_t == ("sh", "-s"):
            result = CommandResult(self.host, argv_t, sections_reply(self.sections)(argv_t, stdin), "", 0, 0.0)
        elif argv_t[:3] == ("docker", "image", "inspect"):
            result = self._inspect(argv_t)
        else:
            return super().run(argv, timeout=timeout, stdin=stdin, check=check, env=env)
        return result.check() if check else result

    def _inspect(self, argv: tuple[str, ...]) -> CommandResult:
        image = self.image
        if image is None or image["Id"] not in argv:
            return CommandResult(self.host, argv, "", "Error: No such image", 1, 0.0)
        line = f"{image['Id']} {json.dumps(image['RootFS']['Layers'])} {json.dumps(image['RepoTags'])}\n"
        return CommandResult(self.host, argv, line, "", 0, 0.0)

    def close(self) -> None:
        self.closed = True
        super().close()


def fake_gpu_host(
    name: str, engine: FakeEngine, *, home: str | os.PathLike, image: dict | None = None,
    gpus: int = 2, sections: Mapping[str, tuple[str, str, int]] | None = None,
) -> FakeGpuHost:
    """A GPU host ``name`` whose login user's home is ``home`` (a real folder here), whose
    engine is ``engine`` and which already holds ``image`` (inspect attrs)."""
    home = str(home)
    os.makedirs(home, exist_ok=True)
    return FakeGpuHost(name, engine, sections or host_sections(gpus=gpus, home=home), image)
