"""One job over several hosts (opskit.jobs.multirun, opskit.jobs.nodes) on fake GPU hosts, fake
engines and a made-up network: no Docker, no SSH. The real path is
tests/integration/test_run_multihost.py (two Docker-in-Docker hosts, gloo on CPU)."""

from __future__ import annotations

import pytest

from opskit import events as ev
from opskit.errors import JobError, UsageError
from opskit.hosts.spec import HostSpec
from opskit.jobs import nodes as nodesmod
from opskit.jobs.multirun import MultiOptions, MultiRunner
from opskit.jobs.runner import RunOptions
from opskit.jobs.spec import JobSpec
from opskit.jobs.store import RunStore
from opskit.testing.fakehost import FakeEngine, fake_gpu_host, image_attrs
from opskit.testing.fakenet import FakeNetwork
from opskit.testing.hostlike import fake_docker_cli

TAG = "opskit-train:offline"
IMAGE = image_attrs("sha256:" + "a" * 64, ["sha256:" + "1" * 64], [TAG])
LOGS = [b"step 1/2 loss=2.3\n", b"step 2/2 loss=2.1\n"]
OUTPUTS = {"summary.json": b'{"status": "completed"}\n'}


@pytest.fixture(autouse=True)
def docker_logs_cli(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", fake_docker_cli(tmp_path / "fakebin", b"".join(LOGS).decode()))


def lan(*names: str) -> FakeNetwork:
    """Hosts on one LAN 10.0.0.0/24 (each also has lo and docker0); all reach each other."""
    net = FakeNetwork({h: [("lo", "127.0.0.1"), ("docker0", "172.17.0.1"), ("eth0", f"10.0.0.{i + 1}")]
                       for i, h in enumerate(names)})
    for src in names:
        for i in range(len(names)):
            net.link(src, f"10.0.0.{i + 1}")
    return net


class Bed:
    def __init__(self, tmp_path, names=("gpu1", "gpu2"), *, gpus=None, engines=None, net=None, detach=False):
        self.local = FakeEngine({TAG: IMAGE})
        gpus = gpus or {n: 2 for n in names}
        self.engines = engines or {n: FakeEngine(logs=LOGS, outputs=OUTPUTS) for n in names}
        self.hosts = {n: fake_gpu_host(n, self.engines[n], home=tmp_path / n / "home", image=IMAGE, gpus=gpus[n])
                      for n in names}
        self.net = net or lan(*names)
        self.store = RunStore(tmp_path / "runs")
        self.events: list[ev.Event] = []
        self.runner = MultiRunner(self.store, RunOptions(detach=detach, emit=self.events.append),
                                  connect=lambda spec: self.hosts[spec.name], engine=lambda: self.local,
                                  prober=self.net)

    def run(self, nodes=2, hosts=None, **kw):
        specs = [HostSpec(n, hostname=n) for n in (hosts or list(self.hosts))]
        return self.runner.run(specs, JobSpec("mh", "lenet", ["--small", "--steps", "2"], TAG),
                               MultiOptions(nodes, **kw))

    def started(self) -> dict[str, dict]:
        return {n: c.kwargs for n, e in self.engines.items() for c in e.containers.by_name.values()}

    def steps(self) -> list[str]:
        return [f"[{e.host}] {e.message}" for e in self.events if e.kind == "step"]


def test_two_nodes_torchrun_on_each_with_the_proved_address(tmp_path):
    bed = Bed(tmp_path)
    out = bed.run()
    assert (out.state, [n.exit_code for n in out.nodes]) == ("exited", [0, 0])
    k1, k2 = bed.started()["gpu1"], bed.started()["gpu2"]
    assert k1["entrypoint"] == ["python", "-m", "opskit.train.torchrun"] and k1["network_mode"] == "host"
    cmd = k2["command"]
    opt = {cmd[i]: cmd[i + 1] for i in range(0, cmd.index("-m"), 2)}
    assert opt["--nnodes"] == "2" and opt["--nproc-per-node"] == "2" and opt["--rdzv-backend"] == "static"
    assert opt["--master-addr"] == "10.0.0.1" and opt["--master-port"] == "29400"  # eth0, never lo/docker0
    assert opt["--rdzv-id"] == "mh" and opt["--rdzv-conf"] == "timeout=120" and opt["--start-method"] == "fork"
    assert opt["--node-rank"] == "1" and k1["command"][k1["command"].index("--node-rank") + 1] == "0"  # host order
    assert cmd[cmd.index("-m"):][:3] == ["-m", "opskit.train", "lenet"] and cmd[-2:] == ["--out", "/out"]
    assert k2["environment"]["GLOO_SOCKET_IFNAME"] == "eth0" == k2["environment"]["NCCL_SOCKET_IFNAME"]
    assert k1["cap_drop"] == ["ALL"] and k1["privileged"] is False  # the hardening stays
    assert [d["Count"] for d in k1["device_requests"]] == [2]
    with pytest.raises(JobError, match="--gpus-per-node 3: gpu1 has 2, gpu2 has 2"):
        nodesmod.gpus_per_node({"gpu1": 2, "gpu2": 2}, 3)
    card = bed.store.load("mh")
    assert card["hosts"] == ["gpu1", "gpu2"] and card["node_states"] == {"gpu1": "exited", "gpu2": "exited"}
    assert card["nodes"]["rdzv_endpoint"] == "10.0.0.1:29400" and card["nodes"]["world_size"] == 4
    assert (card["nodes"]["rdzv_backend"], card["nodes"]["start_method"]) == ("static", "fork")
    assert (tmp_path / "runs/mh/results/summary.json").is_file()  # rank 0's results
    assert (tmp_path / "runs/mh/nodes/gpu2/logs.txt").is_file()  # every other node's output
    logs = {e.host for e in bed.events if e.kind == "log"}
    assert logs == {"gpu1/ranks0-1", "gpu2/ranks2-3"}
    assert "[gpu2] reaches 10.0.0.1:29400 by eth0 (10.0.0.2)" in bed.steps()
    assert "[gpu1] torchrun: --nnodes 2 --rdzv-backend static --rdzv-id mh --rdzv-conf timeout=120 (world size 4)" in bed.steps()
    calls = bed.net.calls  # one probe per host, started together; reach once rank 0 listens; all removed
    assert set(calls[:2]) == {("serve", "gpu1"), ("prepare", "gpu2")} and calls[2] == ("reach", "gpu2")
    assert set(calls[3:]) == {("stop", "gpu1"), ("stop", "gpu2")}


def test_more_nodes_than_hosts_is_refused_before_anything(tmp_path):
    bed = Bed(tmp_path)
    with pytest.raises(UsageError, match=r"--nodes 3 but only 2 host\(s\) given \(gpu1, gpu2\)"):
        bed.run(nodes=3)
    assert bed.net.calls == [] and bed.started() == {}


def test_a_host_that_cannot_reach_rank0_is_named_with_the_address(tmp_path):
    net = FakeNetwork({"gpu1": [("eth0", "10.0.0.1"), ("ib0", "192.168.5.1")], "gpu2": [("eth0", "10.0.1.2")]})
    with pytest.raises(JobError) as info:
        Bed(tmp_path, net=net).run()
    msg = info.value.message
    assert "gpu2 -> gpu1 at 10.0.0.1 (eth0): TimeoutError" in msg and "192.168.5.1 (ib0)" in msg
    assert ("stop", "gpu1") in net.calls  # the listener is gone too


def test_the_first_address_every_host_reaches_is_chosen(tmp_path):
    net = FakeNetwork({"gpu1": [("eth0", "10.0.0.1"), ("ib0", "192.168.5.1")], "gpu2": [("ib0", "192.168.5.2")]})
    net.link("gpu2", "192.168.5.1", via="ib0")
    bed = Bed(tmp_path, net=net)
    bed.run()
    k2 = bed.started()["gpu2"]
    cmd = k2["command"]
    assert cmd[cmd.index("--master-addr") + 1] == "192.168.5.1" and k2["environment"]["NCCL_SOCKET_IFNAME"] == "ib0"


def test_rendezvous_port_taken_starts_nothing(tmp_path):
    bed = Bed(tmp_path)
    bed.net.taken["gpu1"] = {29400}
    with pytest.raises(JobError, match="gpu1: the rendezvous port 29400 is taken"):
        bed.run()
    assert bed.started() == {}


def test_different_gpu_counts_refused_unless_gpus_per_node(tmp_path):
    with pytest.raises(JobError, match=r"different GPU counts \(gpu1: 2, gpu2: 1\)") as info:
        Bed(tmp_path / "a", gpus={"gpu1": 2, "gpu2": 1}).run()
    assert "--gpus-per-node" in info.value.hint
    bed = Bed(tmp_path / "b", gpus={"gpu1": 2, "gpu2": 1})
    bed.run(gpus_per_node=1)
    assert {n: k["command"][k["command"].index("--nproc-per-node") + 1] for n, k in bed.started().items()} == \
        {"gpu1": "1", "gpu2": "1"}
    with pytest.raises(JobError, match="gpu2: preflight refused the run:\n  gpus: 2 GPU"):
        Bed(tmp_path / "c", gpus={"gpu1": 2, "gpu2": 1}).run(gpus_per_node=2)


def test_cpu_hosts_run_one_process_each(tmp_path):
    bed = Bed(tmp_path, gpus={"gpu1": 0, "gpu2": 0})
    bed.run()
    for k in bed.started().values():
        assert k["command"][k["command"].index("--nproc-per-node") + 1] == "1" and k["device_requests"] == []


def test_a_failing_host_stops_the_start_with_its_reason(tmp_path):
    bed = Bed(tmp_path, names=("gpu1", "gpu2"))
    bed.hosts["gpu2"].sections["run_disks"] = ("", "df: cannot read", 1)
    with pytest.raises(JobError) as info:
        bed.run()
    assert "2 nodes asked for, 1 of 2 hosts passed preflight; nothing was started" in info.value.message
    assert "gpu2:" in info.value.message and bed.started() == {}


def test_a_group_takes_the_first_hosts_that_pass(tmp_path):
    bed = Bed(tmp_path, names=("gpu1", "gpu2", "gpu3"))
    bed.hosts["gpu2"].sections["run_disks"] = ("", "df: cannot read", 1)
    out = bed.run(nodes=2)
    assert [n.host for n in out.nodes] == ["gpu1", "gpu3"] and set(bed.started()) == {"gpu1", "gpu3"}
    assert any(s.startswith("[gpu2] left out:") for s in bed.steps())


def test_one_node_failing_stops_the_others(tmp_path):
    engines = {"gpu1": FakeEngine(logs=LOGS, outputs=OUTPUTS, hold=True),
               "gpu2": FakeEngine(logs=LOGS, exit_code=1)}
    bed = Bed(tmp_path, engines=engines)
    out = bed.run()
    assert out.stopped_by == "gpu2" and out.state == "interrupted"
    assert [(n.host, n.state, n.exit_code) for n in out.nodes] == [("gpu1", "interrupted", 143), ("gpu2", "failed", 1)]
    assert engines["gpu1"].requests["stop"] == 1
    assert any("[gpu2] node 1" in s and "stopping 1 other node(s) (SIGTERM" in s for s in bed.steps())
    assert bed.store.load("mh")["stopped_by"] == "gpu2"


def test_a_refused_start_removes_the_started_nodes(tmp_path):
    engines = {"gpu1": FakeEngine(logs=LOGS), "gpu2": FakeEngine(refuse_start="no space left on device")}
    bed = Bed(tmp_path, engines=engines)
    with pytest.raises(JobError, match="a node did not start; the others were removed"):
        bed.run()
    assert bed.started() == {} and engines["gpu1"].requests["remove"] == 1
    assert bed.store.load("mh")["state"] == "not-started"


def test_detach_starts_all_and_returns(tmp_path):
    bed = Bed(tmp_path, detach=True)
    assert bed.run() is None
    assert set(bed.started()) == {"gpu1", "gpu2"} and bed.store.load("mh")["state"] == "running"


def test_plan_is_pure_and_never_uses_lo_or_docker0():
    assert not nodesmod.Iface("docker0", "172.17.0.1").usable() and not nodesmod.Iface("lo", "127.0.0.1").usable()
    with pytest.raises(JobError, match="no address the other hosts could use"):
        nodesmod.choose_rdzv("gpu1", [nodesmod.Iface("lo", "127.0.0.1"), nodesmod.Iface("docker0", "172.17.0.1")], [])


def test_node_argv_is_what_torchrun_itself_parses():
    """opskit's node line read by torchrun's own parser: the static rendezvous at rank 0's
    proved address and port, the node's rank, the run's ID and timeout, workers forked."""
    from torch.distributed.run import config_from_args, parse_args

    from opskit.train.torchrun import warm_start

    argv = nodesmod.torchrun_argv(nnodes=2, nproc=4, node_rank=1, addr="10.0.0.1", port=29411, run_id="r1")
    args = parse_args([*argv, "-m", "opskit.train", "lenet", "--steps", "3"])
    assert (args.nnodes, args.nproc_per_node, args.node_rank) == ("2", "4", 1)
    assert (args.rdzv_backend, args.master_addr, args.master_port, args.rdzv_id) == ("static", "10.0.0.1", 29411, "r1")
    assert (args.max_restarts, args.start_method, args.module) == (0, "fork", True)
    assert (args.training_script, args.training_script_args) == ("opskit.train", ["lenet", "--steps", "3"])
    assert warm_start(args)  # the node launcher forks the workers warm for exactly this line
    config, _, _ = config_from_args(args)
    assert config.rdzv_endpoint == "10.0.0.1:29411" and config.rdzv_configs == {"timeout": "120", "rank": 1}
    assert (config.min_nodes, config.max_nodes, config.nproc_per_node) == (2, 2, 4)
    # A job script's shell variables go in as given (the script quotes the line itself).
    argv = nodesmod.torchrun_argv(nnodes="$N", nproc=1, node_rank="$SLURM_NODEID", addr="$A", port=1, run_id="$J")
    assert argv[argv.index("--node-rank") + 1] == "$SLURM_NODEID" and argv[argv.index("--rdzv-id") + 1] == "$J"


def old_run(store: RunStore, run_id: str, data: bytes) -> None:
    """An earlier run collected here: results/checkpoints/last.pt and the collect's manifest."""
    import hashlib
    import json

    store.save(run_id, {"run_id": run_id, "state": "interrupted"})
    (store.path(run_id) / "results/checkpoints").mkdir(parents=True)
    (store.path(run_id) / "results/checkpoints/last.pt").write_bytes(data)
    (store.path(run_id) / "manifest.json").write_text(json.dumps(
        {"files": {"checkpoints/last.pt": hashlib.sha256(data).hexdigest()}}))


def test_resume_places_rank0s_checkpoint_on_every_node(tmp_path):
    from opskit.jobs.multiops import checkpoint_of

    bed = Bed(tmp_path, names=("gpu3", "gpu4"))  # other hosts than the earlier run's
    old_run(bed.store, "mh-old", b"weights at step 7")
    ckpt = checkpoint_of(bed.store, "mh-old")
    bed.run(resume=ckpt)
    for name in ("gpu3", "gpu4"):
        placed = tmp_path / name / "home/.opskit/runs/mh/checkpoints/last.pt"
        assert placed.read_bytes() == b"weights at step 7"
        cmd = bed.started()[name]["command"]
        assert cmd[-4:] == ["--resume", "auto", "--out", "/out"]
    assert bed.store.load("mh")["resumed_from"] == {"run_id": "mh-old", "sha256": ckpt.sha256}
    assert any("resumes from run mh-old's checkpoint" in s for s in bed.steps())


def test_resume_needs_a_collected_unchanged_checkpoint(tmp_path):
    from opskit.jobs.multiops import checkpoint_of

    store = RunStore(tmp_path / "runs")
    store.save("bare", {"run_id": "bare"})
    with pytest.raises(JobError, match="run bare has no collected checkpoint here") as info:
        checkpoint_of(store, "bare")
    assert "opskit collect bare" in info.value.hint
    old_run(store, "edited", b"x")
    (store.path("edited") / "results/checkpoints/last.pt").write_bytes(b"y")
    with pytest.raises(JobError, match="changed since it was collected"):
        checkpoint_of(store, "edited")


def test_cancel_and_collect_from_the_card(tmp_path):
    from opskit.jobs.multiops import Nodes

    bed = Bed(tmp_path, detach=True)
    bed.run()
    card = bed.store.load("mh")
    specs = [HostSpec(n, hostname=n) for n in ("gpu1", "gpu2")]
    with Nodes(card, specs, lambda spec: bed.hosts[spec.name]) as nodes:
        states = nodes.cancel(bed.store, grace=5)
    assert [(s.host, s.state, s.exit_code) for s in states] == [("gpu1", "interrupted", 143), ("gpu2", "interrupted", 143)]
    assert all(e.requests["stop"] == 1 for e in bed.engines.values())  # SIGTERM first (docker stop)
    with Nodes(bed.store.load("mh"), specs, lambda spec: bed.hosts[spec.name]) as nodes:
        out = nodes.collect(bed.store)
    assert [(n.host, n.rank) for n in out.nodes] == [("gpu1", 0), ("gpu2", 1)]
    assert (tmp_path / "runs/mh/results/summary.json").is_file()
    assert (tmp_path / "runs/mh/nodes/gpu2/results/summary.json").is_file()
    assert bed.store.load("mh")["node_states"] == {"gpu1": "interrupted", "gpu2": "interrupted"}


class _Dropped:
    """A log stream whose connection drops (what a lost host's stream does)."""

    def __iter__(self):
        raise ConnectionResetError("the SSH channel closed")


def test_a_host_lost_mid_run_stops_the_others(tmp_path):
    engines = {"gpu1": FakeEngine(logs=LOGS, outputs=OUTPUTS, hold=True), "gpu2": FakeEngine(logs=LOGS)}
    engines["gpu2"].logs = _Dropped()
    bed = Bed(tmp_path, engines=engines)
    out = bed.run()
    lost = out.nodes[1]
    assert (lost.host, lost.state, lost.exit_code) == ("gpu2", "lost", None)
    assert "host lost: the SSH channel closed" in lost.detail
    assert out.stopped_by == "gpu2" and engines["gpu1"].requests["stop"] == 1
    assert out.nodes[0].exit_code == 143 and not out.ok


def test_the_probe_script_itself_on_loopback(tmp_path):
    """The probes' own script (what runs in the job's image on each host), here on 127.0.0.1:
    listen answers reach with its banner; a port with a listener is refused; a port left in
    TIME_WAIT by an earlier connection is not (torch's store binds over it too)."""
    import json
    import socket
    import subprocess
    import sys

    from opskit.jobs.netprobe import PORT_TAKEN, SCRIPT

    def probe(*args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", SCRIPT, *args], stdout=subprocess.PIPE, text=True, **kw)

    def reach(port: int) -> dict:
        res = subprocess.run([sys.executable, "-c", SCRIPT, "reach", str(port), "127.0.0.1"],
                             capture_output=True, text=True, timeout=30)
        return json.loads(res.stdout)["127.0.0.1"]

    holder = socket.socket()  # as torch's store: SO_REUSEADDR (its connections' TIME_WAIT inherits it)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    holder.listen(1)
    taken = probe("listen", str(port), "5")
    assert taken.wait(30) == PORT_TAKEN and "Address already in use" in taken.stdout.read()
    # a connection closed by the listening side first leaves the port in TIME_WAIT
    peer = socket.create_connection(("127.0.0.1", port))
    conn, _ = holder.accept()
    conn.close()
    peer.recv(1)
    peer.close()
    holder.close()
    listener = probe("serve", str(port), "20")  # rank 0's one probe: its addresses, then the port held
    try:
        served = json.loads(listener.stdout.readline())
        assert ["lo", "127.0.0.1"] in served["addrs"] and served["launcher"] is True
        assert json.loads(listener.stdout.readline()) == {"listening": port}
        got = reach(port)
        assert got["ok"] and got["ifname"] == "lo" and got["local"] == "127.0.0.1"
    finally:
        listener.kill()
        listener.wait()
    gone = reach(port)
    assert not gone["ok"] and "ConnectionRefusedError" in gone["error"]
    addrs = json.loads(subprocess.run([sys.executable, "-c", SCRIPT, "addrs"], capture_output=True, text=True,
                                      timeout=30).stdout)
    assert ["lo", "127.0.0.1"] in addrs["addrs"] and addrs["launcher"] is True
