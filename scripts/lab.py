"""A local lab to try opskit on: N Docker-in-Docker "GPU hosts" reachable over real SSH.

Each host is a container on this machine's engine with its own sshd, host keys and Docker
engine, and a fake ``nvidia-smi`` that reports two H100s (no real GPU is used). Ports are
published on 127.0.0.1 only. ``--engine legacy`` (default): Docker 20.10, overlay2 image store
(Debian 12); ``--engine containerd``: Docker 26.1.5 with the containerd image store (Debian 13),
as fresh installs of Docker 29 have it.

    python scripts/lab.py up [--hosts 2] [--dir .lab] [--engine legacy|containerd]
                                        # prints the env to point opskit at it
    eval "$(python scripts/lab.py env --dir .lab)"
    opskit status --host @lab
    python scripts/lab.py down [--dir .lab]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from opskit import atomic
from opskit.hosts.engine import local_docker_client
from opskit.testing.dind import ENGINE_KINDS, start_gpu_hosts
from opskit.testing.sshd import OWNER_LABEL

# Not "<machine>:<pid>": lab hosts outlive `lab.py up`, and test sessions must not reap them.
LAB_OWNER = "lab"


def _state(workdir: Path) -> Path:
    return workdir / "lab.json"


def up(args: argparse.Namespace) -> int:
    workdir = Path(args.dir).resolve()
    client = local_docker_client()
    bed = start_gpu_hosts(client, args.hosts, workdir=str(workdir), engine=args.engine,
                          name_prefix=args.prefix, labels={OWNER_LABEL: LAB_OWNER})
    # Rename the group so that `--host @lab` reaches every host.
    bed.group = "lab"
    bed.write_files()
    state = {"containers": [h.container.id for h in bed.hosts], "env": bed.env(),
             "hosts": bed.names, "engine": args.engine}
    atomic.write_json(_state(workdir), state)
    print(f"lab up: {', '.join(bed.names)} (group @lab, {args.engine} engine)", file=sys.stderr)
    print(_env_lines(state["env"]))
    return 0


def _env_lines(env: dict[str, str]) -> str:
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items())


def env(args: argparse.Namespace) -> int:
    state = json.loads(_state(Path(args.dir).resolve()).read_text())
    print(_env_lines(state["env"]))
    return 0


def down(args: argparse.Namespace) -> int:
    path = _state(Path(args.dir).resolve())
    if not path.exists():
        print(f"no lab state at {path}", file=sys.stderr)
        return 1
    from docker.errors import NotFound

    state = json.loads(path.read_text())
    client = local_docker_client()
    left = []
    for cid in state["containers"]:
        try:
            client.containers.get(cid).remove(force=True, v=True)
        except NotFound:
            continue  # already gone
        except Exception as exc:  # noqa: BLE001 - reported, the others still go
            print(f"could not remove {cid[:12]}: {exc}", file=sys.stderr)
            left.append(cid)
    if left:  # keep the record of what is still there: test sessions never reap lab hosts
        atomic.write_json(path, {**state, "containers": left})
        print(f"lab down: {len(left)} container(s) left, listed in {path}; run 'down' again",
              file=sys.stderr)
        return 1
    path.unlink()
    print(f"lab down: removed {', '.join(state['hosts'])}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "env", "down"])
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--prefix", default="gpu")
    parser.add_argument("--dir", default=".lab")
    parser.add_argument("--engine", choices=list(ENGINE_KINDS), default="legacy",
                        help="the hosts' Docker engine: legacy (20.10, overlay2) or containerd "
                             "(26.1.5, containerd image store)")
    args = parser.parse_args(argv)
    return {"up": up, "env": env, "down": down}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
