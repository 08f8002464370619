"""A safe evaluator for ``when:``, ``assert:`` and ``{{ ... }}``: Python's expression syntax,
parsed with :mod:`ast` and walked here, never ``eval``.

Allowed: literals, names (facts, vars, registered results, ``item``), ``a.b`` and ``a["b"]``
on mappings (keys starting with ``_`` refused), ``a[0]`` on lists, ``and``/``or``/``not``,
comparisons (``in`` too), ``+ - * / // %`` on numbers (``+`` on strings and lists), ``x if c
else y``, lists, and a few functions: ``len int float str min max sum any all abs round lower
strip split range version``. ``version("12.4") >= version("12.1")`` compares dotted versions numerically.
An unknown name is an error naming it and the names that exist (``names(expr)`` lists the
names an expression reads, so a playbook can be checked before it runs).
"""

from __future__ import annotations

import ast
import difflib
import operator
import re
from collections.abc import Mapping
from functools import total_ordering
from typing import Any

MAX_EXPR = 2000
MAX_SEQ = 100_000


class ExprError(Exception):
    """An expression that does not parse or cannot be evaluated (the message says why)."""


@total_ordering
class Version:
    """A dotted version compared part by part as numbers (``12.10 > 12.9``)."""

    def __init__(self, text: Any):
        self.text = str(text)
        self.parts = tuple(int(p) for p in re.findall(r"\d+", self.text))
        if not self.parts:
            raise ExprError(f"version({self.text!r}): no number in it")

    def _pad(self, other: Version) -> tuple[tuple[int, ...], tuple[int, ...]]:
        n = max(len(self.parts), len(other.parts))
        return self.parts + (0,) * (n - len(self.parts)), other.parts + (0,) * (n - len(other.parts))

    def __eq__(self, other: object) -> bool:
        other = _as_version(other)
        a, b = self._pad(other)
        return a == b

    def __lt__(self, other: object) -> bool:
        other = _as_version(other)
        a, b = self._pad(other)
        return a < b

    def __hash__(self) -> int:
        return hash(self.parts)

    def __repr__(self) -> str:
        return f"version({self.text!r})"


def _as_version(value: object) -> Version:
    return value if isinstance(value, Version) else Version(value)


def _version(value: Any) -> Version:
    if value is None:
        raise ExprError("version(None): the fact has no value on this host")
    return Version(value)


def _range(*args: Any) -> list[int]:
    r = range(*args)
    if len(r) > MAX_SEQ:
        raise ExprError(f"range: {len(r)} numbers is too many")
    return list(r)


FUNCTIONS: dict[str, Any] = {
    "range": _range,
    "len": len, "int": int, "float": float, "str": str, "min": min, "max": max, "sum": sum,
    "any": any, "all": all, "abs": abs, "round": round, "bool": bool,
    "lower": lambda s: str(s).lower(), "version": _version,
    "strip": lambda s: str(s).strip(), "split": lambda s, sep=None: str(s).split(sep),
}
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_CMPOPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
           ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
           ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
           ast.Is: lambda a, b: a is b, ast.IsNot: lambda a, b: a is not b}


def parse(text: str) -> ast.Expression:
    if not isinstance(text, str):
        raise ExprError(f"expected an expression (text), got {type(text).__name__}")
    if len(text) > MAX_EXPR:
        raise ExprError(f"expression longer than {MAX_EXPR} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"{text!r} does not parse: {exc.msg}") from None
    _check_nodes(tree)
    return tree


_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub,
            ast.UAdd, ast.BinOp, ast.Compare, ast.Name, ast.Load, ast.Constant, ast.Attribute,
            ast.Subscript, ast.List, ast.Tuple, ast.Call, ast.IfExp, ast.Dict, ast.Slice,
            *_BINOPS, *_CMPOPS)


def _check_nodes(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ExprError(f"{type(node).__name__} is not allowed in an expression")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExprError(f"'.{node.attr}': names starting with '_' are not allowed")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                shown = ast.unparse(node.func)
                raise ExprError(f"{shown}(): not a known function "
                                f"(known: {', '.join(sorted(FUNCTIONS))})")
            if node.keywords:
                raise ExprError(f"{node.func.id}(): keyword arguments are not allowed")


def names(text: str) -> set[str]:
    """The top-level names an expression reads (functions left out)."""
    tree = parse(text)
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in calls}


