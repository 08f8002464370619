"""The play engine's semantics on local stand-in hosts (this machine's commands and files
under several host names): serial per play and per step, max_fail_percentage,
any_errors_fatal, unreachable hosts, check mode, idempotency, loops/register/when, the
record folder and Ctrl-C. The same engine runs against real sshd hosts in
tests/integration/test_play.py.
"""

from __future__ import annotations

import json

import pytest

from opskit.errors import HostError
from opskit.hosts.local import LocalTransport
from opskit.hosts.spec import HostSpec
from opskit.playbooks import events as pe
from opskit.playbooks.engine import PlaybookRun, PlayOptions, any_failed, batches
from opskit.playbooks.record import PlayRecord, rotate
from opskit.playbooks.schema import load_playbook


class Flaky(LocalTransport):
    """This machine as host NAME; commands fail as a lost connection after ``lose_after``
    commands, or raise ``interrupt`` (Ctrl-C) when the argv says ``ctrl-c``."""

    def __init__(self, name, lose_after=None):
        super().__init__(name)
        self.lose_after = lose_after
        self.count = 0

    def run(self, argv, **kw):
        self.count += 1
        if self.lose_after is not None and self.count > self.lose_after:
            raise HostError(self.host, "connection lost (the host stopped answering)")
        if "ctrl-c" in argv:
            raise KeyboardInterrupt
        return super().run(argv, **kw)


def run_play(tmp_path, text, hosts=("h1", "h2", "h3"), check=False, transports=None, forks=8):
    path = tmp_path / "play.yaml"
    path.write_text(text)
    plays = load_playbook(path)
    specs = [HostSpec(name=h, local=True) for h in hosts]
    transports = transports or {}
    got: list = []
    opts = PlayOptions(check=check, forks=forks, base_dir=tmp_path,
                       connect=lambda s: transports.get(s.name) or LocalTransport(s.name))
    recap = PlaybookRun(opts, got.append).run([(p, specs) for p in plays])
    return recap, got


def steps_on(events, step, ordered=False):
    """(host, status) of a step; sorted by host unless ``ordered`` (hosts in parallel finish
    in any order; a step with serial: 1 runs them in turn)."""
    got = [(e.host, e.status) for e in events if isinstance(e, pe.HostStep) and e.step == step]
    return got if ordered else sorted(got)


FAIL_ON_H2 = "[sh, -c, 'test \"$0\" != h2', '{{ host }}']"


def test_step_serial_drains_one_host_at_a_time_and_stops_at_the_first_failure(tmp_path):
    recap, events = run_play(tmp_path, f"""
- hosts: all
  max_fail_percentage: 0
  steps:
    - name: before
      command: ['true']
    - name: drain
      serial: 1
      command: {FAIL_ON_H2}
    - name: after
      command: ['true']
""")
    assert steps_on(events, "before") == [("h1", "changed"), ("h2", "changed"), ("h3", "changed")]
    assert steps_on(events, "drain", ordered=True) == [("h1", "changed"), ("h2", "failed")]  # h3 never drained
    assert steps_on(events, "after") == []
    (aborted,) = [e for e in events if isinstance(e, pe.PlayAborted)]
    assert "max_fail_percentage 0" in aborted.reason and aborted.hosts_not_run == ["h1", "h3"]
    assert recap["h2"]["failed"] == 1 and recap["h3"] == {**recap["h3"], "ok": 1, "failed": 0}
    assert any_failed(recap)


def test_play_serial_batches_and_max_fail_percentage(tmp_path):
    text = f"""
- hosts: all
  serial: 2
  max_fail_percentage: PCT
  steps:
    - name: one
      command: {FAIL_ON_H2}
    - name: two
      command: ['true']
"""
    recap, events = run_play(tmp_path, text.replace("PCT", "40"), hosts=("h1", "h2", "h3", "h4"))
    assert steps_on(events, "one") == [("h1", "changed"), ("h2", "failed")]  # 1 of 2 > 40%
    assert "h3" not in recap or recap["h3"]["ok"] == 0
    recap, events = run_play(tmp_path, text.replace("PCT", "50"), hosts=("h1", "h2", "h3", "h4"))
    assert [h for h, _ in steps_on(events, "two")] == ["h1", "h3", "h4"]  # 50% is not more than 50%


