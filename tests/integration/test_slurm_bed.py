"""The Slurm test bed itself (opskit.testing.slurm): a real Slurm 22.05 cluster in containers.

What the Slurm tests of opskit rely on: both nodes idle with GRES gpu:2, a two-node batch job
writing into the shared folder, a job step that runs a container in its node's engine and sees
the fake nvidia-smi, SSH to the nodes through the login host (opskit's own ssh and OpenSSH),
and a node whose slurmd stops going DOWN / not responding (then back when it starts again).
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from opskit.hosts.inventory import load_inventory
from opskit.hosts.ssh import SSHTransport
from opskit.testing.engine import require_tool
from opskit.testing.slurm import GPUS_PER_NODE, SlurmCluster
from opskit.waiting import wait_until

pytestmark = pytest.mark.integration


def _as_user(cluster: SlurmCluster, cmd: str) -> str:
    return cluster.check(cluster.login, ["bash", "-lc", cmd], user="opskit")


def _submit(cluster: SlurmCluster, script: str, folder: str) -> str:
    """Write ``script`` to FOLDER/job.sh on the shared folder (as opskit) and sbatch it."""
    _as_user(cluster, f"mkdir -p {folder} && printf '%s' {_quote(script)} > {folder}/job.sh")
    return _as_user(cluster, f"cd {folder} && sbatch --parsable job.sh").strip().split(";")[0]


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def test_sinfo_both_nodes_idle_with_two_gpus(cluster: SlurmCluster) -> None:
    states = cluster.node_states()
    assert states == {n: ("idle", f"gpu:{GPUS_PER_NODE}") for n in cluster.nodes}
    for node in cluster.nodes:
        shown = cluster.check(cluster.login, ["scontrol", "show", "node", "-o", node])
        assert f"Gres=gpu:{GPUS_PER_NODE}" in shown and "Partitions=gpu" in shown, shown
        # the stand-in GPUs of gres.conf are device files on the node
        listing = cluster.check(node, ["sh", "-c", "stat -c '%F %t:%T' /dev/nvidia0 /dev/nvidia1"])
        assert listing.split("\n")[:2] == ["character special file c3:0", "character special file c3:1"]


def test_the_munge_key_is_a_private_file_never_in_a_container_environment(cluster: SlurmCluster) -> None:
    import base64
    import stat

    key = cluster.munge_key_path.read_bytes()
    assert len(key) == 128 and stat.S_IMODE(cluster.munge_key_path.stat().st_mode) == 0o600
    for name, host in cluster.hosts.items():
        host.container.reload()
        env = " ".join(host.container.attrs["Config"]["Env"] or [])
        assert "MUNGE" not in env and base64.b64encode(key).decode() not in env, name
        shown = cluster.check(name, ["sh", "-c", "stat -c '%U %a' /etc/munge/munge.key && "
                                     "od -An -tx1 -v /etc/munge/munge.key | tr -d ' \\n'"])
        owner, content = shown.split("\n")[:2]
        assert (owner, content) == ("munge 400", key.hex()), name  # munged's own copy, the same key


def test_two_node_batch_job_writes_into_the_shared_folder(cluster: SlurmCluster) -> None:
    folder = f"{cluster.shared_dir}/bed-{uuid.uuid4().hex[:8]}"
    script = (
        "#!/bin/bash\n"
        "#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --output=slurm-%j.out\n"
        f"#SBATCH --gres=gpu:{GPUS_PER_NODE}\n"
        "scontrol show hostnames \"$SLURM_JOB_NODELIST\" > hosts.txt\n"
        "srun --ntasks-per-node=1 sh -c "
        "'echo \"$SLURM_NODEID $SLURM_JOB_ID $(id -un) $CUDA_VISIBLE_DEVICES\" > \"$(hostname).txt\"'\n"
    )
    job = _submit(cluster, script, folder)
    assert cluster.wait_job(job) == "COMPLETED", _as_user(cluster, f"cat {folder}/slurm-{job}.out")
    assert _as_user(cluster, f"cat {folder}/hosts.txt").split() == cluster.nodes
    lines = {}
    for node in cluster.nodes:  # written on each node, read on another host of the cluster
        reader = cluster.nodes[1] if node == cluster.nodes[0] else cluster.login
        lines[node] = cluster.check(reader, ["cat", f"{folder}/{node}.txt"]).split()
    assert sorted(v[0] for v in lines.values()) == ["0", "1"]
    assert all(v[1:] == [job, "opskit", "0,1"] for v in lines.values()), lines


@pytest.fixture(scope="module")
def tiny_image(slurm_cluster: SlurmCluster, docker_client, base_image: str) -> str:
    """A tiny image FROM the offline base, built once by a stable tag, loaded into node1."""
    import io

    require_tool("docker", "docker.io")  # the docker CLI: load_image pipes into docker exec

    base_id = docker_client.images.get(base_image).id.split(":")[1][:12]
    tag = f"opskit-slurmbed-tiny:{base_id}"
    dockerfile = f"FROM {base_image}\nRUN echo opskit-slurm-tiny > /tiny\n"
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, pull=False,
                               rm=True, forcerm=True, labels={"opskit.testing": "slurm-tiny"})
    slurm_cluster.load_image(slurm_cluster.nodes[0], tag)
    return tag


def test_job_step_runs_a_container_in_its_node_engine_with_the_fake_nvidia_smi(
    cluster: SlurmCluster, tiny_image: str
) -> None:
    node = cluster.nodes[0]
    out = _as_user(cluster, f"srun -w {node} -N1 --gres=gpu:1 sh -c "
                            f"'hostname; docker run --rm {tiny_image} cat /tiny; nvidia-smi -L'")
    lines = out.splitlines()
    assert lines[:2] == [node, "opskit-slurm-tiny"], out
    fake = cluster.check(node, ["nvidia-smi", "-L"]).splitlines()
    assert lines[2:] == fake and fake and all("NVIDIA H100" in line for line in fake), out
    # the other node's engine does not have the image: the step fails there
    other = cluster.nodes[1]
    code, out = cluster.exec(cluster.login, ["srun", "-w", other, "-N1", "docker", "image",
                                             "inspect", tiny_image], user="opskit")
    assert code != 0 and "No such image" in out, out


def test_opskit_ssh_and_openssh_reach_a_node_through_the_login_host(cluster: SlurmCluster) -> None:
    node = cluster.nodes[0]
    inv = load_inventory(str(cluster.inventory_path), ssh_config=str(cluster.ssh_config_path))
    spec = inv.resolve(node)
    assert spec.proxyjump == cluster.login and spec.jump is not None
    assert (spec.jump.hostname, spec.jump.port) == ("127.0.0.1", cluster.login_port)
    with SSHTransport(spec) as t:
        res = t.run(["sh", "-c", "hostname; nvidia-smi -L | wc -l; sinfo -h -o %D"])
    assert res.exit_code == 0 and res.stdout.split() == [node, str(GPUS_PER_NODE), "2"], res
    with SSHTransport(inv.resolve(cluster.login)) as t:
        assert t.run(["hostname"]).stdout.strip() == cluster.login
    require_tool("ssh", "openssh-client")
    cfg = str(cluster.ssh_config_path)
    shown = subprocess.run(["ssh", "-G", "-F", cfg, node], capture_output=True, text=True,
                           timeout=30).stdout.splitlines()
    assert f"proxyjump {cluster.login}" in shown and f"hostname {node}" in shown
    res = subprocess.run(["ssh", "-F", cfg, "-o", "BatchMode=yes", node, "hostname; id -un"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.split() == [node, "opskit"], res.stderr


def test_a_node_whose_slurmd_stops_goes_down_and_comes_back(cluster: SlurmCluster) -> None:
    node = cluster.nodes[1]
    cluster.stop_slurmd(node)
    try:
        # '*' after the state: not responding; DOWN once SlurmdTimeout has passed
        assert cluster.wait_node_state(node, "down") == "down*"
        shown = cluster.check(cluster.login, ["scontrol", "show", "node", "-o", node])
        assert "NOT_RESPONDING" in shown and "Reason=Not responding" in shown, shown
        assert cluster.node_states()[cluster.nodes[0]][0] == "idle"
    finally:
        cluster.start_slurmd(node)
    assert cluster.node_states()[node][0] == "idle"


def test_a_node_lost_mid_job_fails_the_job_and_comes_back(cluster: SlurmCluster) -> None:
    """A frozen node (lose_node): the running two-node job ends NODE_FAIL (--no-requeue) and
    its output names the node; unfrozen, the node is idle again."""
    folder = f"{cluster.shared_dir}/lost-{uuid.uuid4().hex[:8]}"
    job = _submit(cluster, "#!/bin/bash\n#SBATCH --nodes=2 --ntasks-per-node=1 --no-requeue\n"
                           "#SBATCH --output=out.txt\nsrun sleep 300\n", folder)
    wait_until(lambda: cluster.job_state(job) == "RUNNING", 60.0, f"job {job} running")
    node = cluster.nodes[1]
    cluster.lose_node(node)
    try:
        assert cluster.wait_node_state(node, "down") == "down*"
        assert cluster.wait_job(job, timeout=60.0) == "NODE_FAIL"
    finally:
        cluster.restore_node(node)
    out = _as_user(cluster, f"cat {folder}/out.txt")
    assert f"Node failure on {node}" in out, out
    assert cluster.node_states() == {n: ("idle", f"gpu:{GPUS_PER_NODE}") for n in cluster.nodes}


def test_lab_up_slurm_then_down(docker_client, base_image: str, tmp_path) -> None:
    """scripts/lab.py up --slurm: a cluster of its own, reached by `ssh -F`; down removes its
    containers, network and shared volume; a second up in the same folder is refused."""
    import json
    import sys
    from pathlib import Path

    lab = [sys.executable, str(Path(__file__).parents[2] / "scripts" / "lab.py")]
    workdir = tmp_path / "lab"
    up = subprocess.run([*lab, "up", "--slurm", "--dir", str(workdir)], capture_output=True,
                        text=True, timeout=600)
    assert up.returncode == 0, up.stderr
    state = json.loads((workdir / "lab.json").read_text())
    try:
        assert f"export OPSKIT_SSH_CONFIG={workdir / 'ssh_config'}" in up.stdout
        assert "login slurm-login" in up.stderr
        again = subprocess.run([*lab, "up", "--slurm", "--dir", str(workdir)],
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 1 and "already up" in again.stderr
        inv = load_inventory(str(workdir / "hosts.yaml"), ssh_config=str(workdir / "ssh_config"))
        assert [s.name for s in inv.expand(["@slurm"])] == ["slurm-login"]
        with SSHTransport(inv.resolve("slurm-login")) as t:
            res = t.run(["sinfo", "-h", "-N", "-o", "%N %t %G"])
        assert res.stdout.splitlines() == ["slurm-node1 idle gpu:2", "slurm-node2 idle gpu:2"], res
    finally:
        down = subprocess.run([*lab, "down", "--dir", str(workdir)], capture_output=True,
                              text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert not (workdir / "lab.json").exists()
    assert sorted(p.name for p in workdir.iterdir()) == []  # no ssh config left pointing at dead hosts
    env = subprocess.run([*lab, "env", "--dir", str(workdir)], capture_output=True, text=True, timeout=60)
    assert (env.returncode, env.stdout) == (1, "") and "no lab is up in" in env.stderr, env.stderr
    ids = {c.id for c in docker_client.containers.list(all=True)}
    assert not ids & set(state["containers"])
    assert not docker_client.networks.list(names=[state["network"]])
    assert state["volume"] not in {v.name for v in docker_client.volumes.list()}
