"""Bounds against real hosts (issue 11 class 7, field cases security/11 and 12): a command that
floods output over real OpenSSH is stopped at the cap with memory flat, and a host frozen with
``docker pause`` while its run's logs are followed ends the follow with "stopped answering".
"""

from __future__ import annotations

import dataclasses
import os
import resource
import subprocess
import sys

import pytest

from opskit.errors import HostError
from opskit.hosts.ssh import SSHTransport
from opskit.jobs import runner


def test_a_flooding_command_is_stopped_at_the_cap_memory_flat(ssh_testbed, monkeypatch):
    monkeypatch.setenv("OPSKIT_MAX_OUTPUT_MB", "8")
    [spec] = ssh_testbed.specs(ssh_testbed.names[:1])
    with SSHTransport(spec) as t:
        t.run(["true"], check=True)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with pytest.raises(HostError, match=r"printed more than 8 MiB on stdout; stopped it"):
            t.run(["yes", "flood"], timeout=120)
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert grown_mb < 100, f"opskit grew by {grown_mb:.0f} MB for an 8 MiB cap"
        assert t.run(["echo", "still usable"]).stdout == "still usable\n"
        code, out = ssh_testbed.host(spec.name).exec(["sh", "-c", "pgrep -x yes || true"])
        assert out.strip() == "", "the flooding command was left running on the host"


QUICK = ["lenet", "--small", "--steps", "100000", "--batch-size", "16", "--log-every", "1",
         "--train-samples", "256", "--val-samples", "64"]


def test_a_frozen_host_ends_following_within_the_keepalive_bound(gpu_hosts, training_image, tmp_path):
    name = gpu_hosts.names[1]
    host = gpu_hosts.host(name)
    env = {**os.environ, **gpu_hosts.env(), "OPSKIT_RUNS_DIR": str(tmp_path / "runs")}
    started = subprocess.run([sys.executable, "-m", "opskit", "run-remote", "--host", name, "--image", training_image,
                              "--run-id", "frozen-1", "--gpus", "0", "--detach", *QUICK],
                             env=env, capture_output=True, text=True, timeout=300, check=False)
    assert started.returncode == 0, started.stderr
    [spec] = gpu_hosts.specs([name])
    spec = dataclasses.replace(spec, keepalive=1, connect_timeout=5)  # bound: 1 s x 3
    lines: list[str] = []

    def emit(event):
        lines.append(getattr(event, "line", ""))
        if len(lines) == 3:
            host.container.pause()  # sshd and the engine stop; the TCP connection stays open

    t = SSHTransport(spec)
    try:
        with pytest.raises(runner.Detached) as err:
            runner.follow(t, "frozen-1", emit)
    finally:
        host.container.reload()
        if host.container.status == "paused":
            host.container.unpause()
        t.close()
        host.exec(["docker", "rm", "-f", "opskit-run-frozen-1"])
        host.exec(["rm", "-rf", "/home/opskit/.opskit/runs/frozen-1"])
    assert "stopped answering" in err.value.message and "3 missed" in err.value.message
    assert "opskit logs frozen-1 -f" in err.value.hint
