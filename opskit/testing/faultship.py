"""The fault-injection suite's trials that ship images, run containers, or fill this machine's
disk (see :mod:`opskit.testing.faults`)."""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import sys
import threading
import time
from typing import Any

from opskit.testing.faultworld import HOME, Counts, World, layer_image


def _host_image_id(w: World, tag: str) -> str | None:
    for _ in range(10):  # a load cut with its connection may still be finishing on the host
        code, out = w.host.exec(["docker", "image", "inspect", "-f", "{{.Id}}", tag])
        if code != 0:
            return None
        if out.strip().startswith("sha256:"):
            return out.strip()
        time.sleep(1)
    return out.strip()


def ship_trial(w: World, c: Counts, fault: str) -> None:
    from opskit.images import ship as shipmod

    w.seq += 1
    tag, size = layer_image(w.client, w.image, w.rng, w.seq)
    local_id = w.client.images.get(tag).id
    before = w.sentinels()
    undo = _arm_ship(w, fault, size)
    done = False
    try:
        done = shipmod.ship(w.client, tag, [w.spec]).ok
    except Exception:  # noqa: BLE001 - the fault's effect; the re-runs below must repair it
        done = False
    fired = undo() and (fault != "host_disk_full_load" or not done)  # a full disk that still fit: no fault
    if fired:
        c.injections += 1
    reruns = 0
    while not done and reruns < 3:
        reruns += 1
        with contextlib.suppress(Exception):
            done = shipmod.ship(w.client, tag, [w.spec]).ok
    got = _host_image_id(w, tag)
    if got is not None and got != local_id:
        c.unverified_at_final_path += 1
        c.notes.append(f"{tag}: the host's {tag} is {got[:19]}, not {local_id[:19]}")
    if not done or got is None:
        c.results_lost += 1
        c.notes.append(f"{tag}: never shipped ({fault})")
    if reruns > 1:
        c.runs_needing_more_than_one_rerun += 1
    changed = w.outside_changes(before)
    if changed:
        c.writes_outside_destination += 1
        c.notes.append(f"{tag}: outside opskit's folders, changed on the host: {changed}")
    w.host.exec(["sh", "-c", f"docker image rm -f {tag} >/dev/null; rm -f {HOME}/.opskit/ship/*"], user="root")
    with contextlib.suppress(Exception):
        w.client.images.remove(tag, force=True)


def _arm_ship(w: World, fault: str, size: int) -> Any:
    from opskit.hosts import ssh as sshmod
    from opskit.images import ship as shipmod

    state = {"fired": False}
    if fault == "ssh_killed_upload":
        before = w.proxy.fired
        w.proxy.after(w.rng.randint(2000, size), w.proxy.kill_all)

        def undo() -> bool:
            w.proxy.disarm()
            return w.proxy.fired > before
        return undo
    if fault == "ssh_killed_load":
        original = sshmod.SSHTransport.run

        def run(self: Any, argv: Any, **kw: Any) -> Any:
            if "docker load" in " ".join(map(str, argv)) and not state["fired"]:
                def kill() -> None:
                    state["fired"] = True
                    w.proxy.kill_all()
                threading.Timer(w.rng.uniform(0.0, 0.4), kill).start()
            return original(self, argv, **kw)
        sshmod.SSHTransport.run = run  # type: ignore[method-assign]

        def undo_load() -> bool:
            sshmod.SSHTransport.run = original  # type: ignore[method-assign]
            time.sleep(0.5)
            return state["fired"]
        return undo_load
    if fault == "truncated_archive":
        original_load = shipmod.load_archive

        def load(transport: Any, part: str, *args: Any) -> Any:
            if not state["fired"]:
                code, out = w.host.exec(["stat", "-c", "%s", part])
                cut = w.rng.randint(0, max(0, int(out.strip() or 1) - 1))
                w.host.exec(["truncate", "-s", str(cut), part], user="opskit")
                state["fired"] = True
            return original_load(transport, part, *args)
        shipmod.load_archive = load

        def undo_trunc() -> bool:
            shipmod.load_archive = original_load
            return state["fired"]
        return undo_trunc
    if fault == "host_disk_full_load":
        keep = w.rng.randint(0, size)
        w.sh(f"avail=$(df -B1 --output=avail /var/lib/docker | tail -1); "
             f"fallocate -l $((avail - {keep})) /var/lib/docker/faults-filler", user="root")

        def undo_full() -> bool:
            w.sh("rm -f /var/lib/docker/faults-filler", user="root")
            return True
        return undo_full
    raise ValueError(fault)


