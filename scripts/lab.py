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

``up --slurm`` starts a Slurm 22.05 cluster instead (opskit.testing.slurm): login/controller host
``slurm-login`` (group ``@slurm``, SSH on 127.0.0.1) and compute nodes ``slurm-node1``,
``slurm-node2`` (GPU hosts as above, GRES gpu:2, reached through slurm-login: ProxyJump), a
shared folder at /shared on all three. ``down`` removes it (containers, network, volume).

    python scripts/lab.py up --slurm [--dir .lab-slurm]
    ssh -F .lab-slurm/ssh_config slurm-login sinfo
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
    if _state(workdir).exists():  # its record would be lost, and its containers with it
        print(f"a lab is already up in {workdir} ({_state(workdir)}): run 'down --dir {args.dir}' "
              "first, or give another --dir", file=sys.stderr)
        return 1
    client = local_docker_client()
    if args.slurm:
        return _up_slurm(client, workdir, args.prefix or "lab-slurm")
    bed = start_gpu_hosts(client, args.hosts, workdir=str(workdir), engine=args.engine,
                          name_prefix=args.prefix or "gpu", labels={OWNER_LABEL: LAB_OWNER})
    # Rename the group so that `--host @lab` reaches every host.
    bed.group = "lab"
    bed.write_files()
    state = {"containers": [h.container.id for h in bed.hosts], "env": bed.env(),
             "hosts": bed.names, "engine": args.engine}
    atomic.write_json(_state(workdir), state)
    print(f"lab up: {', '.join(bed.names)} (group @lab, {args.engine} engine)", file=sys.stderr)
    print(_env_lines(state["env"]))
    return 0


def _up_slurm(client: object, workdir: Path, prefix: str) -> int:
    from opskit.testing.slurm import start_slurm_cluster

    cluster = start_slurm_cluster(client, workdir=workdir, name_prefix=prefix,
                                  labels={OWNER_LABEL: LAB_OWNER})
    state = {"containers": [h.container.id for h in cluster.hosts.values()], "env": cluster.env(),
             "hosts": list(cluster.hosts), "engine": "legacy", "slurm": True,
             "network": cluster.network, "volume": cluster.volume}
    atomic.write_json(_state(workdir), state)
    print(f"lab up: Slurm cluster: login {cluster.login} (group @{cluster.group}, 127.0.0.1:"
          f"{cluster.login_port}), nodes {', '.join(cluster.nodes)} (through {cluster.login}), "
          f"partition {cluster.partition}, shared folder {cluster.shared_dir}", file=sys.stderr)
    print(_env_lines(state["env"]))
    return 0


def _env_lines(env: dict[str, str]) -> str:
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items())


# What `up` writes beside lab.json (inventory, ssh config, known_hosts, the login key, a Slurm
# cluster's munge key): `down` removes them with the containers, so that no opskit setting keeps
# pointing at dead hosts and no key outlives its cluster.
LAB_FILES = ("hosts.yaml", "ssh_config", "known_hosts", "id_ed25519", "id_ed25519.pub", "munge.key")


def _read_state(workdir: Path) -> dict | None:
    path = _state(workdir)
    if not path.exists():
        print(f"no lab is up in {workdir} (no {path.name} there): start one with "
              f"'python scripts/lab.py up --dir {workdir}'", file=sys.stderr)
        return None
    return json.loads(path.read_text())


def env(args: argparse.Namespace) -> int:
    state = _read_state(Path(args.dir).resolve())
    if state is None:
        return 1
    print(_env_lines(state["env"]))
    return 0


def down(args: argparse.Namespace) -> int:
    workdir = Path(args.dir).resolve()
    path = _state(workdir)
    state = _read_state(workdir)
    if state is None:
        return 1
    from docker.errors import NotFound

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
    errors = []
    if not left and state.get("slurm"):  # the cluster's network and shared volume, once empty
        from opskit.testing.slurmaux import remove_network_and_volume

        errors = remove_network_and_volume(client, state["network"], state["volume"])
        for error in errors:
            print(f"could not remove {error}", file=sys.stderr)
    if left or errors:  # keep the record of what is still there: test sessions never reap labs
        atomic.write_json(path, {**state, "containers": left})
        print(f"lab down: {len(left) + len(errors)} thing(s) left, listed in {path}; run 'down' "
              "again", file=sys.stderr)
        return 1
    for name in LAB_FILES:
        (workdir / name).unlink(missing_ok=True)
    path.unlink()
    print(f"lab down: removed {', '.join(state['hosts'])} and the lab's files in {workdir}", file=sys.stderr)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "env", "down"])
    parser.add_argument("--hosts", type=_positive, default=2, help="up: how many GPU hosts (default 2)")
    parser.add_argument("--prefix", default=None,
                        help="up: the hosts' names are PREFIX-1, PREFIX-2, ... (default gpu); "
                             "with --slurm, the prefix of the cluster's container names (default lab-slurm)")
    parser.add_argument("--dir", default=".lab",
                        help="the lab's folder: its state, inventory, ssh config, known_hosts and "
                             "key (default .lab)")
    parser.add_argument("--engine", choices=list(ENGINE_KINDS), default="legacy",
                        help="the hosts' Docker engine: legacy (20.10, overlay2) or containerd "
                             "(26.1.5, containerd image store)")
    parser.add_argument("--slurm", action="store_true",
                        help="up: a Slurm cluster (slurm-login + slurm-node1/2) instead of hosts")
    args = parser.parse_args(argv)
    return {"up": up, "env": env, "down": down}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
