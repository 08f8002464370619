"""``opskit play`` against real OpenSSH hosts (opskit.testing.sshd): the five-step play of
the bench (facts, copy, chmod, command, fetch) in check mode, real mode and a second run
with no changes, checked inside the containers; an unreachable host beside good ones; a
Fabric task over opskit's own connection, refused for a host whose key is not known."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

HOME = "/home/opskit"

FIVE_STEPS = """
- name: five steps
  hosts: "@testbed"
  steps:
    - name: facts
      facts:
    - name: copy
      copy: {src: payload.txt, dest: "DIR/payload.txt"}
    - name: chmod
      chmod: {mode: "0640", path: "DIR/payload.txt"}
    - name: command
      command: {argv: [sh, -c, 'sha256sum payload.txt > sum.txt', "{{ host }}"], creates: DIR/sum.txt}
    - name: fetch
      fetch: {src: "DIR/sum.txt", dest: "fetched/{{ host }}.sum"}
"""


def opskit(bed, *args: str, cwd=None, extra_env=None) -> subprocess.CompletedProcess:
    env = {**os.environ, **bed.env(), **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "opskit", *args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=cwd)


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def recap(stdout: str) -> dict:
    return [e for e in events(stdout) if e["event"] == "recap"][-1]["hosts"]


@pytest.fixture
def book(tmp_path, ssh_testbed):
    name = f"play-{secrets.token_hex(4)}"
    (tmp_path / "payload.txt").write_text("weights v1\n")
    path = tmp_path / "five.yaml"
    # the command runs in the login folder: cd there through sh's own argument
    path.write_text(FIVE_STEPS.replace("DIR", name).replace(
        "'sha256sum payload.txt > sum.txt'", f"'cd {name} && sha256sum payload.txt > sum.txt'"))
    for h in ssh_testbed.hosts:
        h.exec(["mkdir", "-p", f"{HOME}/{name}"], user="opskit")
    yield path, name
    for h in ssh_testbed.hosts:
        h.exec(["rm", "-rf", f"{HOME}/{name}"])


def test_five_step_play_check_real_and_second_run(ssh_testbed, book, tmp_path):
    path, name = book
    env = {"OPSKIT_PLAYS_DIR": str(tmp_path / "plays")}
    res = opskit(ssh_testbed, "play", str(path), "--check", "--json", cwd=tmp_path, extra_env=env)
    assert res.returncode == 0, res.stderr
    for h in ssh_testbed.hosts:  # nothing changed on any host
        code, out = h.exec(["ls", f"{HOME}/{name}"], user="opskit")
        assert out.strip() == ""
    would = [e["message"] for e in events(res.stdout) if e["event"] == "host_step" and e["step"] == "copy"]
    assert len(would) == 2 and all(m.startswith("would copy") for m in would)

    res = opskit(ssh_testbed, "play", str(path), "--yes", "--json", cwd=tmp_path, extra_env=env)
    assert res.returncode == 0, res.stderr
    assert all(c["changed"] == 4 and c["failed"] == 0 for c in recap(res.stdout).values())
    for h in ssh_testbed.hosts:
        code, out = h.exec(["stat", "-c", "%a", f"{HOME}/{name}/payload.txt"], user="opskit")
        assert out.strip() == "640"
        code, out = h.exec(["cat", f"{HOME}/{name}/sum.txt"], user="opskit")
        assert (tmp_path / "fetched" / f"{h.name}.sum").read_text() == out
    facts = [e for e in events(res.stdout) if e["event"] == "host_step" and e["step"] == "facts"]
    assert all("0 GPU(s)" in e["message"] for e in facts)

    res = opskit(ssh_testbed, "play", str(path), "--json", cwd=tmp_path, extra_env=env)
    assert res.returncode == 0, res.stderr  # nothing to change: no plan, no question
    assert all(c["changed"] == 0 and c["ok"] == 5 for c in recap(res.stdout).values())
    assert len(list((tmp_path / "plays").iterdir())) == 3  # the real runs, each with its folder


def test_an_unreachable_host_is_recorded_and_the_others_go_on(ssh_testbed, tmp_path):
    inv = json.loads(json.dumps(__import__("yaml").safe_load(ssh_testbed.inventory_path.read_text())))
    with socket_port() as port:  # a port nothing listens on
        gone = dict(inv["hosts"][ssh_testbed.names[0]], port=port)
    inv["hosts"]["gone"] = gone
    inv["groups"]["testbed"].append("gone")
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(__import__("yaml").safe_dump(inv))
    path = tmp_path / "p.yaml"
    path.write_text("- hosts: '@testbed'\n  steps:\n    - command: [uname, -s]\n    - command: [id, -u]\n")
    res = opskit(ssh_testbed, "play", str(path), "--yes", "--json", "--inventory", str(inventory),
                 cwd=tmp_path, extra_env={"OPSKIT_PLAYS_DIR": str(tmp_path / "plays")})
    assert res.returncode == 1
    r = recap(res.stdout)
    assert r["gone"]["unreachable"] == 1 and r["gone"]["ok"] == 0
    assert all(r[n]["changed"] == 2 for n in ssh_testbed.names)
    (folder,) = (tmp_path / "plays").iterdir()
    log = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    (miss,) = [e for e in log if e.get("host") == "gone" and e["event"] == "host_step"]
    assert miss["status"] == "unreachable" and "connection refused" in miss["message"]


class socket_port:
    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


FABFILE = '''
def hello(c, word="hi"):
    out = c.run("echo $0 " + word + "; hostname", hide=True).stdout.split()
    return {"changed": False, "said": out[1], "hostname": out[2]}
'''


def test_fabric_task_runs_over_opskits_connection_and_unknown_keys_are_refused(ssh_testbed, tmp_path):
    if os.environ.get("CI") != "true":  # under CI the dev extra installs Fabric: no skipping
        pytest.importorskip("fabric")
    (tmp_path / "fabfile.py").write_text(FABFILE)
    path = tmp_path / "p.yaml"
    path.write_text("- hosts: '@testbed'\n  steps:\n    - task: {function: 'fabfile:hello', args: {word: yo}}\n"
                    "      register: r\n    - assert: {that: [\"r.value.said == 'yo'\"]}\n")
    env = {"OPSKIT_PLAYS_DIR": str(tmp_path / "plays")}
    res = opskit(ssh_testbed, "play", str(path), "--yes", "--json", cwd=tmp_path, extra_env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert all(c["ok"] == 2 and c["changed"] == 0 for c in recap(res.stdout).values())
    # the same hosts with an empty known_hosts: opskit's policy refuses them, Fabric never logs in
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    inv = __import__("yaml").safe_load(ssh_testbed.inventory_path.read_text())
    for h in inv["hosts"].values():
        h["known_hosts"] = [str(empty)]
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(__import__("yaml").safe_dump(inv))
    cfg = tmp_path / "ssh_config"
    cfg.write_text(ssh_testbed.ssh_config_path.read_text().replace(str(ssh_testbed.known_hosts_path), str(empty)))
    res = opskit(ssh_testbed, "play", str(path), "--yes", "--json", "--inventory", str(inventory),
                 cwd=tmp_path, extra_env={**env, "OPSKIT_SSH_CONFIG": str(cfg),
                                          "OPSKIT_KNOWN_HOSTS": str(empty)})
    assert res.returncode == 1
    steps = [e for e in events(res.stdout) if e["event"] == "host_step"]
    assert steps and all(e["status"] == "unreachable" for e in steps)
    assert all("host key" in e["message"].lower() for e in steps), steps


def test_a_host_lost_mid_play_is_unreachable_and_the_others_finish(ssh_testbed, tmp_path):
    lost = ssh_testbed.names[0]
    path = tmp_path / "p.yaml"
    # on one host, step two ends every sshd session of the login user: our connection drops
    path.write_text(f"""
- hosts: '@testbed'
  steps:
    - {{name: one, command: [uname, -s]}}
    - name: two
      command: [sudo, pkill, -KILL, -f, 'sshd: opskit']
      when: host == '{lost}'
    - {{name: three, command: [id, -u]}}
""")
    res = opskit(ssh_testbed, "play", str(path), "--yes", "--json", cwd=tmp_path,
                 extra_env={"OPSKIT_PLAYS_DIR": str(tmp_path / "plays")})
    assert res.returncode == 1, res.stdout + res.stderr
    steps = {(e["host"], e["step"]): e for e in events(res.stdout) if e["event"] == "host_step"}
    assert steps[(lost, "two")]["status"] == "unreachable", steps[(lost, "two")]
    assert (lost, "three") not in steps
    others = [n for n in ssh_testbed.names if n != lost]
    assert all(steps[(n, "three")]["status"] == "changed" for n in others)
    r = recap(res.stdout)
    assert r[lost]["unreachable"] == 1 and all(r[n]["failed"] == 0 for n in others)
