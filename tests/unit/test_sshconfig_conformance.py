"""Conformance: ``opskit hosts show --json`` against the real ``ssh -F CONFIG -G HOST``.

A corpus of configs (data tables below, every hosts field case included) is written to a
temp folder; for each (config, host) the real ssh client resolves the host and opskit must
print the same hostname, port, user, identity files, proxyjump, user and global known-hosts
files and host-key algorithms, or fail where ssh fails. Needs only the OpenSSH client (no
network: names are literal, addresses, or resolved by the machine's own resolver).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from opskit.cli.main import cli
from opskit.errors import OpskitError
from opskit.hosts.sshconfig import SSHConfig, local_user
from opskit.testing.engine import require_tool


@pytest.fixture
def needs_ssh() -> None:
    """The reference: skipped without the OpenSSH client, a failure under CI=true."""
    require_tool("ssh", "openssh-client")

FIELDS = ("hostname", "port", "user", "identityfile", "proxyjump", "userknownhostsfile",
          "globalknownhostsfile", "hostkeyalgorithms", "ciphers", "macs", "kexalgorithms")
ALGORITHM_KEYS = ("hostkeyalgorithms", "ciphers", "macs", "kexalgorithms")
ME = local_user()

# name -> (config text, hosts). {d} is the case's temp folder, {me} the local user.
CORPUS: dict[str, tuple[str, list[str]]] = {
    # field cases hosts/01, 02, 03, 05, 06, 07, 08, 09, 11, 12, 24
    "fc01-trailing-comment": ("Host gpu-a gpu-b # rack 4\n    HostName 10.9.0.4\n    Port 2201\n"
                              "    User ops\n", ["gpu-a", "gpu-b", "10.9.0.4"]),
    "fc02-backslash-space": ("Host keybox\n    HostName 10.9.0.5\n    IdentityFile /srv/keys/lab\\ key\n",
                             ["keybox"]),
    "fc03-include-inactive": ("Host elsewhere\n    Include {d}/defaults.conf\n\nHost lab-3\n"
                              "    HostName 10.20.0.3\n", ["lab-3", "elsewhere"]),
    "fc05-match-exec-other-host": ("Host gpu9\n    HostName 10.30.0.9\n    User ops\n\n"
                                   "Match originalhost vpn-only exec \"test -e /nonexistent/vpn-up\"\n"
                                   "    ProxyJump bastion\n", ["gpu9", "vpn-only"]),
    "fc06-canonical": ("CanonicalizeHostname yes\nCanonicalDomains invalid.test\nHost cbox\n"
                       "    HostName 10.30.0.4\nMatch canonical\n    User canonuser\n", ["cbox", "10.1.2.3"]),
    "fc07-proxyjump-ipv6": ("Host inner6\n    HostName 127.0.0.1\n    Port 40022\n"
                            "    ProxyJump admin@[::1]:40022\n", ["inner6"]),
    "fc08-token-C": ("Host tokbox\n    HostName 127.0.0.1\n    Port 40022\n    User deploy\n"
                     "    IdentityFile /srv/keys/%C\n    UserKnownHostsFile /dev/null\n", ["tokbox"]),
    "fc09-kh-wildcard": ("Host khbox\n    HostName 127.0.0.1\n    Port 40022\n    User qa\n"
                         "    IdentityFile {d}/client\n    IdentitiesOnly yes\n"
                         "    UserKnownHostsFile {d}/known_hosts\n    GlobalKnownHostsFile /dev/null\n",
                         ["khbox"]),
    "fc11-kh-global": ("Host khbox\n    HostName 127.0.0.1\n    Port 40022\n    User qa\n"
                       "    UserKnownHostsFile {d}/known_hosts\n"
                       "    GlobalKnownHostsFile {d}/global_known_hosts\n", ["khbox"]),
    "fc24-ssh-uri": ("Host bastion\n    HostName 10.40.0.1\nHost inner-uri\n    HostName 10.40.0.12\n"
                     "    ProxyJump ssh://ops@bastion:2200\n", ["inner-uri", "bastion"]),
    # line syntax
    "syntax-equals": ("Host=eq1\n  Port=2201\n  User = alice\nHost eq2\n  HostName =10.0.0.2\n"
                      "  port= 2202\n", ["eq1", "eq2"]),
    "syntax-case": ("HOST Mixed\n  HOSTNAME 10.0.0.9\n  pOrT 2209\n  uSeR Bob\n", ["Mixed", "mixed"]),
    "syntax-quotes": ('Host q1 "q 2"\n  IdentityFile "/k/with space"\n  IdentityFile \'/k/single q\'\n'
                      '  User "quoted"\n', ["q1"]),
    "syntax-escapes": ("Host e1\n  IdentityFile /k/a\\\"b\n  IdentityFile /k/c\\\\d\n"
                       "  IdentityFile /k/e\\xf\n", ["e1"]),
    "syntax-comments": ("# top\nHost c1 # c2\n  # indented comment\n  User u1 # trailing\n"
                        "  IdentityFile /k/x#notcomment\n\n\t\nHost c2\n  User u2\n", ["c1", "c2"]),
    "syntax-tabs-crlf": ("Host t1\r\n\tHostName\t10.0.0.7\r\n\tPort\t2207  \r\n", ["t1"]),
    "syntax-hash-word": ("Host h1\n  User #comment\n", ["h1"]),
    # first value wins, accumulation
    "first-wins": ("Host w1\n  User first\n  Port 1111\nHost w*\n  User second\n  Port 2222\n"
                   "  HostName wild.example\nHost *\n  User third\n", ["w1", "w2", "other1"]),
    "identity-accumulate": ("Host a1\n  IdentityFile /k/1\n  IdentityFile /k/2\nHost a*\n"
                            "  IdentityFile /k/1\n  IdentityFile /k/3\n", ["a1", "a2"]),
    "negation": ("Host web* !web9\n  User webuser\nHost !db* *.lan\n  Port 2022\n",
                 ["web1", "web9", "x.lan", "db1.lan"]),
    "question-mark": ("Host ?x\n  HostName q.example\nHost ??y\n  Port 3333\n", ["ax", "abx", "aby"]),
    "hostname-tokens": ("Host t*\n  HostName %h.corp.example\nHost pct\n  HostName 100%%.x\n",
                        ["t1", "T2", "pct"]),
    "hostname-upper": ("Host up\n  HostName UPPER.Example.COM\n", ["up"]),
    "port-service": ("Host ps\n  Port ssh\n", ["ps"]),
    # Match
    "match-host-hostname": ("Host m1\n  HostName real.example.com\nMatch host real.example.com\n"
                            "  User matched\n", ["m1"]),
    "match-originalhost": ("Match originalhost m2,m3\n  Port 4444\nHost m2\n  HostName 10.0.0.12\n",
                           ["m2", "m3", "m4"]),
    "match-user": ("Match user admin\n  Port 2022\nHost db?\n  User admin\n", ["db1"]),
    "match-localuser": ("Match localuser {me}\n  Port 2323\nMatch localuser nobody-else\n"
                        "  User never\nHost lu\n  HostName 10.0.0.23\n", ["lu"]),
    "match-negated": ("Match !host *.internal\n  User outside\nHost in.internal out\n  Port 2200\n",
                      ["in.internal", "out"]),
    "match-all": ("Host ma\n  HostName 10.0.0.31\nMatch all\n  Port 2031\n", ["ma"]),
    "match-final": ("Host f1\n  HostName F1.final.example\nMatch final host f1.final.example\n"
                    "  User finaluser\nHost f1.final.example\n  Port 5555\n", ["f1", "F1"]),
    "match-canonical-without": ("Host nc\n  HostName 10.0.0.41\nMatch canonical\n  User canon\n",
                                ["nc"]),
    "match-exec-true": ("Host x1 x2\n  HostName 10.0.0.51\nMatch originalhost x1 exec true\n"
                        "  User execuser\nMatch exec \"test %n = x2\"\n  Port 2052\n", ["x1", "x2"]),
    "match-exec-token-file": ("Host x3\n  HostName 10.0.0.53\n"
                              "Match exec \"test -e {d}/present\"\n  User present\n"
                              "Match exec \"test -e {d}/absent\"\n  Port 9999\n", ["x3"]),
    "match-equals": ("Match host=10.0.0.61\n  User eqmatch\nHost me\n  HostName 10.0.0.61\n", ["me"]),
    # Include
    "include-top": ("Include {d}/inc/*.conf\nHost i1\n  Port 2101\n", ["i1", "i2"]),
    "include-active-block": ("Host ib\n  Include {d}/block.conf\n  Port 2102\n", ["ib", "ic"]),
    "include-relative-none": ("Include {d}/nomatch-*.conf\nHost ir\n  User ir\n", ["ir"]),
    "include-nested-match": ("Host nm\n  Include {d}/withmatch.conf\n  User after\n", ["nm"]),
    # ProxyJump / ProxyCommand
    "jump-forms": ("Host j1\n  ProxyJump jump@bastion:2222\nHost j2\n  ProxyJump a,b@c:2,d\n"
                   "Host j3\n  ProxyJump [2001:db8::7]:2222\nHost j4\n  ProxyJump u@[2001:db8::7]:2222\n"
                   "Host j5\n  ProxyJump 10.1.1.1\nHost j6\n  ProxyJump none\nHost j7\n"
                   "  ProxyJump ssh://bastion\nHost j*\n  ProxyJump fallback\n",
                   ["j1", "j2", "j3", "j4", "j5", "j6", "j7", "j8"]),
    "jump-vs-command": ("Host pc\n  ProxyCommand nc %h %p\n  ProxyJump ignored\nHost pj\n"
                        "  ProxyJump first\n  ProxyCommand ignored\n", ["pc", "pj"]),
    # known-hosts files and host key algorithms
    "kh-lists": ("Host k1\n  UserKnownHostsFile ~/.ssh/kh_%h_%p {d}/kh2 /abs/%r\n"
                 "  GlobalKnownHostsFile /etc/a /etc/b\nHost k2\n  UserKnownHostsFile none\n"
                 "  GlobalKnownHostsFile none\nHost k*\n  UserKnownHostsFile /never\n",
                 ["k1", "k2", "k3"]),
    "kh-tokens": ("Host kt\n  HostName 10.0.0.71\n  Port 2071\n  User ktu\n"
                  "  UserKnownHostsFile /kh/%C /kh/%n-%h-%p-%r-%u-%k %d/kh\n", ["kt"]),
    "kh-alias": ("Host ka\n  HostKeyAlias aliasname\n  UserKnownHostsFile /kh/%k\n", ["ka"]),
    "hka-explicit": ("Host h1\n  HostKeyAlgorithms ssh-ed25519,rsa-sha2-512\nHost h2\n"
                     "  HostKeyAlgorithms +ssh-rsa\nHost h3\n  HostKeyAlgorithms -*-cert-v01@openssh.com\n"
                     "Host h4\n  HostKeyAlgorithms ^ecdsa-sha2-nistp256\nHost h5\n"
                     "  HostKeyAlgorithms ecdsa-*\nHost h6\n  HostKeyAlgorithms=+ssh-ed25519\n",
                     ["h1", "h2", "h3", "h4", "h5", "h6"]),
    "misc-ignored": ("IgnoreUnknown Foo*,UseKeychain\nHost mi\n  UseKeychain yes\n  FooBar 1\n"
                     "  Protocol 2\n  Compression yes\n  ServerAliveInterval 30\n  User miuser\n",
                     ["mi"]),
    "proxy-none-orders": ("Host n1\n  ProxyCommand none\n  ProxyJump later\nHost n2\n  ProxyJump none\n"
                          "  ProxyCommand later\nHost n3\n  ProxyJump j # comment\n", ["n1", "n2", "n3"]),
    "canonical-address-forms": ("CanonicalizeHostname yes\nHost a6\n  HostName ::0001\nHost a4\n"
                                "  HostName 127.000.000.001\nMatch canonical host ::1\n  User v6\n",
                                ["a6", "a4"]),
    "canonical-maxdots": ("CanonicalizeHostname yes\nCanonicalizeMaxDots 0\nCanonicalDomains invalid.test\n"
                          "Host md.x\n  User dots\n", ["md.x"]),
    "canonical-final-host": ("CanonicalizeHostname yes\nHost alias1\n  HostName 10.0.0.81\n"
                             "Host 10.0.0.81\n  Port 2081\n", ["alias1"]),
    "canonical-proxied": ("CanonicalizeHostname yes\nCanonicalDomains invalid.test\nHost pr\n"
                          "  ProxyJump j\nMatch canonical\n  User canon\n", ["pr"]),
    "dollar-env": ("Host de\n  UserKnownHostsFile ${HOME}/kh_%h\n", ["de"]),
    "host-only-negated": ("Host !nn\n  User never\nHost nn other-nn\n  Port 2222\n", ["nn", "other-nn"]),
    "include-relative": ("Include relative-nonexistent.conf\nHost rel\n  User rel\n", ["rel"]),
    "identityfile-none": ("Host idn\n  IdentityFile none\n", ["idn"]),
    "match-exec-percent-h": ("Host eh\n  HostName 10.0.0.91\nMatch exec \"test %h = 10.0.0.91\"\n"
                             "  User viaexec\n", ["eh"]),
    "match-user-case": ("Match user ADMIN\n  Port 2099\nHost mu\n  User admin\n", ["mu"]),
    "match-host-case": ("Host mh\n  HostName Mixed.Example\nMatch host mixed.example\n  User lower\n",
                        ["mh"]),
    "formfeed-end": ("Host ff\n  User ffuser\f\n", ["ff"]),
    "bad-unknown-in-inactive-block": ("Host elsewhere\n  NoSuchOption 1\nHost b10\n  User x\n", ["b10"]),
    "bad-ignoreunknown-too-late": ("Host b11\n  FooOpt 1\nIgnoreUnknown FooOpt\n", ["b11"]),
    "bad-empty-host": ('Host ""\n  User x\nHost b12\n', ["b12"]),
    "bad-include-loop": ("Include {d}/loop.conf\nHost b13\n", ["b13"]),
    "bad-fallback-local": ("CanonicalizeHostname yes\nCanonicalizeFallbackLocal no\n"
                           "CanonicalDomains invalid.test\nHost b14\n  User x\n", ["b14"]),
    "bad-port-zero": ("Host b15\n  Port 0\n", ["b15"]),
    "cnames-address": ("CanonicalizeHostname yes\nCanonicalizePermittedCNAMEs *.a:*.b\nHost ca\n"
                       "  HostName 10.0.0.95\n", ["ca"]),
    "cnames-proxied": ("CanonicalizePermittedCNAMEs *\nHost cp\n  ProxyJump j\n", ["cp"]),
    "cnames-none": ("CanonicalizePermittedCNAMEs none\nHost cnn\n  User cnn\n", ["cnn"]),
    "cnames-own-name": ("CanonicalizeHostname yes\nCanonicalizePermittedCNAMEs *:*\nHost me\n"
                        "  HostName {node}\n", ["me"]),
    "bad-cnames-unresolvable": ("CanonicalizePermittedCNAMEs *.a:*.b\nHost b16\n", ["b16"]),
    "bad-cnames-syntax": ("CanonicalizePermittedCNAMEs foo\nHost b17\n", ["b17"]),
    # configs OpenSSH refuses: opskit refuses them too
    "bad-keyword": ("Host b1\n  NoSuchKeyword yes\n", ["b1"]),
    "bad-port": ("Host b2\n  Port nosuchservice\n", ["b2"]),
    "bad-quotes": ('Host b3\n  User "unterminated\n', ["b3"]),
    "bad-extra-args": ("Host b4\n  User a b\n", ["b4"]),
    "bad-no-argument": ("Host b5\n  User\n", ["b5"]),
    "bad-match-attribute": ("Match nosuch x\n  User y\nHost b6\n  Port 22\n", ["b6"]),
    "bad-hka": ("Host b7\n  HostKeyAlgorithms nonsense-alg\n", ["b7"]),
    "bad-jump": ("Host b8\n  ProxyJump ssh://user@host/path\n", ["b8"]),
    # Ciphers / MACs / KexAlgorithms: kex_assemble_names and readconf.c's checks
    "alg-explicit": ("Host a1\n  Ciphers aes256-ctr,aes128-gcm@openssh.com\n  MACs hmac-sha2-512\n"
                     "  KexAlgorithms ecdh-sha2-nistp384,curve25519-sha256\n", ["a1"]),
    "alg-plus": ("Host a2\n  Ciphers +aes128-cbc,3des-cbc\n  MACs +hmac-md5\n"
                 "  KexAlgorithms +diffie-hellman-group14-sha1\n", ["a2"]),
    "alg-caret": ("Host a3\n  Ciphers ^aes256-gcm@openssh.com,aes128-ctr\n"
                  "  MACs ^hmac-sha2-512-etm@openssh.com\n  KexAlgorithms ^ecdh-sha2-nistp521\n", ["a3"]),
    "alg-minus-patterns": ("Host a4\n  Ciphers -chacha20*,*cbc\n  MACs -umac*,*sha1*\n"
                           "  KexAlgorithms -sntrup*,diffie-hellman*\n", ["a4"]),
    "alg-minus-all": ("Host a5\n  Ciphers -*\n", ["a5"]),
    "alg-minus-negated": ("Host a6\n  Ciphers -!aes128-ctr\n", ["a6"]),
    "alg-empty-name-stops": ("Host a7\n  Ciphers aes256-ctr,,nonsense\n  MACs hmac-sha1,\n", ["a7"]),
    "alg-first-wins": ("Host a8\n  Ciphers aes128-ctr\nHost *\n  Ciphers aes256-ctr\n"
                       "  KexAlgorithms curve25519-sha256\n", ["a8", "other-a8"]),
    "alg-in-match": ("Match host a9\n  MACs hmac-sha2-256\nHost a9\n  MACs hmac-sha1\n", ["a9"]),
    "bad-cipher": ("Host b20\n  Ciphers aes999-ctr\n", ["b20"]),
    "bad-cipher-pattern": ("Host b21\n  Ciphers aes*\n", ["b21"]),
    "bad-cipher-plus": ("Host b22\n  Ciphers +nonsense\n", ["b22"]),
    "bad-cipher-negated": ("Host b23\n  Ciphers !aes128-ctr\n", ["b23"]),
    "bad-mac": ("Host b24\n  MACs aes128-ctr\n", ["b24"]),
    "bad-mac-caret": ("Host b25\n  MACs ^hmac-sha3\n", ["b25"]),
    "bad-kex": ("Host b26\n  KexAlgorithms curve448-sha512\n", ["b26"]),
    "bad-kex-trailing-comma": ("Host b27\n  KexAlgorithms nonsense,\n", ["b27"]),
    "bad-kex-in-inactive-block": ("Host elsewhere\n  KexAlgorithms nonsense\nHost b28\n", ["b28"]),
    "bad-cipher-two-args": ("Host b29\n  Ciphers aes128-ctr aes256-ctr\n", ["b29"]),
    "bad-flag": ("Host b9\n  CheckHostIP maybe\n", ["b9"]),
}
EXTRA_FILES = {
    "fc03-include-inactive": {"defaults.conf": "Host *\n    User from-included-file\n    Port 2999\n"},
    "include-top": {"inc/a.conf": "Host i1\n  User fromA\n  IdentityFile /k/inc_a\n",
                    "inc/b.conf": "Host i*\n  Port 1234\n  User fromB\n"},
    "include-active-block": {"block.conf": "User fromblock\nHost ic\n  User ic-from-include\n"},
    "include-nested-match": {"withmatch.conf": "Match all\n  Port 2424\nHost other\n  User no\n"},
    "match-exec-token-file": {"present": ""},
    "bad-include-loop": {"loop.conf": "Include {d}/loop.conf\n"},
}


def _cases() -> list[tuple[str, str]]:
    return [(name, host) for name, (_, hosts) in CORPUS.items() for host in hosts]


def _write(tmp: Path, name: str) -> Path:
    text, _ = CORPUS[name]
    for rel, content in EXTRA_FILES.get(name, {}).items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text(content.replace("{d}", str(tmp)))
    cfg = tmp / "config"
    cfg.write_text(text.replace("{d}", str(tmp)).replace("{me}", ME)
                   .replace("{node}", os.uname().nodename))
    return cfg


def ssh_G(cfg: Path, host: str) -> dict | None:
    """The compared fields as real ssh prints them; None when ssh refuses the config."""
    res = subprocess.run(["ssh", "-F", str(cfg), "-G", host], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=30)
    if res.returncode != 0:
        return None
    got: dict = {"identityfile": [], "proxyjump": None}
    for line in res.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key == "identityfile":
            got["identityfile"].append(value)
        elif key in ("userknownhostsfile", "globalknownhostsfile"):
            got[key] = value.split() if value != "none" else []
        elif key in ALGORITHM_KEYS:
            got[key] = value.split(",") if value else []
        elif key == "port":
            got[key] = int(value)
        elif key in FIELDS:
            got[key] = value
    return got


def opskit_show(cfg: Path, host: str, tmp: Path) -> tuple[int, dict | str]:
    inv = tmp / "empty-inventory.yaml"
    inv.write_text("")
    env = {"OPSKIT_SSH_CONFIG": str(cfg), "OPSKIT_INVENTORY": str(inv), "OPSKIT_KNOWN_HOSTS": None}
    res = CliRunner().invoke(cli, ["hosts", "show", host, "--json"], env=env)
    if isinstance(res.exception, OpskitError):  # what main() prints, with its exit code
        return res.exception.exit_code, f"{res.exception} {res.exception.hint or ''}"
    if res.exit_code != 0:
        return res.exit_code, f"{res.output} {res.exception!r}"
    return 0, json.loads(res.output)


def test_corpus_size() -> None:
    assert len(_cases()) >= 80
    assert len(CORPUS) >= 50


@pytest.mark.parametrize(("name", "host"), _cases(), ids=[f"{n}-{h}" for n, h in _cases()])
def test_hosts_show_equals_ssh_G(needs_ssh, tmp_path: Path, name: str, host: str) -> None:
    cfg = _write(tmp_path, name)
    expected = ssh_G(cfg, host)
    code, got = opskit_show(cfg, host, tmp_path)
    if expected is None:
        assert code != 0, f"ssh -G refuses this config; opskit printed {got}"
        assert str(tmp_path) in str(got), got  # the error names the file (and line)
        return
    if code != 0 and "unknown host" in str(got):
        # a name only `Host *` covers and DNS does not know: the reader still resolves it
        # as ssh does; the CLI says "unknown host" (see test_unknown_name_is_refused)
        res = SSHConfig(str(cfg)).resolve(host)
        got = {"hostname": res.hostname, "port": res.port, "user": res.user,
               "identityfile": list(res.identityfile), "proxyjump": res.proxyjump,
               "userknownhostsfile": list(res.userknownhostsfile),
               "globalknownhostsfile": list(res.globalknownhostsfile),
               "hostkeyalgorithms": list(res.hostkeyalgorithms), "ciphers": list(res.ciphers),
               "macs": list(res.macs), "kexalgorithms": list(res.kexalgorithms)}
    else:
        assert code == 0, got
    assert {k: got[k] for k in FIELDS} == {k: expected[k] for k in FIELDS}


def test_unknown_name_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "fc01-trailing-comment")
    code, out = opskit_show(cfg, "rack", tmp_path)
    assert code == 2 and "unknown host 'rack'" in out and "gpu-a, gpu-b" in out


def test_a_name_dns_knows_is_a_destination(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.write_text("Host *\n  User everyone\n")
    name = os.uname().nodename  # this machine's own name: its resolver knows it
    code, got = opskit_show(cfg, name, tmp_path)
    assert code == 0, got
    assert got["user"] == "everyone" and got["hostname"] == name.lower()
