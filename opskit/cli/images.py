"""``opskit base bootstrap``, ``opskit build`` and ``opskit image layers``.

Thin commands: parse -> call :mod:`opskit.images` -> render. docker-py and rich are imported
inside the commands, so ``opskit --help`` stays light.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from opskit.cli import render
from opskit.cli.common import host_option, json_option, traceback_option

PROFILES = ("gpu", "cpu", "offline")  # opskit.images.recipes.PROFILES (not imported for --help)


# ---------------------------------------------------------------- opskit base bootstrap
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def base() -> None:
    """Make the offline base image (debootstrap from this host's apt mirror, no registry)."""


@base.command("bootstrap")
@click.option("--suite", default="bookworm", show_default=True, help="Debian suite.")
@click.option("--tag", default=None, help="Image tag (default: opskit-base:SUITE).")
@click.option("--mirror", default=None, help="Debian mirror URL (default: this host's apt source).")
@click.option("--from-rootfs", "from_rootfs", type=click.Path(dir_okay=False), default=None,
              metavar="TAR", help="Import this root filesystem archive instead of debootstrap.")
@click.option("--force", is_flag=True, help="Make the image again even if the tag exists.")
@json_option
@traceback_option
def bootstrap_cmd(suite: str, tag: str | None, mirror: str | None, from_rootfs: str | None,
                  force: bool, as_json: bool) -> None:
    """Build a minimal Debian image with Python 3 (or import --from-rootfs TAR).

    Idempotent: an existing tag is reused unless --force. Every other image opskit builds on
    machines without a registry starts from it (opskit build --profile offline).
    """
    from opskit.hosts.engine import local_docker_client
    from opskit.images.base import BaseRequest, bootstrap

    client = local_docker_client()
    result = bootstrap(client, BaseRequest(
        suite=suite, tag=tag, mirror=mirror, from_rootfs=from_rootfs, force=force,
        log=(lambda line: None) if as_json else (lambda line: render.print_line(line, err=True)),
    ))
    if as_json:
        render.print_json(result.to_dict())
        return
    what = "reused (--force makes it again)" if result.reused else "made"
    render.print_table(
        ["tag", "image id", "size", "source", "result"],
        [[result.tag, result.image_id.removeprefix("sha256:")[:12],
          render.human_bytes(result.size), result.source, what]],
    )


# ---------------------------------------------------------------- opskit build
def _parse_build_args(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--build-arg")
        out[key] = val
    return out


class BuildView:
    """Renders build events: one line per finished step, a spinner on the running one (tty)."""

    def __init__(self, *, show_output: bool = True):
        self.console = render.console(stderr=True)
        self.live = sys.stderr.isatty()
        self.show_output = show_output
        self._status: Any = None

    def __call__(self, event: Any) -> None:
        kind = event.kind
        if kind == "step_started":
            self._spin(f"[{event.index}/{event.total}] {event.instruction[:90]}")
        elif kind == "step_output":
            if self._status is not None:
                self._status.update(f"[{event.index}] {event.line[:100]}")
            elif self.show_output:
                self._line(f"      | {event.line}")
        elif kind == "step_done":
            self.stop()
            if event.status != "meta":
                from opskit.images.layers import short_instruction

                mark = {"cached": "cached", "built": "built ", "from": "from  "}[event.status]
                self._line(f"  {event.build:5} [{event.index:>2}/{event.total}] {mark} "
                           f"{event.seconds:6.2f}s  {short_instruction(event.instruction, 48)}")
        elif kind in ("phase_started", "phase_done", "warning", "build_failed"):
            self.stop()
            self._phase(event)

    def _phase(self, event: Any) -> None:
        kind = event.kind
        if kind == "phase_started":
            self._line(f"> {event.phase}: {event.detail}")
        elif kind == "warning":
            self._line(f"warning: {event.message}")
        elif kind == "build_failed":
            self._line(f"! {event.build} build failed at step {event.index}: {event.instruction}")
        elif event.phase == "context":
            d = event.detail
            self._line(f"  context: {render.human_bytes(d['bytes'])}, {d['files']} files, "
                       f"sources sha256 {d['source_sha256'][:12]}")
        elif event.phase in ("deps", "wheelhouse") and event.reused:
            self._line(f"  {event.phase}: reused ({event.seconds:.2f}s)")
        elif event.phase != "image":
            self._line(f"  {event.phase}: done in {event.seconds:.1f}s")

    def _line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def _spin(self, text: str) -> None:
        if not self.live:
            return
        if self._status is None:
            self._status = self.console.status(text)
            self._status.start()
        else:
            self._status.update(text)

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def _print_build_result(result: Any) -> None:
    from opskit.images.layers import docker_size, short_instruction

    rows = [[row["index"], short_instruction(row["instruction"], 44), docker_size(row["size"]),
             row["status"], row["role"]] for row in result.layer_rows()]
    render.print_table(["#", "instruction", "size", "layer", "role"], rows,
                       justify={"#": "right", "size": "right"},
                       title=f"{result.tag}  ({result.image_id.removeprefix('sha256:')[:12]})")
    built = len(result.built_steps)
    render.print_line(
        f"image size {docker_size(result.size)}; this build added {docker_size(result.added_bytes)} "
        f"({built} step{'s' if built != 1 else ''} built); context "
        f"{render.human_bytes(result.context['bytes'])}; {result.seconds:.2f}s"
    )


@click.command()
@click.argument("project", required=False, type=click.Path(file_okay=False))
@click.option("--profile", type=click.Choice(PROFILES), default="offline", show_default=True,
              help="Recipe: gpu (CUDA base), cpu, offline (base from 'opskit base bootstrap').")
@click.option("--base", "base_image", default=None, metavar="IMAGE",
              help="Base image instead of the profile's.")
@click.option("--tag", "-t", default=None,
              help="Image tag (default: opskit-train:PROFILE, or opskit-train-PROJECT:PROFILE).")
@click.option("--build-arg", "build_args", multiple=True, metavar="K=V",
              help="Build argument (repeatable), e.g. SYSTEM_PACKAGES='git'. Never secrets.")
@click.option("--no-cache", is_flag=True, help="Reuse no layer (the deps image is made again).")
@click.option("--recipe", type=click.Path(dir_okay=False), default=None, metavar="DOCKERFILE",
              help="A Dockerfile to use instead of the profile's (same build arguments).")
@click.option("--allow-secret", "allow_secrets", multiple=True, metavar="PATTERN",
              help="Let secret-looking files matching PATTERN (.dockerignore syntax) into the "
                   "context on purpose (repeatable); without it such files stop the build.")
@json_option
@traceback_option
def build(project: str | None, profile: str, base_image: str | None, tag: str | None,
          build_args: tuple[str, ...], no_cache: bool, recipe: str | None,
          allow_secrets: tuple[str, ...], as_json: bool) -> None:
    """Build a layered training image for PROJECT (default: opskit's own training runtime).

    Layers go base -> system packages -> Python deps -> WORKDIR /app -> src -> test ->
    ENTRYPOINT (python -m opskit.train), so a change in src/ rebuilds only the code layers.
    Python dependencies come from a wheelhouse fetched on this host and installed with no
    network; no wheel bytes stay in the image. --json prints one event per line.
    """
    from opskit.images.build import BuildRequest, build_image

    request = BuildRequest(project=project, profile=profile, base=base_image, tag=tag,
                           build_args=_parse_build_args(build_args), no_cache=no_cache,
                           recipe=recipe, allow_secrets=allow_secrets)
    if as_json:
        result = build_image(request, on_event=lambda e: render.print_json_line(e.to_dict()))
        render.print_json_line({"event": "result", **result.to_dict()})
        return
    view = BuildView()
    try:
        result = build_image(request, on_event=view)
    finally:
        view.stop()
    _print_build_result(result)


# ---------------------------------------------------------------- opskit image layers
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def image() -> None:
    """Inspect images: layers, sizes, what two images share."""


def _layer_rows(layers: Any, mark: dict[int, str] | None = None) -> list[list[Any]]:
    from opskit.images.layers import docker_size, short_instruction

    rows = []
    for layer in layers:
        digest = (layer.diff_id or "-").removeprefix("sha256:")[:12]
        row = [layer.index, short_instruction(layer.instruction), docker_size(layer.size),
               layer.size, digest]
        if mark is not None:
            row.append(mark.get(layer.index, "-"))
        rows.append(row)
    return rows


def _layers_on_hosts(client: Any, image_ref: str, hosts: tuple[str, ...], inventory: str | None,
                     html_out: str | None, as_json: bool, other: str | None) -> int:
    from opskit.cli.common import resolve_hosts
    from opskit.errors import UsageError
    from opskit.images import ship as shipmod

    specs = resolve_hosts(hosts, inventory)
    if len(specs) != 2 or other:
        raise UsageError("--host compares what two hosts hold: give exactly two hosts, without --compare")
    img, plans = shipmod.plan_only(image_ref, client, specs)
    code = render.report_group_errors(plans)
    ok = [o.value for o in plans if o.ok]
    if as_json:
        render.print_json(render.group_json(plans, lambda p: p.to_dict()))
    for p in ok:
        render.print_line(f"{p.host}: holds {len(img.layers) - len(p.send)} of {len(img.layers)} layers of "
                          f"{image_ref}, lacks {render.human_bytes(p.send_bytes)}", err=as_json)
    if html_out and len(ok) == 2:  # opskit.reports.fleet: the Venn diagram of held layers
        from opskit.reports.fleet import write_hosts_layers_html

        render.print_line(f"wrote {write_hosts_layers_html(img, ok, html_out)}", err=True)
    return code


@image.command("layers")
@click.argument("image_ref", metavar="IMAGE")
@click.option("--compare", "other", default=None, metavar="OTHER",
              help="Another image: which layers both share, and how many bytes differ.")
@click.option("--html", "html_out", default=None, type=click.Path(dir_okay=False),
              help="With --compare, or two --host: also write a page with a Venn diagram of the shared layers.")
@host_option
@json_option
@traceback_option
def layers_cmd(image_ref: str, other: str | None, as_json: bool, html_out: str | None,
               hosts: tuple[str, ...], inventory: str | None) -> int | None:
    """The layers of IMAGE: instruction, size (as docker history) and digest (diff_id)."""
    from opskit.hosts.engine import local_docker_client
    from opskit.images.layers import compare, docker_size, image_layers

    client = local_docker_client()
    if hosts:  # which of IMAGE's layers two hosts already hold
        return _layers_on_hosts(client, image_ref, hosts, inventory, html_out, as_json, other)
    mine = image_layers(client, image_ref)
    if other is None:
        if html_out:
            from opskit.errors import UsageError

            raise UsageError("--html draws what two images share: give --compare OTHER too")
        if as_json:
            render.print_json(mine.to_dict())
            return
        render.print_table(["#", "instruction", "size", "bytes", "diff_id"], _layer_rows(mine.layers),
                           justify={"#": "right", "size": "right", "bytes": "right"},
                           title=f"{image_ref}  {docker_size(mine.size)}")
        render.print_line(f"image ID {mine.image_id.removeprefix('sha256:')[:12]}: {mine.id_is}; diff_id: "
                          "the layer's own digest, the same on every engine and store")
        return
    cmp = compare(mine, image_layers(client, other))
    if html_out:  # opskit.reports.fleet: the Venn diagram of shared layers
        from opskit.reports.fleet import write_layers_html

        render.print_line(f"wrote {write_layers_html(cmp, image_ref, other, html_out)}", err=True)
    if as_json:
        render.print_json(cmp.to_dict())
        return
    for name, img, only in ((image_ref, mine, cmp.only_image), (other, cmp.other, cmp.only_other)):
        only_ids = {x.index for x in only}
        mark = {x.index: ("only here" if x.index in only_ids else "shared")
                for x in img.layers if x.diff_id}
        render.print_table(["#", "instruction", "size", "bytes", "diff_id", "layer"],
                           _layer_rows(img.layers, mark),
                           justify={"#": "right", "size": "right", "bytes": "right"},
                           title=f"{name}  {docker_size(img.size)}")
    render.print_line(
        f"shared: {cmp.shared} layers, {docker_size(cmp.shared_bytes)}; only in {image_ref}: "
        f"{len(cmp.only_image)} layers, {docker_size(cmp.only_image_bytes)}; only in {other}: "
        f"{len(cmp.only_other)} layers, {docker_size(cmp.only_other_bytes)}; bytes that differ: "
        f"{docker_size(cmp.only_image_bytes + cmp.only_other_bytes)} "
        f"({cmp.only_image_bytes + cmp.only_other_bytes} B)"
    )
