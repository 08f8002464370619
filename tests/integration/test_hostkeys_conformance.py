"""Conformance: real ``ssh -o BatchMode=yes -o StrictHostKeyChecking=yes`` and opskit, against
the same loopback SSH server with the same known_hosts files, make the same accept/refuse
decision on every case below (field cases hosts/09, 11, 12 among them).

The server (opskit.testing.keyserver) lets nobody in and records authentication attempts:
"accept" means the client got as far as authenticating; "refuse" means it stopped at the host
key. A refused key must never see an authentication attempt from opskit (``@revoked`` is
refused before authentication, not after). Needs ssh and ssh-keygen; ~10 s.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
from pathlib import Path

import pytest

from opskit.errors import HostError, HostKeyError
from opskit.hosts.inventory import load_inventory
from opskit.hosts.ssh import SSHTransport
from opskit.testing.engine import require_tool
from opskit.testing.keyserver import KeyServer, make_host_key

A, R = "accept", "refuse"


def hashed(name: str, salt: bytes = b"0123456789abcdefghij") -> str:
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


# name -> (expected, server key types, known_hosts, global_known_hosts, extra config lines)
# Placeholders: {HK} the server's ed25519 key, {EC} its ecdsa key (when it has one), {OTHER}
# and {OTHEREC} keys of nobody, {P} the port, {H} "[127.0.0.1]:{P}", {HH} that name hashed.
CASES: dict[str, tuple] = {
    "exact": (A, "ed", "{H} {HK}", "", ""),
    "fc09-wildcard-star": (A, "ed", "[127.0.0.*]:{P} {HK}", "", ""),
    "wildcard-question": (A, "ed", "[127.0.0.?]:{P} {HK}", "", ""),
    "star-only": (A, "ed", "* {HK}", "", ""),
    "negated-self": (R, "ed", "[127.0.0.*]:{P},!{H} {HK}", "", ""),
    "negated-other": (A, "ed", "[127.0.0.*]:{P},![127.0.0.2]:{P} {HK}", "", ""),
    "name-list": (A, "ed", "a.example,b.example,{H} {HK}", "", ""),
    "hashed": (A, "ed", "{HH} {HK}", "", ""),
    "hashed-other-name": (R, "ed", "|1|MDEyMzQ1Njc4OWFiY2RlZmdoaWo=|AAAAAAAAAAAAAAAAAAAAAAAAAAA= {HK}",
                          "", ""),
    "several-keys-one-matches": (A, "ed", "{H} {OTHER}\n{H} {HK}", "", ""),
    "changed": (R, "ed", "{H} {OTHER}", "", ""),
    "other-type-pinned-only": (R, "ed", "{H} {OTHEREC}", "", ""),
    "fc12-revoked-and-pinned": (R, "ed", "@revoked * {HK}\n{H} {HK}", "", ""),
    "revoked-other-host": (A, "ed", "@revoked other.example {HK}\n{H} {HK}", "", ""),
    "revoked-other-key": (A, "ed", "@revoked * {OTHER}\n{H} {HK}", "", ""),
    "revoked-in-global": (R, "ed", "{H} {HK}", "@revoked * {HK}", ""),
    "fc11-global-only": (A, "ed", "", "{H} {HK}", ""),
    "user-other-global-right": (A, "ed", "{H} {OTHER}", "{H} {HK}", ""),
    "bad-lines-skipped": (A, "ed", "garbage\n{H} ssh-ed25519 %%%notbase64\n@bogus * {HK}\n"
                          "{H} ssh-unknown AAAA\n{H} {HK}", "", ""),
    "only-bad-lines": (R, "ed", "garbage\n@bogus {H} {HK}", "", ""),
    "wrong-port": (R, "ed", "[127.0.0.1]:1 {HK}", "", ""),
    "no-port-in-entry": (A, "ed", "127.0.0.1 {HK}", "", ""),  # ssh retries without the port
    "no-port-other-key": (R, "ed", "127.0.0.1 {OTHER}", "", ""),
    "no-port-but-alias": (R, "ed", "127.0.0.1 {HK}", "", "HostKeyAlias khalias"),
    "empty-files": (R, "ed", "", "", ""),
    "comments-blank": (A, "ed", "# a comment\n\n   \n  {H} {HK}  # trailing", "", ""),
    "cert-authority-only": (R, "ed", "@cert-authority * {HK}", "", ""),
    "alias": (A, "ed", "myalias {HK}", "", "HostKeyAlias MyAlias"),
    "alias-ignores-address": (R, "ed", "{H} {HK}", "", "HostKeyAlias myalias"),
    "second-user-file": (A, "ed", "{H} {HK}", "", "UserKnownHostsFile {d}/empty {d}/known_hosts2"),
    "user-files-none": (R, "ed", "{H} {HK}", "", "UserKnownHostsFile none"),
    "revoked-file": (R, "ed", "{H} {HK}", "", "RevokedHostKeys {d}/revoked"),
    "revoked-file-other": (A, "ed", "{H} {HK}", "", "RevokedHostKeys {d}/revoked_other"),
    "revoked-file-missing": (R, "ed", "{H} {HK}", "", "RevokedHostKeys {d}/no-such-file"),
    "pinned-type-asked-first": (A, "ed+ec", "{H} {EC}", "", ""),
    "hka-picks-pinned": (A, "ed+ec", "{H} {EC}", "", "HostKeyAlgorithms ecdsa-sha2-nistp256"),
    "hka-excludes-pinned": (R, "ed+ec", "{H} {EC}", "", "HostKeyAlgorithms ssh-ed25519"),
    "checkhostip-loopback": (A, "ed", "{H} {HK}", "", "CheckHostIP yes"),
    "knownhostscommand-file": (A, "ed", "", "", "KnownHostsCommand /bin/cat {d}/cmd_hosts"),
    "knownhostscommand-tokens": (A, "ed", "", "",
                                 'KnownHostsCommand /bin/sh -c "echo %H %t %K"'),
    "knownhostscommand-other-key": (R, "ed", "", "", "KnownHostsCommand /bin/cat {d}/other_cmd"),
    "knownhostscommand-fails": (R, "ed", "{H} {HK}", "", "KnownHostsCommand /bin/false"),
    "knownhostscommand-relative": (R, "ed", "", "", "KnownHostsCommand cat {d}/cmd_hosts"),
}


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict:
    require_tool("ssh", "openssh-client")
    require_tool("ssh-keygen", "openssh-client")
    d = tmp_path_factory.mktemp("hk-keys")
    out = {"dir": d}
    out["HK"] = make_host_key(d / "hk_ed")
    out["EC"] = make_host_key(d / "hk_ec", "ecdsa")
    out["OTHER"] = make_host_key(d / "other_ed")
    out["OTHEREC"] = make_host_key(d / "other_ec", "ecdsa")
    make_host_key(d / "client")
    servers = {"ed": KeyServer([d / "hk_ed"]), "ed+ec": KeyServer([d / "hk_ed", d / "hk_ec"])}
    out["servers"] = servers
    yield out
    for s in servers.values():
        s.close()


def _fill(text: str, keys: dict, port: int, d: Path) -> str:
    name = f"[127.0.0.1]:{port}"
    return (text.replace("{HH}", hashed(name)).replace("{H}", name).replace("{P}", str(port))
            .replace("{HK}", keys["HK"]).replace("{EC}", keys["EC"])
            .replace("{OTHEREC}", keys["OTHEREC"]).replace("{OTHER}", keys["OTHER"])
            .replace("{d}", str(d)))


def _write_case(tmp: Path, keys: dict, case: tuple, port: int) -> Path:
    _, _, user_kh, global_kh, extra = case
    (tmp / "known_hosts").write_text(_fill(user_kh, keys, port, tmp) + "\n")
    (tmp / "known_hosts2").write_text(_fill(user_kh, keys, port, tmp) + "\n")
    (tmp / "empty").write_text("")
    (tmp / "global").write_text(_fill(global_kh, keys, port, tmp) + "\n")
    (tmp / "revoked").write_text(keys["HK"] + "\n")
    (tmp / "revoked_other").write_text(keys["OTHER"] + "\n")
    (tmp / "cmd_hosts").write_text(f"[127.0.0.1]:{port} {keys['HK']}\n")
    (tmp / "other_cmd").write_text(f"[127.0.0.1]:{port} {keys['OTHER']}\n")
    lines = [f"  {_fill(x, keys, port, tmp)}" for x in extra.splitlines()]
    if not any("UserKnownHostsFile" in x for x in lines):
        lines.append(f"  UserKnownHostsFile {tmp}/known_hosts")
    cfg = tmp / "config"
    cfg.write_text(
        f"Host khbox\n  HostName 127.0.0.1\n  Port {port}\n  User qa\n"
        f"  IdentityFile {keys['dir']}/client\n  IdentitiesOnly yes\n"
        f"  GlobalKnownHostsFile {tmp}/global\n" + "\n".join(lines) + "\n")
    return cfg


def ssh_decision(cfg: Path) -> str:
    res = subprocess.run(["ssh", "-F", str(cfg), "-o", "BatchMode=yes", "-o",
                          "StrictHostKeyChecking=yes", "khbox", "true"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
    if "Permission denied" in res.stderr:
        return A
    assert ("Host key verification failed" in res.stderr
            or "KnownHostsCommand failed" in res.stderr), res.stderr
    return R


def opskit_decision(cfg: Path, tmp: Path) -> tuple[str, str]:
    (tmp / "inv.yaml").write_text("")
    spec = load_inventory(str(tmp / "inv.yaml"), str(cfg)).resolve("khbox")
    try:
        with SSHTransport(spec) as t:
            t.client()
    except HostKeyError as exc:
        return R, str(exc)
    except HostError as exc:
        assert "authentication failed" in str(exc), exc
        return A, str(exc)
    raise AssertionError("the server lets nobody in")


@pytest.mark.parametrize("name", list(CASES))
def test_same_decision_as_openssh(keys, tmp_path: Path, name: str) -> None:
    case = CASES[name]
    server = keys["servers"][case[1]]
    cfg = _write_case(tmp_path, keys, case, server.port)
    theirs = ssh_decision(cfg)
    before = len(server.attempts())
    ours, message = opskit_decision(cfg, tmp_path)
    assert theirs == case[0], f"the case's expectation is wrong: ssh says {theirs}"
    assert ours == theirs, message
    if ours == R:
        assert len(server.attempts()) == before, "opskit authenticated to a refused host"
    if name == "cert-authority-only":
        assert "@cert-authority" in message and "no certificate" in message


def test_corpus_size() -> None:
    assert len(CASES) >= 25


def test_cwd_inventory_never_reaches_the_server(keys, tmp_path: Path, monkeypatch) -> None:
    """Field case security/10: ./hosts.yaml of a cloned project points the user's own 'gpu7'
    at another server whose key it pins itself; opskit refuses (exit 2), the server sees no
    login; named on purpose with --inventory, the file is used."""
    import json
    import os
    import sys

    server = keys["servers"]["ed"]
    (tmp_path / "user_known_hosts").write_text("")
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host gpu7\n  HostName gpu7.corp.example\n  User alice\n"
                   f"  IdentityFile {keys['dir']}/client\n"
                   f"  UserKnownHostsFile {tmp_path}/user_known_hosts\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / ".known_hosts").write_text(f"[127.0.0.1]:{server.port} {keys['HK']}\n")
    (project / "hosts.yaml").write_text(
        f"hosts:\n  gpu7:\n    hostname: 127.0.0.1\n    port: {server.port}\n"
        "    known_hosts: [.known_hosts]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSKIT_")}
    env.update(OPSKIT_SSH_CONFIG=str(cfg), HOME=str(tmp_path))
    before = len(server.attempts())
    run = [sys.executable, "-m", "opskit"]
    res = subprocess.run([*run, "df", "--host", "gpu7"], cwd=project, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "found in the current folder" in res.stderr, res.stderr
    assert len(server.attempts()) == before
    shown = subprocess.run([*run, "hosts", "show", "gpu7", "--json", "--inventory", "hosts.yaml"],
                           cwd=project, env=env, capture_output=True, text=True, timeout=60)
    data = json.loads(shown.stdout)
    assert data["hostname"] == "127.0.0.1" and data["sources"]["hostname"].startswith("hosts.yaml")
    assert data["sources"]["user"] == f"{cfg}:3"


@pytest.mark.parametrize("extra", ["", "HashKnownHosts yes", "HostKeyAlias pinned-alias",
                                   "UserKnownHostsFile {d}/link {d}/second"])
def test_trust_writes_where_ssh_then_reads_it(keys, tmp_path: Path, extra: str) -> None:
    """`hosts trust` pins in the first UserKnownHostsFile, under the name ssh looks up (alias,
    hashed name); through a symlink the link stays; real ssh then accepts the host."""
    import os

    from opskit.hosts import hostkeys

    server = keys["servers"]["ed"]
    case = (A, "ed", "", "", extra)
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "kh").write_text("")
    os.symlink(tmp_path / "real" / "kh", tmp_path / "link")
    cfg = _write_case(tmp_path, keys, case, server.port)
    assert ssh_decision(cfg) == R  # nothing pinned yet
    (tmp_path / "inv.yaml").write_text("")
    spec = load_inventory(str(tmp_path / "inv.yaml"), str(cfg)).resolve("khbox")
    written = hostkeys.trust(spec, hostkeys.scan(spec))
    assert written == spec.known_hosts[0]
    assert ssh_decision(cfg) == A and opskit_decision(cfg, tmp_path)[0] == A
    if "link" in extra:
        assert (tmp_path / "link").is_symlink() and (tmp_path / "real" / "kh").read_text()
