"""The fault-injection suite (issue 11): every fault type injected at random points against a
real sshd + Docker-in-Docker host (:mod:`opskit.testing.faultworld`), then opskit re-run until
it reaches a fully verified state; the truth is read from the host and the disk, never from
opskit. ``run_suite(world, per_fault)`` returns ``{fault: Counts}``; ``bench/faults.py``
prints the table. Faults that need a run folder share one scenario (:func:`collect_trial`);
the transfer faults act on the real connection through the proxy.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from opskit.testing.faultworld import HOME, Counts, World

ODD = ["new\nline", "esc\x1b]0;pwned\x07", "cr\rover", "$(touch PWNED-a)", "`touch PWNED-b`",
       ";touch PWNED-c;#", "-rf", "sp ace", "rtl\u202etxt.exe", "x" * 200, "raw\udcff", "tab\tbed"]
HOSTILE_OUT = ["\x1b]0;title set by the container\x07", "\x1b]52;c;cHduZWQ=\x07",
               "\r[gpu9] a line faked for another host", "[bold red]markup[/]", "[/x] closes nothing",
               "$(touch PWNED-out)", "\x1b[2J\x1b[Hcleared"]


def _transport(w: World, **changes: Any) -> Any:
    from opskit.hosts.ssh import SSHTransport

    return SSHTransport(w.spec_with(**changes) if changes else w.spec)


def _put(w: World, run_id: str, files: dict[str, bytes], links: dict[str, str], fifos: list[str]) -> None:
    """Make the run folder on the host as the container would leave it (uid 1000)."""
    import io
    import tarfile

    w.sh(f"umask 077; mkdir -p {HOME}/.opskit/runs/{run_id}")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", encoding="utf-8", errors="surrogateescape") as tf:
        def add(name: str, kind: bytes, data: bytes = b"", target: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.uid, info.gid = kind, w.uid, w.uid
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            info.size, info.linkname = len(data), target
            tf.addfile(info, io.BytesIO(data) if data else None)
        folders = sorted({"/".join(n.split("/")[:i]) for n in [*files, *links] for i in range(1, n.count("/") + 1)})
        for name in folders:
            add(name, tarfile.DIRTYPE)
        for name, data in files.items():
            add(name, tarfile.REGTYPE, data)
        for name, target in links.items():
            add(name, tarfile.SYMTYPE, target=target)
        for name in fifos:
            add(name, tarfile.FIFOTYPE)
    w.host.container.put_archive(f"{HOME}/.opskit/runs/{run_id}", buf.getvalue())


def _start(w: World, run_id: str, script: str, memory: int | None = None) -> None:
    """Start the run's container the way run-remote does (opskit's launcher, its hardening)."""
    from opskit.checks.facts import gather_facts
    from opskit.jobs import launch
    from opskit.jobs.spec import GpuRequest, JobSpec

    job = JobSpec(run_id, "lenet", [script], w.image, GpuRequest("none"), 64 << 20, memory)
    with _transport(w) as t:
        facts = gather_facts(t)
        image_id = t.docker().images.get(w.image).id
        launch.start_container(t, job, facts, image_id)


def _wait(w: World, run_id: str) -> None:
    w.host.exec(["docker", "wait", f"opskit-run-{run_id}"])


def _random_files(w: World, n: int) -> dict[str, bytes]:
    rng = w.rng
    return {f"{rng.choice(['', 'ckpt/', 'a/b/'])}r{i}.bin": rng.randbytes(rng.randint(1, 1 << 20)) for i in range(n)}


def _collect(w: World, run_id: str, remove: bool = False, **changes: Any) -> Any:
    from opskit.jobs import runner
    from opskit.jobs.store import RunStore

    store = RunStore(w.work / "runs")
    if not store.exists(run_id):
        store.save(run_id, {"run_id": run_id, "host": w.spec.name, "host_home": HOME})
    with _transport(w, **changes) as t:
        return runner.collect_results(t, run_id, store, store.load(run_id), remove_remote=remove)


def _judge(w: World, c: Counts, run_id: str, source: dict[str, str], before: dict, reruns: int, done: bool) -> None:
    """Compare what is here and on the host with what the run wrote."""
    from opskit import atomic

    local = w.work / "runs" / run_id / "results"
    here = {str(p.relative_to(local)): atomic.sha256_file(p) for p in local.rglob("*")
            if p.is_file() and not p.is_symlink()} if local.is_dir() else {}
    host_now = w.host_tree(f"{HOME}/.opskit/runs/{run_id}")
    for rel, digest in here.items():
        if digest not in (source.get(rel), host_now.get(rel)):
            c.unverified_at_final_path += 1
            c.notes.append(f"{run_id}: {rel!r} here does not match the host")
    for rel, digest in source.items():
        if here.get(rel) != digest and rel not in host_now and here.get(rel) is None:
            c.results_lost += 1
            c.notes.append(f"{run_id}: {rel!r} neither here nor on the host")
    changed = w.outside_changes(before)
    if changed:
        c.writes_outside_destination += 1
        c.notes.append(f"{run_id}: outside the run's folders, changed on the host: {changed}")
    if w.pwned():
        c.injected_commands_executed += 1
        w.sh(f"rm -f {HOME}/PWNED* /tmp/PWNED*", user="root")
    if len(w.containers(run_id)) > 1:
        c.duplicate_jobs += 1
    if done and w.containers(run_id):
        c.leaked_containers += 1
    if reruns > 1 or not done:
        c.runs_needing_more_than_one_rerun += 1
        c.notes.append(f"{run_id}: {reruns} re-runs, done={done}")


def _cleanup(w: World, run_id: str) -> None:
    w.host.exec(["sh", "-c", f"docker rm -f opskit-run-{run_id} >/dev/null 2>&1; "
                 f"rm -rf {HOME}/.opskit/runs/{run_id} {HOME}/.opskit/records/{run_id}"], user="root")


def collect_trial(w: World, c: Counts, kind: str, *, arm: Callable[[str], Callable[[], bool]],
                  files: dict[str, bytes] | None = None, links: dict[str, str] | None = None,
                  fifos: list[str] | None = None, script: str | None = None, memory: int | None = None) -> None:
    """Make a run, collect with the fault armed, undo the fault, re-run until verified, judge."""
    run_id = w.next_id(kind)
    before = w.sentinels()
    _put(w, run_id, files if files is not None else _random_files(w, w.rng.randint(2, 6)), links or {}, fifos or [])
    if script is not None:
        _start(w, run_id, script, memory)
        _wait(w, run_id)
    source = w.host_tree(f"{HOME}/.opskit/runs/{run_id}")
    undo = arm(run_id)
    done, error = False, None
    try:
        res = _collect(w, run_id)
        done = True
    except Exception as exc:  # noqa: BLE001 - the fault's effect: judged below
        error = exc
    first_failed = not done
    if undo():
        c.injections += 1
    failures = 0
    done = False
    while failures < 3:
        try:
            res = _collect(w, run_id, remove=True)
            done = True
            break
        except Exception as exc:  # noqa: BLE001
            error = exc
            failures += 1
            time.sleep(0.5)
    reruns = failures + (1 if first_failed else 0)
    if not done:
        c.notes.append(f"{run_id}: never verified: {error}")
    elif res.not_collected and kind not in ("planted_symlinks", "odd_names", "files_changed_after_hashing"):
        c.notes.append(f"{run_id}: not collected: {res.not_collected[:2]}")
    _judge(w, c, run_id, source, before, reruns, done)
    _cleanup(w, run_id)


# -- arming the faults (each returns undo() -> whether the fault fired) ---------------------------
def arm_proxy(w: World, action: Callable[[], None], total: int) -> Callable[[str], Callable[[], bool]]:
    def arm(run_id: str) -> Callable[[], bool]:
        before = w.proxy.fired
        w.proxy.after(w.rng.randint(0, total), action)

        def undo() -> bool:
            w.proxy.disarm()
            if w.proxy._listener is None:  # sshd "restarted"
                w.proxy.start()
            return w.proxy.fired > before
        return undo
    return arm


def arm_pause(w: World) -> Callable[[str], Callable[[], bool]]:
    def arm(run_id: str) -> Callable[[], bool]:
        state = {"paused": False}

        def pause() -> None:
            w.host.container.pause()
            state["paused"] = True
        timer = threading.Timer(w.rng.uniform(0.0, 0.6), pause)
        timer.start()

        def undo() -> bool:
            timer.cancel()
            timer.join()
            if state["paused"]:
                w.host.container.unpause()
            return state["paused"]
        return undo
    return arm


def arm_records_full(w: World, logs_size: int) -> Callable[[str], Callable[[], bool]]:
    def arm(run_id: str) -> Callable[[], bool]:
        size = w.rng.randint(4096, max(8192, logs_size - 4096))
        folder = f"{HOME}/.opskit/records"
        w.sh(f"umask 077; mkdir -p {folder}")
        w.sh(f"mount -t tmpfs -o size={size},uid={w.uid},gid={w.uid},mode=700 tmpfs {folder}", user="root")

        def undo() -> bool:
            code, out = w.sh(f"df -B1 --output=avail {folder} | tail -1", user="root")
            w.sh(f"umount -l {folder}", user="root")
            return out.strip() == "0" or int(out.strip() or 1) < logs_size
        return undo
    return arm


def arm_change_after_hash(w: World) -> Callable[[str], Callable[[], bool]]:
    from opskit.jobs import hostfs

    def arm(run_id: str) -> Callable[[], bool]:
        original, state = hostfs.hash_files, {"fired": False}

        def hashed_then_changed(transport: Any, run_dir: str, paths: Any, per_file_s: float) -> Any:
            out = original(transport, run_dir, paths, per_file_s)
            if run_dir.endswith(f"/runs/{run_id}") and paths and not state["fired"]:
                victim = w.rng.choice(sorted(paths))
                w.host.exec(["sh", "-c", 'printf changed >> "$1"', "sh", f"{run_dir}/{victim}"], user="opskit")
                state["fired"] = True
            return out
        hostfs.hash_files = hashed_then_changed

        def undo() -> bool:
            hostfs.hash_files = original
            return state["fired"]
        return undo
    return arm


def arm_nothing(run_id: str) -> Callable[[], bool]:
    return lambda: True


def run_one(w: World, fault: str, c: Counts) -> None:
    """One trial of ``fault``."""
    rng = w.rng
    if fault == "ssh_killed_collect":
        files = _random_files(w, rng.randint(2, 6))
        collect_trial(w, c, fault, files=files, arm=arm_proxy(w, w.proxy.kill_all, sum(map(len, files.values())) + 30000))
    elif fault == "sshd_stopped":
        files = _random_files(w, rng.randint(2, 6))
        collect_trial(w, c, fault, files=files,
                      arm=arm_proxy(w, w.proxy.stop_listening, sum(map(len, files.values())) + 30000))
    elif fault == "host_frozen":
        collect_trial(w, c, fault, files=_random_files(w, rng.randint(4, 8)), arm=arm_pause(w))
    elif fault == "host_disk_full_results":
        size = rng.randint(64 << 10, 1 << 20)
        collect_trial(w, c, fault, script=f"head -c {size} /dev/urandom | base64; echo ok > /out/summary.txt",
                      arm=arm_records_full(w, size * 4 // 3))
    elif fault == "files_changed_after_hashing":
        collect_trial(w, c, fault, arm=arm_change_after_hash(w))
    elif fault == "planted_symlinks":
        names = ["logs.txt.tmp", "logs.txt", ".opskit/manifest.sha256.tmp", "manifest.json", "job.json",
                 "results", "ckpt/best.pt", ".partial"]
        targets = [f"{HOME}/.ssh/authorized_keys", f"{HOME}/.profile", f"{HOME}/.bashrc", f"{HOME}/.ssh", "/etc/passwd"]
        links = {n: rng.choice(targets) for n in rng.sample(names, rng.randint(2, len(names)))}
        files = {k: v for k, v in _random_files(w, 3).items() if not any(k.startswith(n + "/") for n in links)}
        collect_trial(w, c, fault, files=files, links=links, fifos=["queue"] if rng.random() < 0.5 else [],
                      arm=arm_nothing)
    elif fault == "odd_names":
        odd = rng.sample(ODD, rng.randint(3, len(ODD)))
        files = {**_random_files(w, 2), **{n: rng.randbytes(rng.randint(1, 5000)) for n in odd}}
        collect_trial(w, c, fault, files=files, arm=arm_nothing)
    elif fault == "hostile_terminal_output":
        hostile_output_trial(w, c)
    elif fault in ("unknown_host_key", "changed_host_key"):
        host_key_trial(w, c, fault)
    elif fault in ("ssh_killed_upload", "ssh_killed_load", "truncated_archive", "host_disk_full_load"):
        from opskit.testing.faultship import ship_trial

        ship_trial(w, c, fault)
    elif fault in ("container_oom", "container_killed", "ssh_killed_follow"):
        from opskit.testing.faultship import container_trial

        container_trial(w, c, fault)
    else:
        raise ValueError(f"unknown fault {fault!r}")


def hostile_output_trial(w: World, c: Counts) -> None:
    from opskit.cli.render import safe_text
    from opskit.jobs import runner

    lines = w.rng.sample(HOSTILE_OUT, w.rng.randint(2, len(HOSTILE_OUT)))
    script = "printf '%s\\n' " + " ".join("'" + ln.replace("'", "'\\''") + "'" for ln in lines)
    run_id = w.next_id("hostile-out")
    before = w.sentinels()
    _start(w, run_id, script)
    _wait(w, run_id)
    shown: list[str] = []
    with _transport(w) as t, contextlib.suppress(runner.Detached):
        runner.follow(t, run_id, lambda ev: shown.append(safe_text(getattr(ev, "line", ""))))
    c.injections += 1
    if any(ch in s for s in shown for ch in ("\x1b", "\r", "\x07")):
        c.injected_commands_executed += 1
        c.notes.append(f"{run_id}: a control character reached the terminal")
    res = _collect(w, run_id, remove=True)
    saved = (w.work / "runs" / run_id / "logs.txt").read_bytes().decode(errors="replace")  # \r kept
    if not res.logs or not all(ln in saved for ln in lines):
        c.results_lost += 1
        c.notes.append(f"{run_id}: the container's output was not saved as written")
    _judge(w, c, run_id, {}, before, 0, True)
    _cleanup(w, run_id)


def host_key_trial(w: World, c: Counts, fault: str) -> None:
    from opskit.errors import HostKeyError
    from opskit.testing.faultworld import write_known_hosts

    kh = w.work / f"kh-{fault}-{w.seq}"
    w.seq += 1
    if fault == "unknown_host_key":
        kh.write_text("" if w.rng.random() < 0.5 else f"[127.0.0.1]:{w.proxy.port + 1} {w.host.host_keys[0]}\n")
    else:
        write_known_hosts(kh, w.proxy.port, [_random_public_key(w.rng.choice(["ed25519", "ecdsa"]))])
    c.injections += 1
    try:
        with _transport(w, known_hosts=(str(kh),)) as t:
            t.run(["true"])
        c.host_keys_accepted_wrongly += 1
        c.notes.append(f"{fault}: connected with a key that is not pinned")
    except HostKeyError:
        pass
    except Exception as exc:  # noqa: BLE001 - refused, but not as a host-key error
        c.notes.append(f"{fault}: refused with {type(exc).__name__}: {exc}")


def _random_public_key(kind: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    key = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else ec.generate_private_key(ec.SECP256R1())
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


FAULTS = ("ssh_killed_upload", "ssh_killed_load", "ssh_killed_follow", "ssh_killed_collect", "sshd_stopped",
          "host_frozen", "host_disk_full_load", "host_disk_full_results", "local_disk_full_collect",
          "container_oom", "container_killed", "files_changed_after_hashing", "truncated_archive",
          "planted_symlinks", "odd_names", "hostile_terminal_output", "unknown_host_key", "changed_host_key")


def run_suite(w: World, per_fault: int, faults: tuple[str, ...] = FAULTS,
              progress: Callable[[str, Counts], None] | None = None) -> dict[str, Counts]:
    """Each fault until it fired ``per_fault`` times (at most 3x as many trials)."""
    out: dict[str, Counts] = {}
    for fault in faults:
        c = out.setdefault(fault, Counts())
        if fault == "local_disk_full_collect":
            from opskit.testing.faultship import local_disk_trials

            local_disk_trials(w, c, per_fault)
        else:
            tries = 0
            while c.injections < per_fault and tries < 3 * per_fault:
                tries += 1
                try:
                    run_one(w, fault, c)
                except Exception as exc:  # noqa: BLE001 - the suite itself went wrong: say so
                    c.notes.append(f"trial error: {type(exc).__name__}: {exc}")
        if progress:
            progress(fault, c)
    return out
