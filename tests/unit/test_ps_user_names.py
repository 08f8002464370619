"""``ps --user`` with directory-style and long user names (field case hosts/16): the real
procps ``ps`` inside a private mount namespace whose /etc/passwd holds two extra users
(``alice@corp.example.com`` and a 40-character name); opskit must select their processes and
show the names, not uids. Needs root, unshare and setpriv (nothing outside the namespace
changes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from opskit.testing.engine import skip_unless_ci

LONG = "svc-" + "x" * 30 + "@corp.example"  # 47 characters: more than ps's old user:32
SCRIPT = r"""
set -e
T=$(mktemp); cat /etc/passwd > "$T"
printf '%s:x:%s:%s::/nonexistent:/bin/sh\n' "$N1" 4321 4321 "$N2" 4322 4322 >> "$T"
mount --bind "$T" /etc/passwd
setpriv --reuid 4321 --regid 4321 --clear-groups sleep 60 & P1=$!
setpriv --reuid 4322 --regid 4322 --clear-groups sleep 60 & P2=$!
sleep 0.3
echo "pids $P1 $P2"
"$PY" -m opskit ps --user "$N1" --json; echo "rc=$?"
"$PY" -m opskit ps --user "$N2" --json; echo "rc=$?"
"$PY" -m opskit ps --name '^sleep 60'; echo "rc=$?"
"$PY" -c "$LU"
kill $P1 $P2; umount /etc/passwd; rm -f "$T"
"""


# long_users as status reads it (after mounts, from that section's one grep) and as ps reads it
LU = """import json
from opskit.checks.sections import run_sections
from opskit.hosts.local import LocalTransport
with_mounts = run_sections(LocalTransport(), ["mounts", "long_users"])
alone = run_sections(LocalTransport(), ["long_users"])
print("long_users", json.dumps([with_mounts["long_users"].stdout, alone["long_users"].stdout,
                                with_mounts["mounts"].ok]))
"""


def test_ps_user_finds_directory_and_long_names(tmp_path):
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv")):
        skip_unless_ci("needs root, unshare and setpriv (a private mount namespace)")
    (tmp_path / "inv.yaml").write_text("hosts: {}\n")
    env = {**os.environ, "N1": "alice@corp.example.com", "N2": LONG, "PY": sys.executable,
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
           "OPSKIT_INVENTORY": str(tmp_path / "inv.yaml"), "COLUMNS": "200", "LU": LU}
    res = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", SCRIPT],
                         capture_output=True, text=True, env=env, timeout=120)
    out = res.stdout
    assert res.returncode == 0, res.stderr
    pids = [int(x) for x in out.split("pids ", 1)[1].split("\n", 1)[0].split()]
    docs = [json.loads(part.rsplit("\n", 1)[0]) for part in out.split("rc=0")[:2]
            for part in [part[part.index("{"):]]]
    for doc, pid, name in zip(docs, pids, ["alice@corp.example.com", LONG], strict=True):
        procs = doc["hosts"]["localhost"]["processes"]
        assert [(p["pid"], p["user"]) for p in procs] == [(pid, name)]
    table = out.split("rc=0")[2]
    assert "alice@corp.example.com" in table and LONG in table
    assert "4321" not in table and "4322" not in table  # names, not uids
    with_mounts, alone, mounts_ok = json.loads(out.split("long_users ", 1)[1].split("\n", 1)[0])
    assert with_mounts == alone and mounts_ok
    assert [line.split(":")[:3] for line in alone.splitlines()] == [[LONG, "x", "4322"]]
