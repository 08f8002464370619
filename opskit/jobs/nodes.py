"""One job over several hosts: the torchrun line of each node, worked out here (pure).

torchrun is started on every node with ``--nnodes N``, ``--nproc-per-node`` (the node's GPUs,
or 1 on a CPU host) and ``--node-rank`` (the host's place in the order given: the first host
is rank 0), the static rendezvous at an address of rank 0's host that opskit has proved every
other host reaches (:mod:`opskit.jobs.netprobe`) and the port proved free there: rank 0's
torchrun holds the job's store (a c10d TCPStore) on that port, the others connect to it, and
nothing polls. A run-unique ``--rdzv-id`` names the job's keys in that store, and
``--rdzv-conf timeout=`` (chosen here and printed) bounds how long the nodes wait for each
other at rank 0's store.
NCCL and gloo are told each node's interface (``NCCL_SOCKET_IFNAME``, ``GLOO_SOCKET_IFNAME``),
never ``lo`` or ``docker0``. The workers are forked from torchrun once it has imported the
training entry (``--start-method fork``, :mod:`opskit.train.torchrun`), not started afresh.

Measured (bench/multihost.py, README): torchrun's ``c10d`` backend polls its store once a
second, which cost every node about 1 s before its workers started; the static rendezvous
gives the same ranks (opskit numbers the nodes itself) without that poll.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opskit.errors import JobError, UsageError
from opskit.jobs.spec import NodeLaunch

DEFAULT_RDZV_PORT = 29400
RDZV_BACKEND = "static"
# The static rendezvous's one setting: how long rank 0's store waits for every node to connect,
# and another node for rank 0's store to answer (and a store operation may take). Long enough for a slow image start; a host that never
# comes fails the start after it (and opskit stops the other nodes at once).
RDZV_CONF = {"timeout": 120}
START_METHOD = "fork"  # workers forked from torchrun after it imported the entry (opskit.train.torchrun)
NEVER_IFACES = ("lo", "docker0")
NEVER_PREFIXES = ("veth", "br-", "docker", "virbr", "cni", "flannel", "cali")


@dataclass(frozen=True)
class Iface:
    """One IPv4 address of a host and the interface that holds it."""

    name: str
    addr: str

    def usable(self) -> bool:
        return not (self.name in NEVER_IFACES or self.name.startswith(NEVER_PREFIXES)
                    or self.addr.startswith(("127.", "169.254.")))


@dataclass
class Reach:
    """What a host saw when it tried rank 0's addresses: ``ok`` maps address -> the local
    interface the connection left by; ``failed`` address -> the error."""

    host: str
    ok: dict[str, Iface] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class Node:
    host: str
    rank: int
    nproc: int
    gpus: int  # GPUs given to the container (0 on a CPU host)
    iface: Iface  # the interface and address this node talks to the others by


@dataclass
class NodesPlan:
    run_id: str
    rdzv_addr: str
    rdzv_port: int
    nodes: list[Node]
    rdzv_conf: dict[str, int] = field(default_factory=lambda: dict(RDZV_CONF))

    @property
    def world_size(self) -> int:
        return sum(n.nproc for n in self.nodes)

    @property
    def endpoint(self) -> str:
        return f"{self.rdzv_addr}:{self.rdzv_port}"

    def conf_text(self) -> str:
        return conf_text(self.rdzv_conf)

    def torchrun_args(self, node: Node) -> list[str]:
        """torchrun's options for ``node`` (``-m opskit.train`` and its arguments follow)."""
        return torchrun_argv(nnodes=len(self.nodes), nproc=node.nproc, node_rank=node.rank,
                             addr=self.rdzv_addr, port=self.rdzv_port, run_id=self.run_id,
                             conf=self.conf_text())

    def environment(self, node: Node) -> dict[str, str]:
        return {"NCCL_SOCKET_IFNAME": node.iface.name, "GLOO_SOCKET_IFNAME": node.iface.name,
                "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1", "OPSKIT_NODE_RANK": str(node.rank)}

    def launch(self, node: Node) -> NodeLaunch:
        return NodeLaunch(node.rank, tuple(self.torchrun_args(node)), tuple(sorted(self.environment(node).items())))

    def ranks(self, node: Node) -> str:
        """The global ranks of ``node``'s processes, as a log prefix (rank0, ranks2-3)."""
        first = sum(n.nproc for n in self.nodes[: node.rank])
        return f"rank{first}" if node.nproc == 1 else f"ranks{first}-{first + node.nproc - 1}"

    def to_dict(self) -> dict:
        return {
            "rdzv_backend": RDZV_BACKEND, "rdzv_endpoint": self.endpoint, "rdzv_id": self.run_id,
            "rdzv_conf": dict(self.rdzv_conf), "start_method": START_METHOD, "world_size": self.world_size,
            "nodes": [{"host": n.host, "rank": n.rank, "nproc_per_node": n.nproc, "gpus": n.gpus,
                       "addr": n.iface.addr, "ifname": n.iface.name} for n in self.nodes],
        }


def conf_text(conf: dict[str, int]) -> str:
    """``--rdzv-conf``'s text: ``key=value`` pairs joined by commas."""
    return ",".join(f"{k}={v}" for k, v in conf.items())


