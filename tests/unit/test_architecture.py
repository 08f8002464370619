"""The house rules, read from the source (AST, nothing imported):

- no import cycles between opskit's modules (type hints included: a cycle that exists only for
  a type hint is still one module knowing the other's insides);
- ``opskit.train`` and ``opskit.models`` (they run inside the image, on torch and the stdlib)
  never import the ops side (hosts, checks, images, jobs, cli, ...);
- ``opskit.cli`` is the only place that prints (``print``, ``sys.stdout/stderr.write``,
  ``click.echo``, a rich ``Console``); the training entry (``opskit.train``, the image's own
  program) and the test fixtures (``opskit.testing``) print their own output.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "opskit"


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imported(name: str, path: Path, *, top_level_only: bool) -> set[str]:
    """opskit modules that ``name`` imports (the module itself for ``from pkg import mod``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = ast.walk(tree) if not top_level_only else _top_level(tree)
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("opskit"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([node.module] if node.module else []))
            if base.startswith("opskit"):
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
    return found


def _top_level(tree: ast.Module):
    """Statements run at import (and under ``if TYPE_CHECKING``), not inside functions."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                stack.extend(getattr(node, field, []) or [])
        elif isinstance(node, ast.ExceptHandler):
            stack.extend(node.body)


def test_no_import_cycles() -> None:
    mods = modules()
    graph = {m: {d for d in imported(m, p, top_level_only=True) if d in mods and d != m}
             for m, p in mods.items()}
    for m in list(graph):  # importing a.b.c runs a/__init__ and a/b/__init__ first: not a cycle
        graph[m] -= {p for p in graph[m] if m.startswith(p + ".")}
    cycles = _cycles(graph)
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


IN_IMAGE = ("opskit.train", "opskit.models")
# What the in-image side may import of opskit besides itself (the version, stdlib helpers).
IN_IMAGE_MAY_USE = {"opskit", "opskit.atomic"}


def test_train_and_models_never_import_the_ops_side() -> None:
    bad = []
    for name, path in modules().items():
        if not name.startswith(IN_IMAGE):
            continue
        for dep in imported(name, path, top_level_only=False):
            if not dep.startswith(IN_IMAGE) and dep not in IN_IMAGE_MAY_USE:
                bad.append(f"{name} imports {dep}")
    assert bad == [], bad


PRINTS_ALLOWED = ("opskit.cli", "opskit.train", "opskit.testing", "opskit.__main__")


def printing_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        text = ast.unparse(f)
        if (isinstance(f, ast.Name) and f.id == "print") or text in (
            "sys.stdout.write", "sys.stderr.write", "click.echo", "click.secho", "Console",
            "rich.console.Console", "sys.stdout.flush",
        ):
            found.append(f"{text} at line {node.lineno}")
    return found


def test_only_cli_prints() -> None:
    bad = []
    for name, path in modules().items():
        if name.startswith(PRINTS_ALLOWED):
            continue
        bad.extend(f"{name}: {call}" for call in printing_calls(path))
    assert bad == [], bad


def test_the_checks_see_what_they_look_for() -> None:
    """The AST readers find a real cycle, an ops import and a print (no silent pass)."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    cli_render = modules()["opskit.cli.render"]
    assert any("sys.stdout.write" in c for c in printing_calls(cli_render))
    runner = modules()["opskit.jobs.runner"]
    assert "opskit.images.ship" in imported("opskit.jobs.runner", runner, top_level_only=True)


def test_test_file_names_are_unique_across_folders():
    """tests/ has no packages: pytest imports each test file by its base name (rootdir
    "rootdir/conftest" import mode), so two test_x.py in tests/unit and tests/integration stop the
    whole run at collection ("import file mismatch")."""
    tests = Path(__file__).resolve().parents[1]
    seen: dict[str, Path] = {}
    twice = []
    for path in sorted(tests.rglob("test_*.py")):
        if path.name in seen:
            twice.append(f"{seen[path.name].relative_to(tests)} and {path.relative_to(tests)}")
        seen.setdefault(path.name, path)
    assert twice == [], "test files sharing a base name: " + "; ".join(twice)
