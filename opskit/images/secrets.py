"""Secrets stay out of images: secret-looking files in a build context, secret build arguments.

* :func:`check_context` stops a build **before anything is sent** when the context holds files
  that look like secrets (``.env`` files, ``.netrc``, cloud credentials, private keys ...),
  naming each one and how to keep it out (``.dockerignore``) or let it in on purpose: a ``!``
  line of the project's ``.dockerignore`` that names it, or ``--allow-secret PATTERN``
  (dockerignore syntax). Files under ``src/`` and ``test/`` end up in the image's layers,
  where anyone who has the image can read them.
* :func:`check_build_args` refuses build arguments whose name or value looks like a secret:
  their values stay readable in the image history.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping

from opskit.errors import UsageError
from opskit.images.dockerignore import IgnoreLine, PatternMatcher

# (file-name pattern, what it is): matched case-insensitively against the last path component.
_NAMES: tuple[tuple[str, str], ...] = (
    (".env", "an environment file"), (".env.*", "an environment file"),
    ("*.env", "an environment file"), (".envrc", "a direnv file"),
    (".netrc", "login credentials (netrc)"), ("_netrc", "login credentials (netrc)"),
    (".pgpass", "a PostgreSQL password file"), (".pypirc", "package index credentials"),
    (".npmrc", "package registry credentials"), (".git-credentials", "git credentials"),
    (".htpasswd", "a password file"), (".dockercfg", "registry credentials"),
    ("credentials", "cloud credentials"), ("credentials*.json", "cloud credentials"),
    ("*-credentials.json", "cloud credentials"), ("client_secret*.json", "an OAuth client secret"),
    ("application_default_credentials.json", "Google Cloud credentials"),
    ("*service*account*.json", "a cloud service-account key"), ("kubeconfig", "a kubeconfig"),
    ("id_rsa", "an SSH private key"), ("id_dsa", "an SSH private key"),
    ("id_ecdsa", "an SSH private key"), ("id_ed25519", "an SSH private key"),
    ("id_ecdsa_sk", "an SSH private key"), ("id_ed25519_sk", "an SSH private key"),
    ("*.key", "a private key"), ("*.p12", "a key store"), ("*.pfx", "a key store"),
    ("*.jks", "a key store"), ("*.keystore", "a key store"), ("*.ppk", "a PuTTY private key"),
    ("*.kdbx", "a password database"), ("secrets.*", "a secrets file"),
    ("*.secret", "a secrets file"),
)
# (path suffix pattern, what it is): matched against the end of the path.
_PATHS: tuple[tuple[str, str], ...] = (
    (".aws/credentials", "AWS credentials"), (".aws/config", "AWS configuration"),
    (".docker/config.json", "registry credentials"), (".kube/config", "a kubeconfig"),
    (".config/gcloud/*", "Google Cloud credentials"), (".azure/*", "Azure credentials"),
    (".ssh/*", "an SSH file"), (".gnupg/*", "a GnuPG key file"),
)
# Names that are templates or public halves, never secrets.
_HARMLESS = ("*.pub", "known_hosts", "*.example", "*.sample", "*.template", "*.dist",
             ".env.example*", ".env.sample*", ".env.template*")
_PEM_NAMES = ("*.pem", "*.crt", "*.cer", "*.txt", "*.asc", "")  # sniffed for a private key
_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_URL_PASSWORD = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]+:[^/@\s]+@")
_SNIFF_LIMIT = 8192  # bytes read of a file that may hold a PEM private key
SHOWN = 20


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p.lower()) for p in patterns)


def secret_kind(arcname: str, local: str | None = None) -> str | None:
    """What ``arcname`` looks like ("an SSH private key" ...), or None for an ordinary file."""
    name = arcname.rsplit("/", 1)[-1].lower()
    path = arcname.lower()
    if _matches(name, _HARMLESS):
        return None
    for pattern, what in _NAMES:
        if fnmatch.fnmatchcase(name, pattern):
            return what
    for pattern, what in _PATHS:
        if fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, "*/" + pattern):
            return what
    if local is not None and (path == ".git/config" or path.endswith("/.git/config")):
        return "a git remote URL with a password" if _holds(local, _URL_PASSWORD) else None
    if local is not None and (_matches(name, _PEM_NAMES[:-1]) or "." not in name):
        return "a private key" if _holds(local, _PRIVATE_KEY) else None
    return None


def _holds(local: str, pattern: re.Pattern[bytes]) -> bool:
    """Whether the first bytes of a file match ``pattern``."""
    try:
        with open(local, "rb") as fh:
            return pattern.search(fh.read(_SNIFF_LIMIT)) is not None
    except OSError:
        return False


def secret_files(files: Mapping[str, str]) -> dict[str, str]:
    """``{arcname: what}`` for the regular files of a context that look like secrets."""
    out = {}
    for arcname, local in sorted(files.items()):
        if os.path.islink(local) or not os.path.isfile(local):
            continue
        kind = secret_kind(arcname, local)
        if kind:
            out[arcname] = kind
    return out


def _explicitly_allowed(arcname: str, lines: Iterable[IgnoreLine], allow: Iterable[str]) -> bool:
    """A ``!`` line of .dockerignore or an --allow-secret pattern names this file (or a parent)."""
    exceptions = [line.pattern[1:] for line in lines if line.pattern.startswith("!")]
    return any(PatternMatcher([p]).excluded(arcname) for p in [*exceptions, *allow] if p)


def check_context(root: str, files: Mapping[str, str], lines: list[IgnoreLine] | None,
                  allow: Iterable[str] = ()) -> list[str]:
    """Refuse a context holding secret-looking files; the allowed ones are returned (for a notice)."""
    allow = list(allow)
    found = secret_files(files)
    allowed = [a for a in found if _explicitly_allowed(a, lines or [], allow)]
    refused = {a: k for a, k in found.items() if a not in allowed}
    if not refused:
        return allowed
    shown = "".join(f"\n  {a}  ({k})" for a, k in list(refused.items())[:SHOWN])
    more = f"\n  ... and {len(refused) - SHOWN} more" if len(refused) > SHOWN else ""
    ignore = os.path.join(root, ".dockerignore")
    first = next(iter(refused))
    raise UsageError(
        f"the build context of {root} holds {len(refused)} file(s) that look like secrets; "
        f"nothing was sent to the engine (files under src/ and test/ would be in the image, "
        f"readable by anyone who has it):{shown}{more}",
        f"keep them out: add them to {ignore} (e.g. '**/.env*', '**/*.key', '**/.netrc'); "
        f"or, if the image must hold one, allow it on purpose with a line '!{first}' in "
        f"{ignore} or with --allow-secret '{first}'",
    )


# ---- build arguments ----

# Anywhere in the name (upper case).
_ARG_PARTS = ("PASSW", "PASSPHRASE", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PRIVATE", "COOKIE")
# Whole words of the name (split on "_", "-", ".").
_ARG_WORDS = {"PASS", "PWD", "PAT", "AUTH", "OAUTH", "CRED", "CREDS", "PEM", "P12", "PFX",
              "SALT"}
_ARG_LAST_WORDS = {"API"}  # WANDB_API, OPENAI_API ...
_URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:[^/@\s]+@")
_TOKEN_VALUES = re.compile(
    r"^(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|glpat-[\w-]{20,}|hf_[A-Za-z0-9]{20,}"
    r"|sk-[A-Za-z0-9_-]{20,}|xox[abprs]-[\w-]{10,}|AKIA[0-9A-Z]{16}|AIza[\w-]{35})$")


def secret_arg_reason(name: str, value: str) -> str | None:
    """Why a build argument looks like a secret, or None."""
    upper = name.upper()
    part = next((p for p in _ARG_PARTS if p in upper), None)
    if part:
        return f"its name contains {part}"
    words = [w for w in re.split(r"[_.-]+", upper) if w]
    word = next((w for w in words if w in _ARG_WORDS), None)
    if word:
        return f"its name has the word {word}"
    if words and words[-1] in _ARG_LAST_WORDS:
        return f"its name ends in {words[-1]}"
    if _URL_WITH_PASSWORD.search(value):
        return "its value is a URL with a password in it"
    if _TOKEN_VALUES.match(value.strip()):
        return "its value looks like an access token"
    return None


def check_build_args(build_args: Mapping[str, str]) -> None:
    """Refuse names or values that look like secrets: build arguments stay readable in the history."""
    for name, value in build_args.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise UsageError(f"build argument name {name!r} is not valid", "use NAME=value")
        reason = secret_arg_reason(name, value)
        if reason:
            raise UsageError(
                f"build argument {name} looks like a secret ({reason}); build arguments stay "
                "readable in the image: 'docker history --no-trunc' shows their values to "
                "anyone who has the image",
                "pass secrets when the container runs (docker run -e, or a mounted file), "
                "never at build time",
            )
