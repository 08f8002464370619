"""Every ``OPSKIT_*`` setting, with one precedence: defaults < settings file < environment < flags.

The settings file is YAML, ``$XDG_CONFIG_HOME/opskit/settings.yaml`` (``~/.config/...``) or
the file ``$OPSKIT_SETTINGS`` names; its keys are the names below (``runs_dir: /data/runs``).
A command-line flag (``--runs-dir``, ``--inventory``) wins over all of them. ``resolve`` also
says where a value came from, so an error can name it (``from $OPSKIT_INVENTORY``).

The README's "Settings" table lists the same settings (a test keeps the two in step). Imports
only the stdlib (PyYAML when a settings file exists), so any module may use it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit.errors import ConfigError, UsageError

SETTINGS_FILE_ENV = "OPSKIT_SETTINGS"


@dataclass(frozen=True)
class Setting:
    key: str  # the name in the settings file
    env: str  # the environment variable
    help: str
    default: str | None = None  # as text; None: unset (the caller searches, e.g. ./opskit.yaml)
    kind: str = "path"  # path | size | bool | text


SETTINGS: dict[str, Setting] = {s.key: s for s in (
    Setting("inventory", "OPSKIT_INVENTORY", "inventory file (hosts, groups, defaults); unset: "
            "the first found of ./opskit.yaml, ./hosts.yaml, ~/.config/opskit/hosts.yaml"),
    Setting("ssh_config", "OPSKIT_SSH_CONFIG", "the SSH config file to read; unset: ~/.ssh/config"),
    Setting("known_hosts", "OPSKIT_KNOWN_HOSTS", "known_hosts file for hosts that name none; "
            "unset: ~/.ssh/known_hosts"),
    Setting("runs_dir", "OPSKIT_RUNS_DIR", "the local store of runs", default="runs"),
    Setting("disk_margin", "OPSKIT_DISK_MARGIN", "free disk preflight wants on a host beyond the "
            "image layers to load", default="1g", kind="size"),
    Setting("cache_dir", "OPSKIT_CACHE_DIR", "wheelhouse cache; unset: $XDG_CACHE_HOME/opskit "
            "or ~/.cache/opskit"),
    Setting("dockerfiles", "OPSKIT_DOCKERFILES", "folder of the image recipes; unset: "
            "dockerfiles/ beside the package"),
    Setting("project", "OPSKIT_PROJECT", "the project card file; unset: ./opskit.yaml"),
    Setting("plays_dir", "OPSKIT_PLAYS_DIR", "where opskit play keeps a folder per play run "
            "(events.jsonl, recap.json)", default="plays"),
    Setting("plays_keep", "OPSKIT_PLAYS_KEEP", "how many play-run folders to keep (the oldest "
            "go first)", default="20", kind="text"),
    Setting("max_output_mb", "OPSKIT_MAX_OUTPUT_MB", "most output (MiB) kept in memory from one "
            "command; a command printing more is stopped and reported", default="64", kind="text"),
    Setting("collect_max_file_gb", "OPSKIT_COLLECT_MAX_FILE_GB", "results larger than this (GiB) "
            "are listed and kept on the host, not collected", default="256", kind="text"),
    Setting("collect_hash_timeout", "OPSKIT_COLLECT_HASH_TIMEOUT", "seconds one result may take "
            "to hash on the host before it is listed and kept there", default="600", kind="text"),
    Setting("traceback", "OPSKIT_TRACEBACK", "show the full Python stack on errors (as "
            "--traceback)", default="0", kind="bool"),
)}


@dataclass(frozen=True)
class Value:
    value: Any  # None when unset
    source: str  # "flag", "$OPSKIT_...", "settings file PATH" or "default"


def resolve(key: str, flag: Any = None, *, environ: Mapping[str, str] | None = None) -> Value:
    """The value of setting ``key``: ``flag`` if given, else the environment, else the
    settings file, else the default; parsed by the setting's kind."""
    setting = SETTINGS[key]
    env = os.environ if environ is None else environ
    if flag is not None:
        return Value(flag, "flag")
    if env.get(setting.env):
        return Value(_parse(setting, env[setting.env], f"${setting.env}"), f"${setting.env}")
    path = settings_file(env)
    if path is not None:
        data = read_file(path)
        if data.get(key) is not None:
            where = f"settings file {path}"
            return Value(_parse(setting, str(data[key]), f"{key} in {where}"), where)
    if setting.default is None:
        return Value(None, "default")
    return Value(_parse(setting, setting.default, "default"), "default")


def get(key: str, flag: Any = None) -> Any:
    return resolve(key, flag).value


def settings_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The settings file in force, or None when there is none."""
    env = os.environ if environ is None else environ
    named = env.get(SETTINGS_FILE_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"settings file {path} (from ${SETTINGS_FILE_ENV}) does not exist",
                              f"create it, or unset {SETTINGS_FILE_ENV}")
        return path
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    path = Path(base) / "opskit" / "settings.yaml"
    return path if path.is_file() else None


def read_file(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}", "fix the file or remove it") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings",
                          f"known settings: {', '.join(SETTINGS)}")
    unknown = sorted(str(k) for k in data if k not in SETTINGS)
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r}",
                          f"known settings: {', '.join(SETTINGS)}")
    return data


_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$", re.I)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def parse_size(text: str, what: str) -> int:
    """``512m``, ``2g``, ``1.5G``, ``1048576`` -> bytes (powers of 1024)."""
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise UsageError(f"invalid {what} {text!r}", "use a size such as 512m, 2g or 1073741824")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def _parse(setting: Setting, text: str, where: str) -> Any:
    if setting.kind == "size":
        return parse_size(text, where)
    if setting.kind == "bool":
        low = text.strip().lower()
        if low not in _TRUE + _FALSE:
            raise UsageError(f"invalid {where} {text!r}", "use 1 or 0 (true/false, yes/no)")
        return low in _TRUE
    if setting.kind == "path":
        return os.path.expanduser(text)
    return text
