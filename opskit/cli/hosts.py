"""``opskit hosts list|show|trust``: what opskit knows about hosts, and pinning host keys.

``list`` and ``show`` print ``hostname``, ``port``, ``user``, ``identityfile``,
``proxyjump``, the known-hosts files and host-key algorithms exactly as ``ssh -G HOST``
resolves them (plus what the inventory adds), and which file each value came from.
JSON keys (stable): ``name``, ``local``, ``hostname``, ``port``, ``user``, ``identityfile``
(list), ``proxyjump``, ``known_hosts`` (list, = ``userknownhostsfile``),
``userknownhostsfile``, ``globalknownhostsfile``, ``hostkeyalgorithms`` (lists),
``hostkeyalias``, ``checkhostip``, ``groups`` (list), ``source``, ``sources`` (key -> where
it was set: ``file:line`` of the ssh config or the inventory file).
"""

from __future__ import annotations

from typing import Any

import click

from opskit.cli.common import inventory_option, json_option, traceback_option


@click.group("hosts")
def hosts() -> None:
    """List, show and trust hosts from ~/.ssh/config and the inventory."""


def _host_dict(inv: Any, spec: Any) -> dict:
    data = spec.to_dict()
    data["groups"] = sorted(g for g, members in inv.groups.items() if spec.name in members)
    data["source"] = (
        "local" if spec.local else "inventory" if spec.name in inv.hosts else "ssh_config"
    )
    return data


@hosts.command("list")
@inventory_option
@json_option
@traceback_option
def list_hosts(inventory: str | None, as_json: bool) -> None:
    """Hosts of the inventory and ssh config, and the groups.

    Lists inventory hosts and the literal Host names of the ssh config. --json:
    {"hosts": [HOST...], "groups": {name: [members]}, "inventory": path, "errors": {}},
    HOST as in 'opskit hosts show --json'. Exit 1 if a host cannot be resolved.
    """
    from opskit.cli import render
    from opskit.hosts.inventory import load_inventory

    inv = load_inventory(inventory)
    rows, errors = [], {}
    members = [m for group in inv.groups.values() for m in group]
    for name in dict.fromkeys([*inv.known_names(), *members]):  # a group may name a stranger
        try:
            rows.append(_host_dict(inv, inv.resolve(name)))
        except Exception as exc:  # noqa: BLE001 - reported per host below
            errors[name] = exc
    if as_json:
        render.print_json({
            "hosts": rows,
            "groups": {g: list(m) for g, m in sorted(inv.groups.items())},
            "inventory": inv.path,
            "errors": {n: render.error_dict(e) for n, e in errors.items()},
        })
    else:
        render.print_table(
            ["NAME", "HOSTNAME", "PORT", "USER", "IDENTITYFILE", "PROXYJUMP", "GROUPS"],
            [[r["name"], r["hostname"], r["port"], r["user"], ", ".join(r["identityfile"]),
              r["proxyjump"] or "-", ", ".join("@" + g for g in r["groups"]) or "-"]
             for r in rows],
        )
        if not rows:
            render.print_line(
                f"no hosts (inventory: {inv.path or 'none found'}; ssh config: "
                f"{inv.ssh_config_path or '~/.ssh/config'})"
            )
        for name, exc in errors.items():
            render.print_host_error(name, exc)
    if errors:
        raise click.exceptions.Exit(1)


