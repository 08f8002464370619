"""The same five-step play with ``opskit play`` and with ``ansible-playbook`` (ansible-core,
forks=16, pipelining on: its fastest usual setting), over N real sshd hosts on 127.0.0.1.
Prints, never asserts (issue 14 section 3).

Steps: facts, copy a file, chmod it, run a command (``creates:``), fetch a file back.
Each tool runs the play on fresh hosts (first run: everything changes) and again (second
run: nothing changes), in turns, ``--repeat`` times; the figures are medians. Client CPU is
the tool's process and everything it started (ssh clients too): RUSAGE_CHILDREN.
Goal: opskit's wall time <= 0.3x Ansible's.

Usage: python bench/play.py [--hosts 16] [--repeat 3]   (needs ansible-core: pip install 'opskit[bench]')
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORK = "benchplay"

OPSKIT_PLAY = f"""
- name: five steps
  hosts: "@testbed"
  steps:
    - name: facts
      facts:
    - name: copy
      copy: {{src: payload.bin, dest: {WORK}/payload.bin}}
    - name: chmod
      chmod: {{mode: "0640", path: {WORK}/payload.bin}}
    - name: command
      command: {{argv: [sh, -c, 'sha256sum {WORK}/payload.bin > {WORK}/sum.txt'], creates: {WORK}/sum.txt}}
    - name: fetch
      fetch: {{src: {WORK}/sum.txt, dest: "out-opskit/{{{{ host }}}}.sum"}}
"""

ANSIBLE_PLAY = f"""
- name: five steps
  hosts: testbed
  gather_facts: true
  tasks:
    - name: copy
      copy: {{src: payload.bin, dest: "{WORK}/payload.bin"}}
    - name: chmod
      file: {{path: "{WORK}/payload.bin", mode: "0640"}}
    - name: command
      command: {{cmd: "sh -c 'sha256sum {WORK}/payload.bin > {WORK}/sum.txt'", creates: "{WORK}/sum.txt"}}
    - name: fetch
      fetch: {{src: "{WORK}/sum.txt", dest: "out-ansible/{{{{ inventory_hostname }}}}.sum", flat: true}}
"""


def ansible_files(bed: Any, work: Path) -> None:
    lines = ["[testbed]"]
    for h in bed.hosts:
        lines.append(f"{h.name} ansible_host=127.0.0.1 ansible_port={h.port} ansible_user=opskit "
                     f"ansible_ssh_private_key_file={bed.key_path} "
                     "ansible_python_interpreter=/usr/bin/python3")
    (work / "inventory.ini").write_text("\n".join(lines) + "\n")
    (work / "ansible.cfg").write_text(
        "[defaults]\nforks = 16\nhost_key_checking = True\ninventory = inventory.ini\n"
        "stdout_callback = default\nretry_files_enabled = False\n"
        f"local_tmp = {work}/.ansible-tmp\n"
        "[ssh_connection]\npipelining = True\n"
        f"ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={bed.known_hosts_path}"
        " -o StrictHostKeyChecking=yes\n"
        f"control_path_dir = {work}/.cp\n")
    (work / "play.yml").write_text(ANSIBLE_PLAY)


def timed(argv: list[str], cwd: Path, env: dict) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    res = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if res.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return wall, cpu, res.stdout


def changed_opskit(out: str) -> int:
    recap = [json.loads(line) for line in out.splitlines() if '"recap"' in line][-1]
    return sum(c["changed"] for c in recap["hosts"].values())


def changed_ansible(out: str) -> int:
    return sum(int(part.split("=")[1]) for line in out.splitlines() if "changed=" in line
               for part in line.split() if part.startswith("changed="))


def reset(bed: Any, work: Path) -> None:
    for h in bed.hosts:
        h.exec(["rm", "-rf", f"/home/opskit/{WORK}"])
        h.exec(["mkdir", "-p", f"/home/opskit/{WORK}"], user="opskit")
    for d in ("out-opskit", "out-ansible"):
        shutil.rmtree(work / d, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    ansible = shutil.which("ansible-playbook") or str(Path(sys.executable).parent / "ansible-playbook")
    if not Path(ansible).exists():
        raise SystemExit("ansible-playbook not found: pip install 'opskit[bench]'")
    import docker

    from opskit.testing.engine import configure_testcontainers
    from opskit.testing.sshd import start_ssh_hosts

    configure_testcontainers()
    work = Path(tempfile.mkdtemp(prefix="opskit-bench-play-"))
    (work / "payload.bin").write_bytes(os.urandom(256 * 1024))
    (work / "play.yaml").write_text(OPSKIT_PLAY)
    with start_ssh_hosts(docker.from_env(), args.hosts, workdir=work / "bed") as bed:
        ansible_files(bed, work)
        env = {**os.environ, **bed.env(), "OPSKIT_PLAYS_DIR": str(work / "plays"),
               "ANSIBLE_CONFIG": str(work / "ansible.cfg"), "ANSIBLE_HOME": str(work / ".ansible")}
        runs = {
            "opskit": ([sys.executable, "-m", "opskit", "play", "play.yaml", "--yes", "--json",
                        "--forks", "16"], changed_opskit),
            "ansible": ([ansible, "play.yml"], changed_ansible),
        }
        rows: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
        for _ in range(args.repeat):
            for tool, (argv, changed) in runs.items():  # in turns: the machine's load falls on both
                reset(bed, work)
                for which in ("first", "second"):
                    wall, cpu, out = timed(argv, work, env)
                    rows.setdefault((tool, which), []).append((wall, cpu, changed(out)))
        report(rows, args.hosts, args.repeat)
    shutil.rmtree(work, ignore_errors=True)
    return 0


def report(rows: dict, n: int, repeat: int) -> None:
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v), v[-1][2])
           for k, v in rows.items()}
    print(f"five-step play (facts, copy 256 KiB, chmod, command, fetch) over {n} sshd hosts, "
          f"median of {repeat}")
    print(f"{'tool':<8} {'run':<7} {'wall s':>8} {'client CPU s':>13} {'CPU/host ms':>12} {'changed':>8}")
    for (tool, which), (wall, cpu, changed) in sorted(med.items()):
        print(f"{tool:<8} {which:<7} {wall:8.2f} {cpu:13.2f} {1000 * cpu / n:12.1f} {changed:8d}")
    for which in ("first", "second"):
        ratio = med[("opskit", which)][0] / med[("ansible", which)][0]
        print(f"{which} run: opskit/ansible wall = {ratio:.2f}x (goal <= 0.3x)")


if __name__ == "__main__":
    sys.exit(main())
