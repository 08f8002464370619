"""`opskit image layers` against the real engine: sizes agree with `docker history`.

Builds opskit's default training image (the one remote training uses) under a test tag; it
shares the deps image and the venv layer with every other offline build here, so it costs
seconds once those exist.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from opskit.images.build import BuildRequest, build_image
from opskit.images.layers import compare, docker_size, image_layers
from opskit.testing.engine import require_tool, skip_unless_ci

TAG = "opskit-buildtest-default:it"


@pytest.fixture(scope="module")
def default_image(docker_client: Any, base_image: str) -> Any:
    return build_image(BuildRequest(tag=TAG, base=base_image), client=docker_client)


def test_default_image_runs_the_training_entry(default_image: Any, docker_client: Any) -> None:
    out = docker_client.containers.run(TAG, ["--list"], remove=True, network_disabled=True)
    assert b"resnet18" in out and b"classification" in out
    assert default_image.labels["org.opskit.profile"] == "offline"


def test_layers_agree_with_the_docker_history_api(default_image: Any, docker_client: Any) -> None:
    info = image_layers(docker_client, TAG)
    history = docker_client.api.history(TAG)[::-1]
    assert [layer.size for layer in info.layers] == [h["Size"] for h in history]
    assert [layer.created_by for layer in info.layers] == [h["CreatedBy"] for h in history]
    assert sum(layer.size for layer in info.layers) == info.size
    assert [layer.diff_id for layer in info.layers if layer.diff_id] == list(info.diff_ids)
    assert list(info.diff_ids) == docker_client.api.inspect_image(TAG)["RootFS"]["Layers"]


def test_layers_agree_with_the_docker_history_cli(default_image: Any, docker_client: Any) -> None:
    docker = require_tool("docker", "docker.io")
    proc = subprocess.run([docker, "history", "--no-trunc", "--format", "{{json .}}", TAG],
                          capture_output=True, text=True, check=True, timeout=60)
    rows = [json.loads(line) for line in proc.stdout.splitlines()][::-1]
    info = image_layers(docker_client, TAG)
    assert len(rows) == len(info.layers)
    for row, layer in zip(rows, info.layers, strict=True):
        assert row["Size"] == docker_size(layer.size), (row, layer)
        assert row["CreatedBy"] == layer.created_by
        if layer.history_id:
            assert row["ID"] == layer.history_id


def test_cli_layers_and_compare(
    default_image: Any, docker_client: Any, base_image: str, opskit_cli: Any
) -> None:
    one = opskit_cli("image", "layers", TAG, "--json")
    assert one.returncode == 0, one.stderr
    data = json.loads(one.stdout)
    assert data["image_id"] == default_image.image_id
    assert [x["size"] for x in data["layers"]] == [h["Size"] for h in docker_client.api.history(TAG)[::-1]]

    both = opskit_cli("image", "layers", TAG, "--compare", base_image, "--json")
    assert both.returncode == 0, both.stderr
    cmp = json.loads(both.stdout)
    base_layers = docker_client.api.inspect_image(base_image)["RootFS"]["Layers"]
    assert cmp["shared_layers"] == len(base_layers)
    assert cmp["only_other_bytes"] == 0
    assert cmp["only_image_bytes"] == default_image.size - docker_client.images.get(base_image).attrs["Size"]
    assert cmp["differing_bytes"] == cmp["only_image_bytes"]

    table = opskit_cli("image", "layers", TAG, "--compare", base_image)
    assert table.returncode == 0 and "shared: 1 layers" in table.stdout


def test_two_builds_share_everything_below_the_code(default_image: Any, docker_client: Any) -> None:
    project_image = docker_client.images.list(name="opskit-buildtest-tiny")
    if not project_image:
        skip_unless_ci("needs the image of tests/integration/test_build.py")
    cmp = compare(image_layers(docker_client, TAG), image_layers(docker_client, "opskit-buildtest-tiny:it"))
    # base + venv are shared; the runtime layer differs (the default image's runtime is its src).
    assert cmp.shared >= 2
    assert cmp.shared_bytes > 800 * 1000 * 1000
    assert cmp.only_image_bytes < 2 * 1000 * 1000 and cmp.only_other_bytes < 2 * 1000 * 1000


def test_unknown_image_is_a_usage_error(opskit_cli: Any) -> None:
    proc = opskit_cli("image", "layers", "opskit-no-such:image")
    assert proc.returncode == 2 and "is not on this engine" in proc.stderr
