"""Recipes read with Docker's own parser: every valid form passes; BuildKit-only syntax is
refused up front (field case images-train/05)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opskit.errors import UsageError
from opskit.images import recipes
from opskit.images.build import BuildRequest, plan_build
from opskit.images.recipefile import buildkit_only, check_classic_builder, parse, source_present

HEAD = ("ARG BASE_IMAGE=opskit-base:bookworm\nARG DEPS_IMAGE=opskit-deps:missing\n"
        "FROM ${DEPS_IMAGE} AS deps\nFROM ${BASE_IMAGE}\nCOPY --from=deps /opt/venv /opt/venv\n"
        "COPY .opskit-build/runtime /opt/opskit\nWORKDIR /app\n")
FORMS = {
    "json": 'COPY ["src", "/app/src"]\nCOPY ["test", "/app/test"]\n',
    "glob": "COPY ./src /app/src\nCOPY ./test /app/test\nCOPY configs/*.yaml /app/configs/\n",
    "addurl": "COPY ./src /app/src\nCOPY ./test /app/test\nADD http://127.0.0.1:9/l.txt /app/\n",
    "continuation": "COPY ./src \\\n     /app/src\nCOPY ./test \\\n  /app/test\n",
    "escape": "COPY ./src `\n  /app/src\nCOPY ./test /app/test\n",
    "chown": "COPY --chown=1000:1000 ./src /app/src\nCOPY [\"./test/\", \"/app/test/\"]\n",
}


def _project(root: Path) -> Path:
    for rel in ("src/train.py", "test/t.py", "configs/base.yaml"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    return root


@pytest.mark.parametrize("form", sorted(FORMS))
def test_valid_forms_are_planned(tmp_path: Path, form: str) -> None:
    text = HEAD + FORMS[form]
    if form == "escape":
        text = "# escape=`\n" + text
    recipe = tmp_path / "r.Dockerfile"
    recipe.write_text(text)
    plan = plan_build(BuildRequest(project=str(_project(tmp_path / "p")), recipe=str(recipe)))
    assert plan.recipe_text == text


def test_sources_of_every_form() -> None:
    text = HEAD + FORMS["json"] + FORMS["glob"] + FORMS["addurl"] + FORMS["continuation"]
    assert recipes.copy_sources(text) == ["src", "test", "src", "test", "configs/*.yaml",
                                          "src", "test", "src", "test"]


def test_a_glob_without_match_or_a_missing_json_source_is_named(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    recipe = tmp_path / "r.Dockerfile"
    recipe.write_text(HEAD + FORMS["json"] + 'COPY ["data", "/d"]\nCOPY conf/*.yml /c/\n')
    with pytest.raises(UsageError, match=r"lacks data/, a match for conf/\*\.yml"):
        plan_build(BuildRequest(project=str(root), recipe=str(recipe)))


def test_glob_matching() -> None:
    names = {"configs/base.yaml", "configs/sub/x.yaml", "a.py"}
    assert source_present("configs/*.yaml", names)
    assert not source_present("*.yaml", names)  # '*' does not cross '/'
    assert source_present("configs/*", names) and source_present("?.py", names)


def test_heredoc_is_refused_up_front_saying_why(tmp_path: Path) -> None:
    recipe = tmp_path / "r.Dockerfile"
    recipe.write_text(HEAD + FORMS["json"] + "COPY <<EOF /app/config.ini\n[a]\nx=1\nEOF\n")
    with pytest.raises(UsageError, match="needs BuildKit") as err:
        plan_build(BuildRequest(project=str(_project(tmp_path / "p")), recipe=str(recipe)))
    assert "line 10: a heredoc (COPY <<...)" in err.value.message
    assert "rewrite those lines" in (err.value.hint or "")


def test_buildkit_flags_are_listed() -> None:
    text = ("FROM x\nRUN --mount=type=secret,id=t cat /run/secrets/t\nRUN --network=none true\n"
            "COPY --chmod=755 a /a\nCOPY --link b /b\nADD --checksum=sha256:00 http://x/y /y\n"
            "COPY --from=x --chown=1 /c /c\nFROM --platform=linux/amd64 y\n")
    assert buildkit_only(parse(text)) == [
        "line 2: RUN --mount", "line 3: RUN --network", "line 4: COPY --chmod",
        "line 5: COPY --link", "line 6: ADD --checksum"]


def test_hint_names_buildx_where_the_machine_has_it() -> None:
    with pytest.raises(UsageError) as err:
        check_classic_builder(parse("FROM x\nRUN --mount=type=cache,target=/c true\n"), "r",
                              lambda: True)
    assert "docker buildx build" in (err.value.hint or "")


def test_unparsable_recipe_names_the_problem(tmp_path: Path) -> None:
    recipe = tmp_path / "r.Dockerfile"
    recipe.write_text("FROM x\nCOPY <<EOF /a\nno end\n")
    with pytest.raises(UsageError):
        plan_build(BuildRequest(project=str(_project(tmp_path / "p")), recipe=str(recipe)))
