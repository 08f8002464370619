"""User recipes in every valid COPY/ADD form, built for real (field case images-train/05).

examples/tiny is built with the offline recipe changed in one line per case: JSON-form COPY, a
glob, ADD of a URL (served on 127.0.0.1 by a server this test starts and stops) and line
continuations with ARG before FROM. The deps image and lower layers come from the engine's
cache (the same as tests/integration/test_build.py), so each build costs a few seconds.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opskit.images.build import BuildRequest, build_image
from opskit.images.recipes import read_recipe

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tiny"
LINES = {
    "json": ('COPY ./src /app/src', 'COPY ["src", "/app/src"]\nCOPY ["configs", "/app/cfg"]'),
    "glob": ('COPY ./test /app/test', 'COPY ./test /app/test\nCOPY configs/*.yaml /app/globbed/'),
    "addurl": ('COPY ./test /app/test', 'COPY ./test /app/test\nADD {url} /app/labels.txt'),
    "continuation": ('COPY ./src /app/src', 'COPY ./src \\\n     /app/src\nCOPY \\\n configs '
                                             '/app/cfg'),
}
EXPECTED = {"json": "/app/cfg/a.yaml", "glob": "/app/globbed/a.yaml",
            "addurl": "/app/labels.txt", "continuation": "/app/cfg/a.yaml"}


@pytest.fixture(scope="module")
def labels_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    www = tmp_path_factory.mktemp("www")
    (www / "labels.txt").write_text("cat\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/labels.txt"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("proj") / "tiny"
    shutil.copytree(EXAMPLE, root)
    (root / "configs").mkdir()
    (root / "configs" / "a.yaml").write_text("a: 1\n")
    return root


@pytest.mark.parametrize("form", sorted(LINES))
def test_recipe_form_builds(form: str, project: Path, labels_url: str, docker_client: Any,
                            base_image: str, tmp_path: Path) -> None:
    _, text = read_recipe("offline.Dockerfile")
    old, new = LINES[form]
    assert old in text
    recipe = tmp_path / f"{form}.Dockerfile"
    recipe.write_text(text.replace(old, new.format(url=labels_url), 1))
    tag = f"opskit-recipetest-{form}:{uuid.uuid4().hex[:8]}"
    try:
        build_image(BuildRequest(project=str(project), recipe=str(recipe), tag=tag,
                                 base=base_image), client=docker_client)
        out = docker_client.containers.run(tag, ["-c", "find /app -type f | sort"],
                                           entrypoint="sh", remove=True, network_disabled=True)
        files = out.decode().split()
        assert EXPECTED[form] in files and "/app/src/tinyproj/model.py" in files
    finally:
        docker_client.images.remove(tag, force=True) if _exists(docker_client, tag) else None


def _exists(client: Any, tag: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(tag)
    except ImageNotFound:
        return False
    return True
