"""Disks as a user means them, compared with GNU df (hosts/18 and its class): in a private
mount namespace, a folder bind-mounted twice, single files bind-mounted (from the root disk
and from another filesystem), and a loop-mounted ext4 mounted again and partly bind-mounted.
``opskit df`` must list the same filesystems as GNU ``df``'s default view (one row per
device), whether the host's df is GNU's or BusyBox's (which does not deduplicate), and never a
single-file mount; ``--all`` lists every mount. Needs root, unshare, mkfs.ext4, a loop device
and busybox; nothing outside the namespace changes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from opskit.checks.disk import PSEUDO_TYPES, parse_df
from opskit.testing.engine import skip_unless_ci

SETUP = r"""
set -e
W=$(mktemp -d); cd "$W"
mkdir -p src a b m1 m2 m3 bin; echo x > file; touch f1 f2
mount --bind src a; mount --bind src b; mount --bind file f1
truncate -s 16M img; mkfs.ext4 -q img; mount -o loop img m1; mkdir m1/sub; echo y > m1/f
mount --bind m1/sub m2; mount --bind m1 m3; mount --bind m1/f f2
ln -s "$(command -v busybox)" bin/df
echo "@@ gnu"; LC_ALL=C df -B1 -P -T
echo "@@ opskit"; "$PY" -m opskit df --json
echo "@@ opskit-busybox"; PATH="$W/bin:$PATH" "$PY" -m opskit df --json
echo "@@ opskit-all"; "$PY" -m opskit df --all --json
echo "@@ files"; for f in f1 f2; do echo "$W/$f"; done
echo "@@ end"
umount f2 m3 m2 m1 f1 b a; cd /; rm -rf "$W"
"""


def _parts(out: str) -> dict[str, str]:
    parts, name = {}, None
    for line in out.splitlines(keepends=True):
        if line.startswith("@@ "):
            name = line[3:].strip()
            parts[name] = ""
        elif name:
            parts[name] += line
    return parts


def _mounts(doc: str) -> list[str]:
    return [f["mount"] for f in json.loads(doc)["hosts"]["localhost"]["filesystems"]]


def test_disks_match_gnu_df_default_view(tmp_path):
    needed = ("unshare", "mkfs.ext4", "losetup", "busybox")
    if os.geteuid() != 0 or not all(shutil.which(t) for t in needed):
        skip_unless_ci(f"needs root and {', '.join(needed)} (a private mount namespace)")
    (tmp_path / "inv.yaml").write_text("hosts: {}\n")
    env = {**os.environ, "PY": sys.executable, "OPSKIT_INVENTORY": str(tmp_path / "inv.yaml"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    res = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", SETUP],
                         capture_output=True, text=True, env=env, timeout=180)
    if res.returncode != 0 and "loop" in res.stderr:
        skip_unless_ci(f"no loop device here: {res.stderr.strip()[-200:]}")
    assert res.returncode == 0, res.stderr
    parts = _parts(res.stdout)
    files = parts["files"].split()
    # GNU df's default view (one row per device), less what opskit documents as not a disk:
    # pseudo and memory filesystems, empty ones, a container engine's own mounts
    gnu = [f.mount for f in parse_df(parts["gnu"])
           if f.type not in PSEUDO_TYPES and f.size and not f.mount.startswith("/var/lib/docker/")]
    assert any(m.endswith("/m1") for m in gnu) and not any(m.endswith(("/a", "/b", "/m3")) for m in gnu)
    ours = _mounts(parts["opskit"])
    assert ours == gnu
    assert _mounts(parts["opskit-busybox"]) == gnu  # BusyBox lists every bind mount: deduplicated
    every = _mounts(parts["opskit-all"])
    assert all(f in every for f in files) and not any(f in ours for f in files)
    assert sum(m.endswith(("/a", "/b", "/m1", "/m2", "/m3")) for m in every) == 5
