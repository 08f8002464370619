"""One job over several hosts: the torchrun line of each node, worked out here (pure).

torchrun is started on every node with ``--nnodes N``, ``--nproc-per-node`` (the node's GPUs,
or 1 on a CPU host), the c10d rendezvous on rank 0's host at an address opskit has proved
every other host reaches (:mod:`opskit.jobs.netprobe`), a run-unique ``--rdzv-id`` and
``--rdzv-conf`` timeouts chosen here and printed. Which node is rank 0 is not left to chance:
c10d numbers the nodes in the order of their ``--local-addr`` (sorted as strings), so node
``i`` is given the name ``opskit-node-00i`` as its local address, and every container maps
each name to its node's proved address (``--add-host``): the sort order is the host order,
the first host is rank 0 and runs the rendezvous store (``is_host`` said explicitly).
NCCL and gloo are told each node's interface (``NCCL_SOCKET_IFNAME``, ``GLOO_SOCKET_IFNAME``),
never ``lo`` or ``docker0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opskit.errors import JobError, UsageError
from opskit.jobs.spec import NodeLaunch

DEFAULT_RDZV_PORT = 29400
# c10d rendezvous: how long every node waits for the others to join, how long one store read
# may take, and how long a node is kept after its last keep-alive. Short enough that a host
# that never comes stops the others within a minute, long enough for a slow image start.
RDZV_CONF = {"join_timeout": 120, "read_timeout": 30, "timeout": 120}
NODE_NAME = "opskit-node-{:03d}"
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

    @property
    def name(self) -> str:
        return NODE_NAME.format(self.rank)


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

    def conf_text(self, node: Node) -> str:
        conf = {**self.rdzv_conf, "is_host": "true" if node.rank == 0 else "false"}
        return ",".join(f"{k}={v}" for k, v in conf.items())

    def torchrun_args(self, node: Node) -> list[str]:
        """torchrun's options for ``node`` (the module and its arguments follow)."""
        return [
            "--nnodes", str(len(self.nodes)), "--nproc-per-node", str(node.nproc),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", self.endpoint, "--rdzv-id", self.run_id,
            "--rdzv-conf", self.conf_text(node), "--local-addr", node.name, "--max-restarts", "0",
        ]

    def environment(self, node: Node) -> dict[str, str]:
        return {"NCCL_SOCKET_IFNAME": node.iface.name, "GLOO_SOCKET_IFNAME": node.iface.name,
                "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1", "OPSKIT_NODE_RANK": str(node.rank)}

    def extra_hosts(self) -> dict[str, str]:
        return {n.name: n.iface.addr for n in self.nodes}

    def launch(self, node: Node) -> NodeLaunch:
        return NodeLaunch(node.rank, tuple(self.torchrun_args(node)),
                          tuple(sorted(self.environment(node).items())), tuple(self.extra_hosts().items()))

    def ranks(self, node: Node) -> str:
        """The global ranks of ``node``'s processes, as a log prefix (rank0, ranks2-3)."""
        first = sum(n.nproc for n in self.nodes[: node.rank])
        return f"rank{first}" if node.nproc == 1 else f"ranks{first}-{first + node.nproc - 1}"

    def to_dict(self) -> dict:
        return {
            "rdzv_backend": "c10d", "rdzv_endpoint": self.endpoint, "rdzv_id": self.run_id,
            "rdzv_conf": dict(self.rdzv_conf), "world_size": self.world_size,
            "nodes": [{"host": n.host, "rank": n.rank, "nproc_per_node": n.nproc, "gpus": n.gpus,
                       "local_addr": n.name, "addr": n.iface.addr, "ifname": n.iface.name} for n in self.nodes],
        }


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