@hosts.command("show")
@click.argument("host")
@inventory_option
@json_option
@traceback_option
def show(host: str, inventory: str | None, as_json: bool) -> None:
    """How HOST is reached (as ssh -G resolves it, plus the inventory).

    --json keys: name, local, hostname, port, user, identityfile (list), proxyjump,
    known_hosts (list), userknownhostsfile, globalknownhostsfile, hostkeyalgorithms (lists),
    hostkeyalias, checkhostip, groups (list), source (inventory, ssh_config or local),
    sources (key -> the file and line that set it), known_hosts_skipped (known_hosts lines
    that do not parse, named, skipped as ssh skips them).
    """
    from opskit.cli import render
    from opskit.hosts.inventory import load_inventory
    from opskit.hosts.knownhosts import load_for

    inv = load_inventory(inventory)
    spec = inv.resolve(host)
    data = _host_dict(inv, spec)
    data["known_hosts_skipped"] = [] if spec.local else list(load_for(spec).skipped)
    if as_json:
        render.print_json(data)
        return
    sources = {**data["sources"], "known_hosts": data["sources"].get("known_hosts")}
    for key in ("name", "source", "hostname", "port", "user", "identityfile", "proxyjump",
                "known_hosts", "globalknownhostsfile", "hostkeyalias", "groups"):
        value = data[key]
        if isinstance(value, list):
            value = " ".join(value) or "-"
        where = sources.get({"globalknownhostsfile": "global_known_hosts",
                             "hostkeyalias": "hostkey_alias"}.get(key, key))
        note = f"   (from {where})" if where else ""
        render.print_line(f"{key:<20} {'-' if value is None else value}{note}")
    for problem in data["known_hosts_skipped"]:
        render.print_line(f"{'skipped':<20} {problem}")


@hosts.command("trust")
@click.argument("host")
@click.option("--yes", "-y", is_flag=True, help="Pin the key without asking.")
@click.option("--fingerprint", "expected", metavar="SHA256:...",
              help="Pin only if the host's key has this fingerprint (no question asked).")
@inventory_option
@json_option
@traceback_option
def trust(host: str, yes: bool, expected: str | None, inventory: str | None, as_json: bool) -> None:
    """Show HOST's key and pin it in known_hosts.

    Connects without logging in, shows the key type and SHA256 fingerprint, and asks.
    A key that differs from one already pinned is always refused. --json keys: host,
    entry, type, fingerprint, state (pinned or already pinned), known_hosts.
    """
    from opskit.cli import render
    from opskit.errors import HostKeyError, UsageError
    from opskit.hosts import hostkeys
    from opskit.hosts.inventory import load_inventory

    spec = load_inventory(inventory).resolve(host)
    if spec.local:
        raise UsageError(f"{host} is this machine (local transport): there is no key to trust")
    scanned = hostkeys.scan(spec)
    if hostkeys.check_not_changed(spec, scanned):
        _trust_report(render, as_json, scanned, None, "already pinned")
        return
    if expected is not None:
        if hostkeys.normalise_fingerprint(expected) != scanned.fingerprint:
            raise HostKeyError(
                spec.name,
                f"{scanned.entry} shows {scanned.key_type} {scanned.fingerprint}, not {expected}; "
                "nothing was pinned",
                "check the fingerprint with the host's owner (ssh-keygen -lf on the host)",
            )
    elif not yes:
        render.print_line(f"{scanned.entry} shows a {scanned.key_type} key", err=True)
        render.print_line(f"fingerprint: {scanned.fingerprint}", err=True)
        if not _ask_to_pin(spec.name, scanned):
            raise UsageError("nothing was pinned", "run again and answer y, or pass --fingerprint")
    path = hostkeys.trust(spec, scanned)
    _trust_report(render, as_json, scanned, path, "pinned")


def _ask_to_pin(name: str, scanned: Any) -> bool:
    """Ask on the terminal. Stdin at its end (no terminal, `< /dev/null`, a CI job) is a
    usage error that says how to pin without asking, not click's bare "Aborted." (exit 130)."""
    import sys

    from opskit.errors import UsageError

    try:
        return click.confirm("Pin this key in known_hosts?", default=False, err=True)
    except click.Abort:
        if sys.stdin is not None and sys.stdin.isatty():
            raise  # Ctrl-C at the question: click's own abort
        raise UsageError(
            f"{name}: no answer to 'Pin this key?' (stdin is not a terminal): nothing was pinned",
            f"check the fingerprint with the host's owner, then run 'opskit hosts trust {name} "
            f"--fingerprint {scanned.fingerprint}' (or --yes)",
        ) from None


def _trust_report(render: Any, as_json: bool, scanned: Any, path: str | None, state: str) -> None:
    if as_json:
        render.print_json({**scanned.to_dict(), "state": state, "known_hosts": path})
    else:
        where = f" in {path}" if path else ""
        render.print_line(f"{state}: {scanned.entry} {scanned.key_type} {scanned.fingerprint}{where}")