def torchrun_argv(*, nnodes: int | str, nproc: int | str, node_rank: int | str, addr: str, port: int | str,
                  run_id: str, conf: str | None = None) -> list[str]:
    """torchrun's options for one node of an ``nnodes``-node job; ``-m opskit.train`` and the
    training arguments follow. Run them with ``python -m opskit.train.torchrun`` (torchrun's
    own arguments; a signal's exit is 128+N; the workers start warm) or ``torchrun``.

    - ``--node-rank``: the node's place, 0 to nnodes-1; rank 0's torchrun holds the store;
    - ``addr``/``port``: rank 0's address that every node reaches, and a port free there
      (``--master-addr``/``--master-port`` of the static rendezvous: no polling);
    - ``run_id``: unique per run (the prefix of the job's keys in the store);
    - ``conf``: ``timeout=S``, how long the nodes wait for each other at the store (default
      :data:`RDZV_CONF`);
    - ``--max-restarts 0``: a failed worker ends the node (opskit then stops the others);
    - ``--start-method fork``: with ``-m opskit.train``, workers forked after the entry's imports.

    Each value is placed as given, so a job script may pass a shell variable's reference (e.g.
    ``node_rank="$SLURM_NODEID"``) and quote the line itself."""
    return [
        "--nnodes", str(nnodes), "--nproc-per-node", str(nproc), "--node-rank", str(node_rank),
        "--rdzv-backend", RDZV_BACKEND, "--master-addr", addr, "--master-port", str(port),
        "--rdzv-id", run_id, "--rdzv-conf", conf or conf_text(RDZV_CONF),
        "--max-restarts", "0", "--start-method", START_METHOD,
    ]


def check_nodes(nodes: int, hosts: list[str]) -> None:
    """``--nodes`` against the hosts given (before anything is contacted)."""
    if nodes < 1:
        raise UsageError(f"--nodes {nodes}: give at least 1", "e.g. --nodes 2 with two --host")
    if nodes > len(hosts):
        raise UsageError(
            f"--nodes {nodes} but only {len(hosts)} host(s) given ({', '.join(hosts)})",
            f"give {nodes} hosts (--host A --host B, or a group @NAME with enough hosts), or lower --nodes",
        )
    dup = sorted({h for h in hosts if hosts.count(h) > 1})
    if dup:
        raise UsageError(f"host(s) given twice: {', '.join(dup)}", "each node of a job is a different host")


def gpus_per_node(counts: dict[str, int], asked: int | None) -> dict[str, int]:
    """The GPUs each node's container gets: the same on every node. Hosts with different
    counts are refused unless ``--gpus-per-node`` says how many to use (each must have them)."""
    if asked is not None:
        short = {h: c for h, c in counts.items() if c < asked}
        if asked < 0 or short:
            have = ", ".join(f"{h} has {c}" for h, c in short.items())
            raise JobError(f"--gpus-per-node {asked}: {have or 'give 0 or more'}",
                           "lower --gpus-per-node, or leave those hosts out")
        return {h: asked for h in counts}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{h}: {c}" for h, c in counts.items())
        raise JobError(
            f"the hosts have different GPU counts ({listed}); one job needs the same on each node",
            f"say how many each node uses with --gpus-per-node (at most {min(counts.values())}), "
            "or pick hosts alike",
        )
    return dict(counts)


def choose_rdzv(rank0: str, candidates: list[Iface], reach: list[Reach]) -> Iface:
    """Rank 0's address: the first of its usable addresses that every other host reached;
    else an error naming each pair and the addresses tried."""
    usable = [c for c in candidates if c.usable()]
    if not usable:
        seen = ", ".join(f"{c.name} {c.addr}" for c in candidates) or "none"
        raise JobError(
            f"{rank0}: no address the other hosts could use (only {seen}; lo and docker0 never count)",
            "give the host an interface on the network the other hosts are on",
        )
    for c in usable:
        if all(c.addr in r.ok for r in reach):
            return c
    lines = []
    for r in reach:
        for c in usable:
            if c.addr not in r.ok:
                lines.append(f"{r.host} -> {rank0} at {c.addr} ({c.name}): {r.failed.get(c.addr, 'not tried')}")
    raise JobError(
        f"{rank0} (rank 0) is not reachable from every host:\n  " + "\n  ".join(lines),
        "let the hosts reach each other on that address and port (firewall, routes), or pick other hosts",
    )


def plan_nodes(run_id: str, hosts: list[str], gpus: dict[str, int], rdzv: Iface, port: int,
               reach: list[Reach]) -> NodesPlan:
    """The nodes in host order (the first is rank 0), each with the interface it reached
    rank 0 by (rank 0: the rendezvous address's own interface)."""
    by_host = {r.host: r for r in reach}
    nodes = []
    for rank, host in enumerate(hosts):
        iface = rdzv if rank == 0 else by_host[host].ok[rdzv.addr]
        if not iface.usable():
            raise JobError(f"{host}: reaches {rdzv.addr} only by {iface.name} ({iface.addr})",
                           "give the host a route to rank 0 over a real network interface")
        nodes.append(Node(host, rank, max(1, gpus[host]), gpus[host], iface))
    return NodesPlan(run_id, rdzv.addr, port, nodes)
