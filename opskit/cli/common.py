"""Options every command shares, and the way host names become transports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def traceback_option(f: F) -> F:
    # Read by the error boundary in opskit.cli.main (it looks at argv); accepted anywhere.
    return click.option(
        "--traceback", is_flag=True, expose_value=False, help="Show the full stack on errors."
    )(f)


def _remember_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:  # the error boundary then prints errors as JSON too
        from opskit.cli.render import set_json_output

        set_json_output(True)
    return value


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, callback=_remember_json,
                        help="Print JSON on stdout (stable keys; errors too).")(f)


def inventory_option(f: F) -> F:
    return click.option(
        "--inventory",
        type=click.Path(dir_okay=False),
        default=None,
        help="Inventory file (default: $OPSKIT_INVENTORY, the settings file's 'inventory', "
        "./opskit.yaml, ./hosts.yaml, ~/.config/opskit/hosts.yaml).",
    )(f)


def host_option(f: F) -> F:
    """--host/-H (repeatable) and --inventory."""
    f = inventory_option(f)
    return click.option(
        "--host",
        "-H",
        "hosts",
        multiple=True,
        metavar="HOST",
        help="Host name or @group (repeatable). Default: this machine.",
    )(f)


def common_options(f: F) -> F:
    """--host/--inventory, --json and --traceback."""
    return host_option(json_option(traceback_option(f)))


def resolve_hosts(hosts: tuple[str, ...] | list[str], inventory: str | None = None) -> list[Any]:
    """Host names and @groups -> HostSpecs (no network). Default: this machine."""
    from opskit.hosts.inventory import load_inventory

    inv = load_inventory(inventory)
    return inv.expand(list(hosts) or ["localhost"])
