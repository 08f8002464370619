"""A hostile training container on a real host (Docker-in-Docker GPU host over real sshd):
field cases security/01, 02, 03, 04 and 16 end to end, and what the container itself may do.

The image's entry finds the host path of /out in its mount table and plants links at the names
opskit used to write (logs capture, manifest temp name) pointing at the login user's
``authorized_keys`` and ``.profile``, names a result as a shell command, writes its own
``job.json``, a ``*.tmp`` result and a symlinked checkpoint, reports its capabilities, and
prints an ``authorized_keys`` line as its output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HOME = "/home/opskit"
RUN = "hostile-1"
ENTRY = r"""#!/bin/sh
src=$(awk '$5 == "/out" {print $4}' /proc/self/mountinfo)
home=${src%/.opskit/runs/*}
ln -s "$home/.ssh/authorized_keys" /out/logs.txt.tmp
mkdir -p /out/.opskit /out/checkpoints
ln -s "$home/.profile" /out/.opskit/manifest.sha256.tmp
ln -s "$home/.ssh" /out/sshdir
: > "/out/x;cd;touch PWNED-by-container;#"
echo '{"run_id": "hostile-1", "host": "forged"}' > /out/job.json
echo p > /out/predictions.tmp
echo w > /out/checkpoints/epoch_3.pt
ln -s epoch_3.pt /out/checkpoints/best.pt
grep -E '^(CapEff|NoNewPrivs)' /proc/self/status >&2
test -e /var/run/docker.sock && echo "docker socket visible" >&2
echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAttackerKeyFromTheTrainingContainer attacker@container"
"""


@pytest.fixture(scope="module")
def hostile_image(docker_client, training_image, tmp_path_factory):
    ctx = tmp_path_factory.mktemp("hostile")
    (ctx / "entry").write_text(ENTRY)
    os.chmod(ctx / "entry", 0o755)
    os.utime(ctx / "entry", (0, 0))
    (ctx / "Dockerfile").write_text(f'FROM {training_image}\nCOPY entry /entry\nENTRYPOINT ["/entry"]\n')
    tag = "opskit-train-hostile:1"
    docker_client.images.build(path=str(ctx), tag=tag, rm=True, pull=False)
    return tag


def opskit(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opskit", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def test_a_hostile_container_reaches_nothing_outside_its_folder(gpu_hosts, hostile_image, docker_client, tmp_path):
    name = gpu_hosts.names[0]
    host = gpu_hosts.host(name)
    env = {**os.environ, **gpu_hosts.env(), "OPSKIT_RUNS_DIR": str(tmp_path / "runs"), "COLUMNS": "200"}
    before = host.exec(["sh", "-c", f"cat {HOME}/.ssh/authorized_keys {HOME}/.profile"])[1]
    res = opskit(env, "run-remote", "--host", name, "--image", hostile_image, "--run-id", RUN, "--gpus", "0", "lenet")
    assert res.returncode == 1, res.stdout + res.stderr  # exit 0, but not everything was collected
    assert "exited, exit 0" in res.stdout and "not collected" in res.stderr
    # 01/02: no login file changed, no command ran at the next login
    assert host.exec(["sh", "-c", f"cat {HOME}/.ssh/authorized_keys {HOME}/.profile"])[1] == before
    host.exec(["su", "-", "opskit", "-c", "true"])
    assert host.exec(["test", "-e", f"{HOME}/PWNED-by-container"])[0] != 0
    run = tmp_path / "runs" / RUN
    assert "AttackerKey" in (run / "logs.txt").read_text()  # the output saved, as a record
    # 03: the card is opskit's; the container's job.json is a result
    card = json.loads((run / "job.json").read_text())
    assert card["host"] == name and json.loads((run / "results/job.json").read_text())["host"] == "forged"
    missed = {m["path"] for m in card["collected"]["not_collected"]}
    assert {"logs.txt.tmp", ".opskit/manifest.sha256.tmp", "checkpoints/best.pt", "sshdir"} <= missed
    assert (run / "results/predictions.tmp").read_text() == "p\n"
    assert (run / "results/x;cd;touch PWNED-by-container;#").exists()
    # 10: what the container could do
    logs = (run / "logs.txt").read_text()
    assert "CapEff:\t0000000000000000" in logs and "NoNewPrivs:\t1" in logs and "docker socket" not in logs
    code, out = host.exec(["docker", "inspect", "-f", "{{json .HostConfig}}|{{json .Mounts}}", f"opskit-run-{RUN}"])
    hc, mounts = (json.loads(part) for part in out.split("|"))
    assert hc["CapDrop"] == ["ALL"] and "no-new-privileges:true" in hc["SecurityOpt"] and hc["PidsLimit"] == 4096
    assert not hc["Privileged"] and [m["Source"] for m in mounts] == [f"{HOME}/.opskit/runs/{RUN}"]
    # 16: another local user reads nothing of opskit's
    modes = host.exec(["stat", "-c", "%a %n", f"{HOME}/.opskit", f"{HOME}/.opskit/runs/{RUN}",
                       f"{HOME}/.opskit/records/{RUN}", f"{HOME}/.opskit/ship"])[1].split()
    assert modes[::2] == ["700"] * 4, modes
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", f"{HOME}/.opskit/runs/{RUN}/job.json"]
    assert host.exec(nobody)[0] != 0
    # 04: --remove-remote removes exactly what verified here; links are kept and listed
    again = opskit(env, "collect", RUN, "--remove-remote", "--json")
    assert again.returncode == 1, again.stderr
    kept = json.loads(again.stdout)["kept_on_host"]
    assert {"checkpoints/best.pt", "logs.txt.tmp", "sshdir"} <= set(kept) and "predictions.tmp" not in kept
    listing = host.exec(["find", f"{HOME}/.opskit/runs/{RUN}", "!", "-type", "d"])[1]
    assert "epoch_3.pt" not in listing and "best.pt" in listing
    assert host.exec(["test", "-e", f"{HOME}/.ssh/authorized_keys"])[0] == 0
    host.exec(["sh", "-c", f"rm -rf {HOME}/.opskit/runs/{RUN} {HOME}/.opskit/records/{RUN}; docker rm -f opskit-run-{RUN}"])