def test_any_errors_fatal_ends_the_play_after_the_step(tmp_path):
    recap, events = run_play(tmp_path, f"""
- hosts: all
  any_errors_fatal: true
  steps:
    - name: one
      command: {FAIL_ON_H2}
    - name: two
      command: ['true']
""")
    assert sorted(steps_on(events, "one")) == [("h1", "changed"), ("h2", "failed"), ("h3", "changed")]
    assert steps_on(events, "two") == []


def test_an_unreachable_host_mid_play_is_recorded_and_the_others_go_on(tmp_path):
    recap, events = run_play(tmp_path, """
- hosts: all
  steps:
    - {name: one, command: ['true']}
    - {name: two, command: ['true']}
    - {name: three, command: ['true']}
""", transports={"h2": Flaky("h2", lose_after=1)})
    assert steps_on(events, "two") == [("h1", "changed"), ("h2", "unreachable"), ("h3", "changed")]
    assert [h for h, _ in steps_on(events, "three")] == ["h1", "h3"]
    assert recap["h2"]["unreachable"] == 1 and recap["h1"]["changed"] == 3
    (msg,) = [e.message for e in events if isinstance(e, pe.HostStep) and e.status == "unreachable"]
    assert "stopped answering" in msg


def test_check_changes_nothing_and_second_run_reports_no_changes(tmp_path):
    (tmp_path / "app.conf").write_text("x = 1\n")
    text = """
- hosts: all
  steps:
    - name: folder
      command: {argv: [mkdir, -p, "{{ dest }}/{{ host }}"], creates: "{{ dest }}/{{ host }}"}
    - name: copy
      copy: {src: app.conf, dest: "{{ dest }}/{{ host }}/app.conf"}
    - name: mode
      chmod: {mode: "u=rw,go=", path: "{{ dest }}/{{ host }}/app.conf"}
    - name: back
      fetch: {src: "{{ dest }}/{{ host }}/app.conf", dest: "fetched/{{ host }}.conf"}
""".replace("{{ dest }}", str(tmp_path / "hosts"))
    recap, events = run_play(tmp_path, text, check=True)
    assert not (tmp_path / "hosts").exists() and not (tmp_path / "fetched").exists()
    # every step would change something; chmod and fetch say their path is not there yet
    assert all(c["changed"] == 4 and c["failed"] == 0 for c in recap.values())
    would = [e.message for e in events if isinstance(e, pe.HostStep) and e.step == "copy"]
    assert all(m.startswith("would copy") for m in would)
    # the folder is made by the step before, so check mode says the copy depends on it
    assert all("is not there yet: an earlier step must make it" in m for m in would)
    recap, _ = run_play(tmp_path, text)
    assert all(c == {**c, "changed": 4, "failed": 0} for c in recap.values())
    for h in ("h1", "h2", "h3"):
        conf = tmp_path / "hosts" / h / "app.conf"
        assert conf.read_text() == "x = 1\n" and oct(conf.stat().st_mode & 0o777) == "0o600"
        assert (tmp_path / "fetched" / f"{h}.conf").read_text() == "x = 1\n"
    recap, events = run_play(tmp_path, text)
    assert all(c == {**c, "ok": 4, "changed": 0} for c in recap.values()), events
    recap, _ = run_play(tmp_path, text, check=True)
    assert all(c["changed"] == 0 for c in recap.values())


