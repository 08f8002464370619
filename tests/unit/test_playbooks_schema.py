"""Playbook files -> plays and steps: every error names file, line and key (issue 14)."""

from __future__ import annotations

import pytest

from opskit.errors import ConfigError
from opskit.playbooks import expr
from opskit.playbooks.schema import load_playbook


def write(tmp_path, text, name="play.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def error(tmp_path, text) -> str:
    with pytest.raises(ConfigError) as info:
        load_playbook(write(tmp_path, text))
    return f"{info.value.message} | {info.value.hint}"


def test_a_good_playbook_loads_with_its_steps(tmp_path):
    plays = load_playbook(write(tmp_path, """
- name: fleet
  hosts: "@gpus"
  serial: 2
  max_fail_percentage: 25
  vars: {limit: 90}
  steps:
    - name: disk
      assert: {that: ["disk_max_percent < limit"]}
    - command: [nvidia-smi, -L]
      when: gpu_count > 0
      register: smi
      serial: 1
    - debug: "{{ smi.rc }}"
"""))
    (play,) = plays
    assert play.hosts == ["@gpus"] and play.serial == 2 and play.max_fail_percentage == 25
    assert [s.action for s in play.steps] == ["assert", "command", "debug"]
    assert play.steps[1].args == {"argv": ["nvidia-smi", "-L"]} and play.steps[1].serial == 1
    assert play.steps[1].where.endswith("play.yaml:10")


def test_unknown_step_key_names_file_line_and_key(tmp_path):
    msg = error(tmp_path, "- hosts: a\n  steps:\n    - name: x\n      command: [ls]\n      whne: true\n")
    assert "play.yaml:5" in msg and "'whne'" in msg and "did you mean 'when'" in msg


def test_unknown_step_type_is_refused_with_the_known_ones(tmp_path):
    msg = error(tmp_path, "- hosts: a\n  steps:\n    - name: x\n      rsync: {src: a}\n")
    assert "play.yaml:4" in msg and "'rsync'" in msg and "command" in msg


def test_unknown_play_key_and_duplicate_key(tmp_path):
    assert "play.yaml:2" in error(tmp_path, "- hosts: a\n  forks: 3\n  steps: [{command: [ls]}]\n")
    msg = error(tmp_path, "- hosts: a\n  hosts: b\n  steps: [{command: [ls]}]\n")
    assert "play.yaml:2" in msg and "twice" in msg and "line 1" in msg


def test_when_on_an_unknown_fact_is_refused_before_running(tmp_path):
    msg = error(tmp_path, "- hosts: a\n  steps:\n    - command: [ls]\n      when: gpu_cont > 0\n")
    assert "play.yaml:3" in msg and "'gpu_cont'" in msg and "gpu_count" in msg


def test_a_command_string_needs_shell_said_explicitly(tmp_path):
    msg = error(tmp_path, "- hosts: a\n  steps:\n    - command: rm -rf /tmp/x\n")
    assert "play.yaml:3" in msg and "shell" in msg and "argv list" in msg


def test_a_truth_value_in_argv_is_refused(tmp_path):
    msg = error(tmp_path, "- hosts: a\n  steps:\n    - command: [true]\n")
    assert "play.yaml:3" in msg and "quote it" in msg


def test_modes_must_be_quoted(tmp_path):
    msg = error(tmp_path, "- hosts: a\n  steps:\n    - chmod: {mode: 644, path: x}\n")
    assert "quotes" in msg and "play.yaml:3" in msg


def test_bad_yaml_and_missing_steps(tmp_path):
    assert "play.yaml:3: not valid YAML" in error(tmp_path, "- hosts: a\n  steps: [\n")
    assert "steps" in error(tmp_path, "- hosts: a\n")
    assert "serial" in error(tmp_path, "- hosts: a\n  serial: 0\n  steps: [{command: [ls]}]\n")


def test_include_of_steps_and_of_a_loop(tmp_path):
    write(tmp_path, "- command: [echo, '{{ who }}']\n", "common.yaml")
    plays = load_playbook(write(tmp_path, """
- hosts: a
  steps:
    - include: common.yaml
      vars: {who: me}
      when: gpu_count == 0
"""))
    step = plays[0].steps[0]
    assert step.action == "command" and step.vars == {"who": "me"} and step.when == "gpu_count == 0"
    write(tmp_path, "- include: loop.yaml\n", "loop.yaml")
    msg = error(tmp_path, "- hosts: a\n  steps:\n    - include: loop.yaml\n")
    assert "includes itself" in msg


def test_registered_names_are_known_only_after_the_step(tmp_path):
    msg = error(tmp_path, "- hosts: a\n  steps:\n    - debug: '{{ r.rc }}'\n    - command: [ls]\n      register: r\n")
    assert "'r'" in msg
    load_playbook(write(tmp_path, "- hosts: a\n  steps:\n    - command: [ls]\n      register: r\n"
                        "      changed_when: result.rc != 0\n    - debug: '{{ r.rc }}'\n"))


# -- the expression evaluator -----------------------------------------------------------------
def test_expressions_over_facts_and_versions():
    scope = {"gpu_count": 2, "cuda_version": "12.4", "gpus": [{"memory_free": 30000}], "x": None}
    assert expr.evaluate("gpu_count >= 1 and version(cuda_version) >= version('12.1')", scope)
    assert expr.evaluate("version(cuda_version) < '12.10'", scope) is True
    assert expr.evaluate("gpus[0].memory_free // 1024 if gpus else 0", scope) == 29
    assert expr.evaluate("x is None and 'a' in ['a']", scope) is True
    assert expr.evaluate("version('12.10') > version('12.9')", {})
    assert expr.render("n={{ gpu_count + 1 }}", scope) == "n=3"
    assert expr.render("{{ gpus }}", scope) == [{"memory_free": 30000}]


@pytest.mark.parametrize("text", [
    "__import__('os')", "x.__class__", "open('/etc/passwd')", "(lambda: 1)()",
    "[a for a in b]", "'a' * 1000000000", "gpu_count ** 99999",
])
def test_unsafe_expressions_are_refused(text):
    with pytest.raises(expr.ExprError):
        expr.evaluate(text, {"gpu_count": 1, "x": {}, "b": []})


def test_unknown_names_suggest_the_close_ones():
    with pytest.raises(expr.ExprError, match="did you mean gpu_count"):
        expr.evaluate("gpu_cnt > 1", {"gpu_count": 1})


def test_the_shipped_playbooks_check_out():
    from pathlib import Path

    books = sorted((Path(__file__).resolve().parents[2] / "playbooks").glob("*.yaml"))
    assert {b.name for b in books} >= {"fleet-check.yaml", "prepare-hosts.yaml", "cleanup.yaml",
                                     "train-sweep.yaml"}
    for book in books:
        assert load_playbook(book)[0].steps


def test_prune_reads_docker_image_ls_rows():
    from opskit.playbooks.prune import old_images, parse_created

    rows = "\n".join([
        '{"Repository":"opskit-deps","Tag":"ab12","ID":"sha256:1","CreatedAt":"2026-10-01 10:00:00 +0000 UTC","Size":"879MB"}',
        '{"Repository":"opskit-deps","Tag":"cd34","ID":"sha256:2","CreatedAt":"2026-11-29 10:00:00 +0000 UTC","Size":"879MB"}',
        '{"Repository":"postgres","Tag":"16","ID":"sha256:3","CreatedAt":"2026-01-01 10:00:00 +0000 UTC","Size":"400MB"}',
    ])
    cutoff = parse_created("2026-11-01 00:00:00 +0000 UTC")
    assert [i["ref"] for i in old_images(rows, ["opskit-deps:*"], cutoff)] == ["opskit-deps:ab12"]
    assert parse_created("2026-11-01 00:00:00 +0100 CET") == cutoff - 3600


def test_a_playbook_includes_another_playbooks_plays(tmp_path):
    write(tmp_path, "- name: inner\n  hosts: b\n  steps: [{command: [ls]}]\n", "inner.yaml")
    plays = load_playbook(write(tmp_path, "- include: inner.yaml\n- name: outer\n  steps: [{debug: hi}]\n"))
    assert [p.name for p in plays] == ["inner", "outer"] and plays[0].hosts == ["b"]
    msg = error(tmp_path, "- include: nothere.yaml\n")
    assert "play.yaml:1" in msg and "nothere.yaml" in msg


@pytest.mark.parametrize("action, args, ok", [
    ("ship", {"images": ["a:1", "b:2"]}, True),
    ("ship", {"image": "a:1"}, True),
    ("ship", {"images": "{{ wanted }}"}, True),
    ("ship", {"images": "a:1"}, False),
    ("ship", {"images": ["a:1", ""]}, False),
    ("ship", {"images": [1]}, False),
    ("prune", {"images": ["opskit-deps:*"], "older_than_days": 14}, True),
    ("prune", {"images": "{{ patterns }}", "older_than_days": 14}, True),
    ("prune", {"images": "opskit-deps:*", "older_than_days": 14}, False),
    ("prune", {"images": ["x", None], "older_than_days": 14}, False),
])
def test_image_lists_are_names_or_a_template(action, args, ok):
    from opskit.playbooks.actions import ACTIONS

    check = ACTIONS[action].check
    if ok:
        want = {**args, "run_folders": False} if action == "prune" else args
        assert check(args, "play.yaml:3") == want
    else:
        with pytest.raises(ConfigError, match="play.yaml:3: " + action):
            check(args, "play.yaml:3")