def container_trial(w: World, c: Counts, fault: str) -> None:
    from opskit.testing.faults import _cleanup, _collect, _judge, _start

    run_id = w.next_id(fault)
    before = w.sentinels()
    if fault == "container_oom":
        script = ("echo started; head -c 4096 /dev/urandom > /out/before.bin; "
                  "x=$(head -c 400000000 /dev/zero | tr '\\0' a); echo never > /out/after.txt")
        _start(w, run_id, script, memory=w.rng.choice([16, 24, 32, 48]) << 20)
        w.host.exec(["docker", "wait", f"opskit-run-{run_id}"])
        c.injections += 1
    elif fault == "container_killed":
        script = "i=0; while :; do head -c 20000 /dev/urandom > /out/part-$i.bin; i=$((i+1)); sleep 0.02; done"
        _start(w, run_id, script)
        time.sleep(w.rng.uniform(0.1, 1.2))
        w.host.exec(["docker", "kill", f"opskit-run-{run_id}"])
        w.host.exec(["docker", "wait", f"opskit-run-{run_id}"])
        c.injections += 1
    else:
        _follow_with_kill(w, c, run_id)
    source = w.host_tree(f"{HOME}/.opskit/runs/{run_id}")
    truth = w.host.exec(["sh", "-c", f"docker logs opskit-run-{run_id} 2>&1"])[1]  # what the container printed
    reruns, done = 0, False
    while not done and reruns < 3:
        try:
            res = _collect(w, run_id, remove=True)
            done = True
        except Exception as exc:  # noqa: BLE001
            reruns += 1
            c.notes.append(f"{run_id}: collect failed: {exc}")
    saved = w.work / "runs" / run_id / "logs.txt"
    if done and (not res.logs or saved.read_text(errors="replace").split() != truth.split()):
        c.results_lost += 1
        c.notes.append(f"{run_id}: the container's output was not collected as it printed it")
    _judge(w, c, run_id, source, before, reruns, done)
    _cleanup(w, run_id)


def _follow_with_kill(w: World, c: Counts, run_id: str) -> None:
    from opskit.jobs import runner
    from opskit.testing.faults import _start, _transport

    _start(w, run_id, "for i in $(seq 1 60); do echo line $i; sleep 0.03; done; echo done > /out/summary.txt")
    before = w.proxy.fired
    w.proxy.after(w.rng.randint(0, 6000), w.proxy.kill_all)
    seen: list[str] = []
    try:
        with _transport(w) as t:
            runner.follow(t, run_id, lambda ev: seen.append(getattr(ev, "line", "")))
    except runner.Detached:
        pass
    w.proxy.disarm()
    if w.proxy.fired > before:
        c.injections += 1
    for _ in range(3):  # reattach until the run ended
        try:
            with _transport(w) as t:
                runner.follow(t, run_id, lambda ev: seen.append(getattr(ev, "line", "")))
            break
        except runner.Detached:
            continue
    if "line 60" not in seen:
        c.notes.append(f"{run_id}: the last line was never shown")


def local_disk_trials(w: World, c: Counts, n: int) -> None:
    """Collect into a small tmpfs (a private mount namespace: ``unshare -m``) that fills up at
    a random point; then the space is freed (remount) and collect runs again."""
    from opskit.testing.faults import _judge, _put, _random_files

    inv = w.work / "faults-inventory.yaml"
    inv.write_text(json.dumps({"hosts": {w.spec.name: {
        "hostname": "127.0.0.1", "port": w.proxy.port, "user": "opskit",
        "identityfile": list(w.spec.identityfile), "identities_only": True,
        "known_hosts": list(w.spec.known_hosts), "keepalive": 1, "connect_timeout": 5}}}))
    tries = 0
    while c.injections < n and tries < 3 * n:
        tries += 1
        run_id = w.next_id("local-full")
        files = _random_files(w, w.rng.randint(3, 6))
        _put(w, run_id, files, {}, [])
        source = w.host_tree(f"{HOME}/.opskit/runs/{run_id}")
        size = w.rng.randint(4096, max(8192, sum(map(len, files.values()))))
        before = w.sentinels()
        out = w.work / "runs" / run_id
        fired, reruns, done = _collect_in_small_tmpfs(w, inv, run_id, size, out)
        if fired:
            c.injections += 1
        _judge(w, c, run_id, source, before, reruns, done)
        w.host.exec(["sh", "-c", f"rm -rf {HOME}/.opskit/runs/{run_id} {HOME}/.opskit/records/{run_id}"], user="root")


def _collect_in_small_tmpfs(w: World, inv: Any, run_id: str, size: int, out: Any) -> tuple[bool, int, bool]:
    py = shlex.quote(sys.executable)
    d = shlex.quote(str(w.work / f"tmpfs-{run_id}"))
    coll = f"{py} -m opskit collect {run_id} --host {w.spec.name}"
    script = (f"mkdir -p {d} && mount -t tmpfs -o size={size} tmpfs {d} || exit 90\n"
              f"OPSKIT_RUNS_DIR={d} {coll} >/dev/null 2>&1; first=$?\n"
              f"mount -o remount,size=256m {d}\n"
              f"n=0; rc=1; while [ $n -lt 3 ] && [ $rc -ne 0 ]; do n=$((n+1)); "
              f"OPSKIT_RUNS_DIR={d} {coll} --remove-remote >/dev/null 2>&1; rc=$?; done\n"
              f"mkdir -p {shlex.quote(str(out))} && cp -a {d}/{run_id}/. {shlex.quote(str(out))}/\n"
              f"echo $first $n $rc")
    env = {"PATH": "/usr/bin:/bin", "OPSKIT_INVENTORY": str(inv), "HOME": str(w.work),
           "PYTHONPATH": ":".join(p for p in sys.path if p)}
    res = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], env=env,
                         capture_output=True, text=True, timeout=600, check=False)
    subprocess.run(["rmdir", str(w.work / f"tmpfs-{run_id}")], check=False)
    words = res.stdout.split()
    if len(words) != 3:
        raise RuntimeError(f"local disk trial failed to run: {res.stderr[-300:]}")
    first, n, rc = map(int, words)
    return first != 0, n, rc == 0
