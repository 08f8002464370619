"""The real ssh client's view of a host (``ssh -G``), for unit tests that compare opskit with it.
Import as ``from _sshg import ssh_G`` (pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def ssh_G(config: Path, host: str, *options: str) -> dict:
    """The five keys as the real ssh client resolves them."""
    out = subprocess.run(
        ["ssh", "-F", str(config), *options, "-G", host], capture_output=True, text=True,
        check=True, stdin=subprocess.DEVNULL,
    ).stdout
    got: dict = {"identityfile": [], "proxyjump": None}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        if key == "identityfile":
            got["identityfile"].append(value)
        elif key in ("hostname", "user", "proxyjump"):
            got[key] = value
        elif key == "port":
            got[key] = int(value)
    return got
