"""The SSH test hosts are started and removed through testcontainers (real engine)."""

from __future__ import annotations

import pytest

from opskit.errors import ConfigError, OpskitError
from opskit.testing.containers import make_container, remove_container
from opskit.testing.sshd import start_ssh_hosts


def test_test_hosts_are_testcontainers_on_loopback(docker_client, ssh_testbed):
    for host in ssh_testbed.hosts:
        attrs = docker_client.api.inspect_container(host.container.id)
        assert attrs["Config"]["Labels"]["org.testcontainers"] == "true"
        assert host.testcontainer.get_wrapped_container() is host.container
        assert host.testcontainer.get_container_host_ip() == "127.0.0.1"
        assert host.testcontainer.get_exposed_port(22) == host.port
        bindings = attrs["NetworkSettings"]["Ports"]["22/tcp"]
        assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
    assert not docker_client.containers.list(all=True, filters={"name": "testcontainers-ryuk"})


def test_a_failed_start_leaves_nothing(docker_client, tmp_path):
    # Which of the two errors is seen depends on timing: the container may exit before or just
    # after testcontainers reads its published port (a loaded machine shows both).
    with pytest.raises(OpskitError, match=r"did not start with port 22 published|container stopped"):
        start_ssh_hosts(docker_client, 2, workdir=tmp_path, name_prefix="opskit-tcexit",
                        run_kwargs={"entrypoint": ["sh", "-c", "exit 3"]})
    left = docker_client.containers.list(all=True, filters={"label": "opskit.testing"})
    assert not [c.name for c in left if c.name.startswith("opskit-tcexit-")]


def test_remove_container_removes_a_started_container(docker_client, ssh_testbed):
    image = ssh_testbed.hosts[0].container.image.id
    tc = make_container(docker_client, image, {"entrypoint": ["sleep", "30"],
                                               "labels": {"opskit.testing": "tc-test"}})
    container = tc.start().get_wrapped_container()
    try:
        assert docker_client.containers.get(container.id).status == "running"
    finally:
        remove_container(tc)
    assert not docker_client.containers.list(all=True, filters={"id": container.id})


def test_missing_image_is_an_error_not_a_pull(docker_client, tmp_path):
    with pytest.raises(OpskitError, match="opskit-no-such-image:0 is not on the local engine"):
        start_ssh_hosts(docker_client, 1, image="opskit-no-such-image:0", workdir=tmp_path,
                        name_prefix="opskit-tcmiss")


def test_ryuk_enabled_is_refused(docker_client, tmp_path, monkeypatch):
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "false")
    with pytest.raises(ConfigError, match="TESTCONTAINERS_RYUK_DISABLED='false'"):
        start_ssh_hosts(docker_client, 1, workdir=tmp_path, name_prefix="opskit-tcryuk")