def test_loop_register_when_and_changed_when(tmp_path):
    recap, events = run_play(tmp_path, """
- hosts: all
  vars: {words: [a, b, c]}
  steps:
    - name: echo
      command: [echo, "{{ item }}-{{ host }}"]
      loop: "{{ words }}"
      register: out
      changed_when: false
    - name: count
      assert:
        that: ["len(out.results) == 3", "out.results[2].stdout == 'c-' + host + '\\\\n'"]
    - name: only h1
      command: ['true']
      when: host == 'h1'
    - name: ignored
      command: ['false']
      ignore_errors: true
    - name: still runs
      command: ['true']
""")
    assert steps_on(events, "echo") == [("h1", "ok"), ("h2", "ok"), ("h3", "ok")]
    assert steps_on(events, "count") == [("h1", "ok"), ("h2", "ok"), ("h3", "ok")]
    assert dict(steps_on(events, "only h1")) == {"h1": "changed", "h2": "skipped", "h3": "skipped"}
    assert len(steps_on(events, "still runs")) == 3
    assert recap["h2"] == {"ok": 3, "changed": 1, "failed": 0, "skipped": 1, "unreachable": 0,
                           "ignored": 1}
    assert not any_failed(recap)


def test_when_reads_gpu_facts_gathered_once(tmp_path):
    from opskit.testing.fakehost import FakeEngine, fake_gpu_host

    gpu = fake_gpu_host("gpu1", FakeEngine(), home=tmp_path, gpus=2)
    none = fake_gpu_host("cpu1", FakeEngine(), home=tmp_path, gpus=0)
    recap, events = run_play(tmp_path, """
- hosts: all
  steps:
    - name: train
      debug: "{{ gpu_count }} GPUs, {{ gpu_free_mib }} MiB free"
      when: gpu_count >= 2 and version(driver_version) >= version('450')
    - name: store
      assert: {that: ["image_store in ['legacy', 'containerd', None]"]}
""", hosts=("gpu1", "cpu1"), transports={"gpu1": gpu, "cpu1": none})
    train = {e.host: e for e in events if isinstance(e, pe.HostStep) and e.step == "train"}
    assert train["gpu1"].status == "ok" and train["gpu1"].message.startswith("2 GPUs")
    assert train["cpu1"].status == "skipped"
    assert recap["gpu1"]["failed"] == 0 and recap["cpu1"]["failed"] == 0


def test_a_when_that_cannot_be_evaluated_fails_that_host_only(tmp_path):
    recap, events = run_play(tmp_path, """
- hosts: all
  vars: {limits: {h1: 1}}
  steps:
    - name: limit
      command: ['true']
      when: limits[host] > 0
""")
    got = dict(steps_on(events, "limit"))
    assert got["h1"] == "changed" and got["h2"] == "failed"
    assert "no key 'h2'" in [e.message for e in events if getattr(e, "host", "") == "h2"][0]