def unknown_name(name: str, known: Any) -> ExprError:
    close = difflib.get_close_matches(name, list(known), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ExprError(f"unknown name {name!r}{hint}")


def evaluate(text: str, scope: Mapping[str, Any]) -> Any:
    return _Eval(scope).run(parse(text).body)


class _Eval:
    def __init__(self, scope: Mapping[str, Any]):
        self.scope = scope

    def run(self, node: ast.AST) -> Any:
        method = getattr(self, "_" + type(node).__name__)
        return method(node)

    def _Constant(self, node: ast.Constant) -> Any:
        return node.value

    def _Name(self, node: ast.Name) -> Any:
        if node.id in ("true", "True"):
            return True
        if node.id in ("false", "False"):
            return False
        if node.id in ("none", "None", "null"):
            return None
        if node.id not in self.scope:
            raise unknown_name(node.id, self.scope)
        return self.scope[node.id]

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        value: Any = None
        for sub in node.values:
            value = self.run(sub)
            if isinstance(node.op, ast.And) and not value:
                return value
            if isinstance(node.op, ast.Or) and value:
                return value
        return value

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.run(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        self._number(value, node)
        return -value if isinstance(node.op, ast.USub) else +value

    def _BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.run(node.left), self.run(node.right)
        if isinstance(node.op, ast.Mult):  # no "x" * 10**9
            self._number(left, node)
            self._number(right, node)
        try:
            out = _BINOPS[type(node.op)](left, right)
        except (TypeError, ZeroDivisionError) as exc:
            raise ExprError(f"{ast.unparse(node)}: {exc}") from None
        if isinstance(out, (str, list, tuple)) and len(out) > MAX_SEQ:
            raise ExprError(f"{ast.unparse(node)}: result too long")
        return out

    def _Compare(self, node: ast.Compare) -> bool:
        left = self.run(node.left)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = self.run(comp)
            try:
                if not _CMPOPS[type(op)](left, right):
                    return False
            except (TypeError, ExprError) as exc:
                raise ExprError(f"{ast.unparse(node)}: cannot compare "
                                f"{left!r} with {right!r} ({exc})") from None
            left = right
        return True

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self.run(node.body) if self.run(node.test) else self.run(node.orelse)

    def _List(self, node: ast.List) -> list:
        return [self.run(e) for e in node.elts]

    _Tuple = _List

    def _Dict(self, node: ast.Dict) -> dict:
        if any(k is None for k in node.keys):
            raise ExprError("'**' is not allowed in an expression")
        return {self.run(k): self.run(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]

    def _Attribute(self, node: ast.Attribute) -> Any:
        return self._item(self.run(node.value), node.attr, node)

    def _Subscript(self, node: ast.Subscript) -> Any:
        base = self.run(node.value)
        if isinstance(node.slice, ast.Slice):
            s = node.slice
            parts = [self.run(p) if p is not None else None for p in (s.lower, s.upper, s.step)]
            return base[slice(*parts)]
        return self._item(base, self.run(node.slice), node)

    def _item(self, base: Any, key: Any, node: ast.AST) -> Any:
        where = ast.unparse(node)
        if isinstance(base, Mapping):
            if isinstance(key, str) and key.startswith("_"):
                raise ExprError(f"{where}: names starting with '_' are not allowed")
            if key not in base:
                raise ExprError(f"{where}: no key {key!r}"
                                + (f" (keys: {', '.join(map(str, list(base)[:20]))})" if base else ""))
            return base[key]
        if isinstance(base, (list, tuple, str)) and isinstance(key, int):
            try:
                return base[key]
            except IndexError:
                raise ExprError(f"{where}: index {key} out of range (length {len(base)})") from None
        raise ExprError(f"{where}: cannot take {key!r} of {type(base).__name__}")

    def _Call(self, node: ast.Call) -> Any:
        fn = FUNCTIONS[node.func.id]  # type: ignore[attr-defined]
        args = [self.run(a) for a in node.args]
        try:
            return fn(*args)
        except ExprError:
            raise
        except (TypeError, ValueError) as exc:
            raise ExprError(f"{ast.unparse(node)}: {exc}") from None

    @staticmethod
    def _number(value: Any, node: ast.AST) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ExprError(f"{ast.unparse(node)}: {value!r} is not a number")


# -- templates: "text {{ expr }} text" -------------------------------------------------------
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)


def template_names(text: str) -> set[str]:
    out: set[str] = set()
    for m in _TEMPLATE.finditer(text):
        out |= names(m.group(1))
    return out


def render(value: Any, scope: Mapping[str, Any]) -> Any:
    """Strings with ``{{ expr }}`` filled in (a string that is one ``{{ }}`` keeps the value's
    type); lists and mappings rendered item by item; other values as they are."""
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value.strip())
        if whole and "{{" not in whole.group(1) and "}}" not in whole.group(1):
            return evaluate(whole.group(1), scope)
        return _TEMPLATE.sub(lambda m: str(evaluate(m.group(1), scope)), value)
    if isinstance(value, list):
        return [render(v, scope) for v in value]
    if isinstance(value, dict):
        return {k: render(v, scope) for k, v in value.items()}
    return value


def value_names(value: Any) -> set[str]:
    """Every name the templates inside ``value`` read."""
    if isinstance(value, str):
        return template_names(value)
    if isinstance(value, list):
        return set().union(*(value_names(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(value_names(v) for v in value.values())) if value else set()
    return set()
