"""The job operations below the CLI (logs, cancel, collect) on the fake GPU host: what they
return and record, with the connection factory passed in (the CLI passes none: SSH/local)."""

from __future__ import annotations

import pytest

from opskit import events as ev
from opskit.errors import UsageError
from opskit.jobs import operations as ops
from tests.unit.test_runner import IMAGE, LOGS, OUTPUTS, Setup, docker_logs_cli  # noqa: F401


@pytest.fixture(autouse=True)
def inventory(tmp_path, monkeypatch) -> str:
    """gpu1 in an inventory of its own (names resolve without DNS; nothing connects)."""
    path = tmp_path / "hosts.yaml"
    path.write_text("hosts:\n  gpu1: {hostname: 127.0.0.1}\n")
    (tmp_path / "ssh_config").write_text("")
    monkeypatch.setenv("OPSKIT_SSH_CONFIG", str(tmp_path / "ssh_config"))
    monkeypatch.setenv("OPSKIT_INVENTORY", str(path))
    return str(path)


@pytest.fixture
def started(tmp_path):
    """Run r1 started (detached) on the fake host gpu1 and recorded in the store."""
    s = Setup(tmp_path, detach=True)
    assert s.run() is None
    return s


def connect_to(s: Setup):
    def connect(spec):
        assert spec.name == "gpu1"  # the host the run's card names
        s.host.closed = False
        return s.host

    return connect


def test_output_lines_as_events(started) -> None:
    lines: list[ev.Event] = []
    state = ops.run_output("r1", hosts=(), inventory=None, store=started.store, follow=False,
                           emit=lines.append, connect=connect_to(started))
    assert state is None and [e.line for e in lines][:2] == ["lenet: 2 steps on cpu, out=/out",
                                                            "step 1/2 loss=2.3"]
    assert all(e.host == "gpu1" and e.run_id == "r1" for e in lines) and started.host.closed


def test_follow_returns_the_state_at_the_end(started) -> None:
    lines: list[ev.Event] = []
    state = ops.run_output("r1", hosts=(), inventory=None, store=started.store, follow=True,
                           emit=lines.append, connect=connect_to(started))
    assert (state.state, state.exit_code) == ("exited", 0) and len(lines) == 3


def test_cancel_records_the_new_state(started) -> None:
    state = ops.cancel_run("r1", hosts=(), inventory=None, store=started.store, grace=5,
                           connect=connect_to(started))
    assert (state.state, state.exit_code) == ("interrupted", 143)
    assert started.store.load("r1")["state"] == "interrupted" and started.host.closed


def test_collect_brings_the_results_home(started) -> None:
    ops.cancel_run("r1", hosts=(), inventory=None, store=started.store, grace=5,
                   connect=connect_to(started))
    res = ops.collect_run("r1", hosts=(), inventory=None, store=started.store,
                          connect=connect_to(started))
    assert sorted(res.files) == sorted(OUTPUTS) and res.complete
    card = started.store.load("r1")
    assert card["collected"]["verified"] is True and card["exit_code"] == 143


def test_an_unknown_run_is_refused_before_connecting(tmp_path) -> None:
    def never(spec):
        raise AssertionError("connected for an unknown run")

    with pytest.raises(UsageError, match="unknown run ID 'nope'"):
        ops.cancel_run("nope", hosts=(), inventory=None, store=ops.open_store(str(tmp_path)),
                       grace=1, connect=never)
    with pytest.raises(UsageError, match="invalid run ID"):
        ops.collect_run("../x", hosts=(), inventory=None, store=ops.open_store(str(tmp_path)),
                        connect=never)


def test_no_runs_recorded_means_no_host_to_ask(tmp_path) -> None:
    assert ops.list_jobs((), None, ops.open_store(str(tmp_path / "empty"))) is None