def test_ctrl_c_leaves_which_steps_ran_where(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_play(tmp_path, """
- hosts: all
  steps:
    - {name: first, command: ['true']}
    - {name: stop, command: [echo, ctrl-c]}
""", hosts=("h1",), transports={"h1": Flaky("h1")})
    # the events went to the emit function as they happened; re-run with a list to read them
    got: list = []
    path = tmp_path / "play.yaml"
    plays = load_playbook(path)
    opts = PlayOptions(base_dir=tmp_path, connect=lambda s: Flaky(s.name))
    with pytest.raises(KeyboardInterrupt):
        PlaybookRun(opts, got.append).run([(plays[0], [HostSpec(name="h1", local=True)])])
    (stop,) = [e for e in got if isinstance(e, pe.Interrupted)]
    assert stop.step == "stop" and stop.done == {"h1": ["first: changed"]}


def test_record_folder_holds_events_and_recap_and_rotates(tmp_path):
    root = tmp_path / "plays"
    for _ in range(4):
        rec = PlayRecord.start(tmp_path / "x.yaml", root=str(root), keep=3)
        rec.write(pe.HostStep("h1", "s", "ok", "fine", 0.1))
        rec.write_recap(pe.Recap({"h1": {"ok": 1}}, False, False).to_dict())
        rec.close()
    folders = sorted(root.iterdir())
    assert len(folders) == 3
    lines = (folders[-1] / "events.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["event"] == "host_step"
    assert json.loads((folders[-1] / "recap.json").read_text())["hosts"] == {"h1": {"ok": 1}}
    (root / "mine").mkdir()
    rotate(root, 0)
    assert [p.name for p in root.iterdir()] == ["mine"]  # only play-run folders are removed


def test_batches_like_ansible():
    assert batches(list(range(5)), 2) == [[0, 1], [2, 3], [4]]
    assert batches(list(range(8)), "25%") == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert batches(list(range(3)), "10%") == [[0], [1], [2]]
    assert batches(list(range(3)), None) == [[0, 1, 2]]


def test_hosts_share_a_list_by_host_index_among_the_hosts_still_in_the_play(tmp_path):
    recap, events = run_play(tmp_path, f"""
- hosts: all
  vars: {{sets: [a, b, c, d, e]}}
  steps:
    - name: free
      command: {FAIL_ON_H2}
    - name: share
      debug: "{{{{ item }}}}"
      loop: "{{{{ range(len(sets))[host_index::host_count] }}}}"
""")
    share = {e.host: e.message for e in events if isinstance(e, pe.HostStep) and e.step == "share"}
    assert share == {"h1": "0; 2; 4", "h3": "1; 3"}  # h2 failed before: the others share all


def test_df_ps_and_shell_steps_on_this_machine(tmp_path):
    recap, events = run_play(tmp_path, """
- hosts: all
  steps:
    - name: disks
      df: {warn: 100%}
      register: d
    - name: procs
      ps: {sort: pid, limit: 3}
      register: p
    - name: pipe
      shell: "echo one two | wc -w"
      register: s
      changed_when: false
    - assert:
        that: ["len(d.filesystems) >= 1", "len(p.processes) == 3", "strip(s.stdout) == '2'"]
    - name: full
      df: {warn: 0%}
""", hosts=("h1",))
    got = dict(steps_on(events, "disks") + steps_on(events, "procs") + steps_on(events, "pipe"))
    assert got == {"h1": "ok"} and recap["h1"]["ok"] == 4
    (full,) = [e for e in events if isinstance(e, pe.HostStep) and e.step == "full"]
    assert full.status == "failed" and full.message.startswith("over 0%")


def test_a_group_action_gets_the_hosts_with_the_same_args_in_one_call(tmp_path, monkeypatch):
    from opskit.playbooks import actions
    from opskit.playbooks.actionbase import Action, Outcome

    calls: list = []

    def group(members):
        calls.append(sorted((c.host, a["n"]) for c, a in members))
        return [Outcome("changed", f"{c.host} got {a['n']}") if c.host != "h3" else
                HostError(c.host, "connection lost") for c, a in members]

    monkeypatch.setitem(actions.ACTIONS, "probe", Action(
        "probe", lambda a, w: a, lambda c, a: group([(c, a)])[0], "test", group=group))
    recap, events = run_play(tmp_path, """
- hosts: all
  vars: {n: {h1: 1, h2: 1, h3: 1, h4: 2}}
  steps:
    - name: p
      probe: {n: "{{ n[host] }}"}
      when: host != 'h5'
""", hosts=("h1", "h2", "h3", "h4", "h5"))
    assert sorted(calls) == [[("h1", 1), ("h2", 1), ("h3", 1)], [("h4", 2)]]
    assert dict(steps_on(events, "p")) == {"h1": "changed", "h2": "changed", "h3": "unreachable",
                                          "h4": "changed", "h5": "skipped"}
    assert recap["h3"]["unreachable"] == 1


def test_a_loop_says_each_items_message_once():
    from opskit.playbooks.engine import _loop_message

    assert _loop_message([]) == "all items skipped"
    assert _loop_message(["no local image 'x'", "no local image 'x'", "ran r2"]) == \
        "no local image 'x' (2 items); ran r2"
