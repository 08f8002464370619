"""YAML read with line numbers: every mapping remembers its own line and each key's line.

``load(path)`` returns plain Python values in which mappings are :class:`LineDict` (a dict
with ``line`` and ``key_lines``). Duplicate keys are refused (PyYAML keeps the last one
silently), naming both lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from opskit.errors import ConfigError


class LineDict(dict):
    """A mapping read from YAML: ``line`` (1-based) and ``key_lines`` {key: line}."""

    line: int = 0
    key_lines: dict

    def line_of(self, key: Any) -> int:
        return getattr(self, "key_lines", {}).get(key, self.line)


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise ConfigError(f"{loader.name}:{line}: key {key!r} is not a name",
                              "keys of a playbook are words such as name, hosts, steps")
        if key in out:
            raise ConfigError(f"{loader.name}:{line}: key {key!r} given twice "
                              f"(first on line {out.key_lines[key]})", "keep one of them")
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def loads(text: str, name: str = "<string>") -> Any:
    loader = _Loader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{name}:{mark.line + 1}" if mark else name
        raise ConfigError(f"{where}: not valid YAML: {exc.problem}",
                          "check the indentation and quoting on that line") from None
    finally:
        loader.dispose()


def load(path: str | Path) -> Any:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such playbook", "give the path of a .yaml file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}", "give a readable UTF-8 YAML file") from None
    return loads(text, str(p))
