"""Trust taken from the working folder (issue 11, class 8).

An inventory file opskit finds in the current folder (``./opskit.yaml``, ``./hosts.yaml``)
comes with whatever project was cloned there. It may add hosts and groups. It may not
change where a host that the user's ssh config names is (address, port, login, keys,
jump host), and it may never say which known_hosts files pin a host's key: both need the
file named on purpose (``--inventory FILE`` or ``$OPSKIT_INVENTORY``).
"""

from __future__ import annotations

from opskit.errors import ConfigError

# Where a host is and how opskit logs in there.
ROUTE_KEYS = ("hostname", "port", "user", "identityfile", "proxyjump")
PIN_KEYS = ("known_hosts",)


def _given(inv, name: str) -> dict[str, str]:  # noqa: ANN001 - inventory.Inventory
    """key -> where the working-folder file sets it for ``name``."""
    out = {k: f"defaults.{k}" for k in inv.defaults}
    out.update({k: f"hosts.{name}.{k}" for k in inv.hosts.get(name, {})})
    return out


def check_untrusted(inv, name: str, resolved) -> None:  # noqa: ANN001
    given = _given(inv, name)
    refused = [k for k in PIN_KEYS if k in given]
    if resolved.matched_specific:
        refused += [k for k in ROUTE_KEYS if k in given]
    if not refused:
        return
    what = ", ".join(given[k] for k in refused)
    why = (f"the ssh config names {name!r}" if resolved.matched_specific
           else "host keys are pinned only by files you choose")
    raise ConfigError(
        f"{name}: {inv.path} was found in the current folder and sets {what}; {why}, and opskit "
        "does not let a file that came with the working folder change where a host is or "
        "which key pins it",
        f"if you trust this file, name it: --inventory {inv.path} (or OPSKIT_INVENTORY); "
        "otherwise run opskit from another folder",
    )
