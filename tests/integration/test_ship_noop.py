"""A re-ship with nothing changed, against real sshd hosts of both image stores (Docker 20.10
legacy, Docker 26 containerd): the host's engine is asked through an OpenSSH direct-streamlocal
channel of the connection already open, no docker process on the host (the only command is the
shell probe of the CLI's socket); a DOCKER_HOST in the login shell's rc file is followed; and
when the sshd forbids stream-local forwarding, or the CLI uses another docker context, the
docker CLI is asked instead and the event stream says why."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opskit.errors import OpskitError
from opskit.hosts.dockerendpoint import DEFAULT_SOCKET, PROBE_ARGV
from opskit.hosts.group import connect
from opskit.images import ship as shipmod
from opskit.images.shipcheck import VIA_API, VIA_CLI

DROP_IN = "/etc/ssh/sshd_config.d/00-opskit-test-streamlocal.conf"


@pytest.fixture(params=["legacy", "containerd"])
def shipped(request, docker_client, tmp_path):
    """(spec, host, ref, local image) on a host of each store, the image shipped there once."""
    bed = request.getfixturevalue("gpu_hosts" if request.param == "legacy" else "containerd_host")
    spec, host = bed.specs()[0], bed.hosts[0]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "noop.txt").write_text(f"re-ship me ({request.param})\n")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY noop.txt /noop.txt\n")
    ref = f"opskit-shipnoop:{request.param}"
    docker_client.images.build(path=str(ctx), tag=ref, rm=True, pull=False)
    first = shipmod.ship(docker_client, ref, [spec]).outcomes[0]
    assert first.ok, first.error
    assert (first.value.mode, first.value.checked_via) == ("full", VIA_API)  # "not there" asked by the API too
    assert first.value.store == request.param
    yield spec, host, ref, shipmod.local_image(docker_client, ref)
    host.exec(["docker", "image", "rm", "-f", ref], user="opskit")


def _watched(spec):
    """A transport that records the commands it runs and the sockets it opens."""
    t = connect(spec)
    ran, opened = [], []
    run, open_sock = t.run, t.open_unix_socket
    t.run = lambda argv, **kw: (ran.append(tuple(argv)), run(argv, **kw))[1]
    t.open_unix_socket = lambda path: (opened.append(path), open_sock(path))[1]
    return t, ran, opened


def _their_id(image, store: str) -> str:
    return image.config_digest if store == "legacy" else image.described.manifest_digest


def test_a_reship_is_asked_of_the_engine_api_with_no_docker_process_on_the_host(shipped, docker_client):
    spec, _host, ref, image = shipped
    t, ran, opened = _watched(spec)
    events: list[str] = []
    try:
        hp = shipmod.plan_host(t, image, lambda h, m: events.append(m))
    finally:
        t.close()
    assert (hp.image_present, hp.checked_via, events) == (True, VIA_API, [])
    assert ran == [PROBE_ARGV] and set(opened) == {DEFAULT_SOCKET}
    assert hp.host_image_id == _their_id(image, hp.store) and hp.missing_tags == []
    r = shipmod.ship(docker_client, ref, [spec]).outcomes[0].value
    assert (r.mode, r.wire_bytes, r.checked_via, r.host_image_id) == ("none", 0, VIA_API, hp.host_image_id)


def test_when_the_sshd_forbids_streamlocal_forwarding_the_cli_is_asked_and_the_event_says_why(shipped, docker_client):
    spec, host, ref, image = shipped
    events: list[str] = []
    with sshd_setting(host, spec, "AllowStreamLocalForwarding no"):
        r = shipmod.ship(docker_client, ref, [spec], shipmod.ShipOptions(on_event=lambda h, m: events.append(m)))
    value = r.outcomes[0].value
    assert (value.mode, value.checked_via, value.host_image_id) == ("none", VIA_CLI, _their_id(image, value.store))
    assert len(events) == 1 and f"refused a channel to {DEFAULT_SOCKET}" in events[0], events
    assert shipmod.ship(docker_client, ref, [spec]).outcomes[0].value.checked_via == VIA_API  # set back


def test_the_clis_own_socket_is_followed_and_another_context_is_left_to_the_cli(shipped):
    spec, host, _ref, image = shipped
    alt = "/home/opskit/opskit-test-alt.sock"
    with rc_line(host, f"export DOCKER_HOST=unix://{alt}"):
        assert host.exec(["ln", "-sfn", DEFAULT_SOCKET, alt], user="opskit")[0] == 0
        t, ran, opened = _watched(spec)
        try:
            hp = shipmod.plan_host(t, image)
        finally:
            t.close()
            host.exec(["rm", "-f", alt], user="opskit")
        assert (hp.image_present, hp.checked_via, ran) == (True, VIA_API, [PROBE_ARGV])
        assert alt in opened
    with docker_context(host):
        events: list[str] = []
        t = connect(spec)
        try:
            hp = shipmod.plan_host(t, image, lambda h, m: events.append(m))
        finally:
            t.close()
        assert (hp.image_present, hp.checked_via) == (True, VIA_CLI)
        assert "docker CLI uses context 'opskit-test'" in events[0], events


# -- changing a test host for one test, and back -------------------------------------------------
@contextlib.contextmanager
def sshd_setting(host, spec, line: str) -> Iterator[None]:
    """``line`` in a drop-in of the host's sshd_config (read first: the first value wins)."""
    def reload() -> None:
        code, out = host.exec(["sh", "-c", "/usr/sbin/sshd -t && kill -HUP \"$(cat /run/sshd.pid 2>/dev/null || echo 1)\""])
        assert code == 0, out
        _wait_for_ssh(spec)

    assert host.exec(["sh", "-c", f"printf '%s\\n' '{line}' > {DROP_IN}"])[0] == 0
    try:
        reload()
        yield
    finally:
        host.exec(["rm", "-f", DROP_IN])
        reload()


def _wait_for_ssh(spec, limit: float = 20.0) -> None:
    """sshd re-executes itself on SIGHUP: wait until a new connection runs a command."""
    deadline = time.monotonic() + limit
    while True:
        try:
            with connect(spec) as t:
                t.run(["true"], check=True, timeout=10)
            return
        except OpskitError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextlib.contextmanager
def rc_line(host, line: str) -> Iterator[None]:
    """``line`` first in the login user's ~/.bashrc (which bash reads for commands over SSH,
    before Debian's 'not interactive: return')."""
    rc = Path("/home/opskit/.bashrc")
    keep = f"{rc}.opskit-test"
    code, out = host.exec(["sh", "-c", f"cp -p {rc} {keep} && {{ printf '%s\\n' '{line}'; cat {keep}; }} > {rc}"],
                          user="opskit")
    assert code == 0, out
    try:
        yield
    finally:
        host.exec(["mv", "-f", keep, str(rc)], user="opskit")


@contextlib.contextmanager
def docker_context(host) -> Iterator[None]:
    """The login user's docker CLI switched to a context of its own (the same engine)."""
    for argv in (["docker", "context", "create", "opskit-test", "--docker", f"host=unix://{DEFAULT_SOCKET}"],
                 ["docker", "context", "use", "opskit-test"]):
        code, out = host.exec(argv, user="opskit")
        assert code == 0, out
    try:
        yield
    finally:
        host.exec(["docker", "context", "use", "default"], user="opskit")
        host.exec(["docker", "context", "rm", "-f", "opskit-test"], user="opskit")
