"""opskit df/ps/status: bad usage exits 2 before any host is contacted."""

from __future__ import annotations

import pytest

from opskit.testing.cli import run_cli


@pytest.fixture(autouse=True)
def no_hosts_reached(monkeypatch, tmp_path):
    """Any attempt to reach a host fails the test: bad input must be refused before."""
    import opskit.hosts.group as group

    def refuse(*a, **kw):
        raise AssertionError("a host was contacted")

    monkeypatch.setattr(group, "run_on_hosts", refuse)
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text("hosts:\n  web1:\n    hostname: 127.0.0.1\ngroups:\n  web: [web1]\n")
    empty_ssh_config = tmp_path / "ssh_config"
    empty_ssh_config.write_text("")
    monkeypatch.setenv("OPSKIT_INVENTORY", str(inventory))
    monkeypatch.setenv("OPSKIT_SSH_CONFIG", str(empty_ssh_config))


@pytest.mark.parametrize("args, message", [
    (["df", "--warn", "lots"], "invalid --warn value 'lots'"),
    (["df", "--warn", "120%"], "0 to 100"),
    (["ps", "--name", "(unclosed"], "invalid --name pattern"),
    (["ps", "--user", "root\nreboot"], "refusing user name"),
    (["ps", "--limit", "0"], "--limit"),
    (["ps", "--sort", "rss"], "'rss' is not one of"),
    (["df", "--host", "bad;host"], "refusing host name"),
    (["status", "--host", "-oProxyCommand=x"], "refusing host name"),
    (["status", "--host", "@nosuchgroup"], "nosuchgroup"),
])
def test_bad_usage_exits_2_and_names_the_culprit(capsys, args, message):
    code, out, err = run_cli(capsys, *args)
    assert code == 2, (out, err)
    assert message in err and out == ""


def test_df_dash_h_means_human_not_help(capsys):
    code, out, err = run_cli(capsys, "df", "--help")
    assert code == 0 and "-h, --human-readable" in out
