"""Secret-looking files stop a build before anything is sent; secret build arguments are refused.

Field case security/15: a project with secrets at every depth (placeholders only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opskit.errors import UsageError
from opskit.images.build import BuildRequest, check_build_args, plan_build
from opskit.images.secrets import secret_arg_reason, secret_kind

CASE_15 = {
    ".env": "ROOT_TOKEN=placeholder-1",
    ".env.local": "HF_TOKEN=placeholder-2",
    "src/.env": "WANDB_API_KEY=placeholder-3",
    "src/myproj/.env.production": "DB_PASSWORD=placeholder-4",
    "src/myproj/config/credentials.json": '{"aws_secret_access_key": "placeholder-5"}',
    "src/myproj/train.py": "print('hi')",
    "test/.netrc": "machine pypi.example.org login user password placeholder-6",
    "test/test_x.py": "",
    "id_ed25519": "a placeholder with a private key's file name",
}
SECRETS = sorted(k for k in CASE_15 if not k.endswith(".py"))


def _project(root: Path, files: dict[str, str], ignore: str | None = None) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if ignore is not None:
        (root / ".dockerignore").write_text(ignore)
    return root


def test_field_case_15_every_secret_is_named_and_nothing_is_sent(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj", CASE_15)
    with pytest.raises(UsageError) as err:
        plan_build(BuildRequest(project=str(root)))
    message = err.value.message
    assert "nothing was sent to the engine" in message
    for rel in SECRETS:
        assert f"\n  {rel}  (" in message, rel
    assert "train.py" not in message and "test_x.py" not in message
    assert ".dockerignore" in (err.value.hint or "") and "--allow-secret" in (err.value.hint or "")


def test_dockerignore_keeps_them_out_and_the_build_goes_on(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj", CASE_15,
                    "**/.env*\n**/.netrc\n**/credentials*.json\nid_*\n")
    plan = plan_build(BuildRequest(project=str(root)))
    assert not set(SECRETS) & set(plan.files)
    assert "src/myproj/train.py" in plan.files and plan.allowed_secrets == []


def test_explicit_exception_or_flag_lets_one_in(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj", CASE_15,
                    "**/.env*\n**/.netrc\nid_*\n!src/myproj/.env.production\n")
    with pytest.raises(UsageError, match="credentials.json"):
        plan_build(BuildRequest(project=str(root)))
    plan = plan_build(BuildRequest(project=str(root), allow_secrets=("**/credentials.json",)))
    assert plan.allowed_secrets == ["src/myproj/.env.production",
                                    "src/myproj/config/credentials.json"]


@pytest.mark.parametrize("rel", [
    ".aws/credentials", "home/.aws/config", "keys/id_rsa", "x/.ssh/id_ecdsa", "tls/server.key",
    "gcp/my-service-account-123.json", "client_secret_42.json", ".docker/config.json",
    "a/.pgpass", "application_default_credentials.json", ".git-credentials", "prod.env",
    "store.p12", "secrets.yaml", ".envrc",
])
def test_secret_names(rel: str) -> None:
    assert secret_kind(rel)


@pytest.mark.parametrize("rel", [
    "src/env.py", ".env.example", "id_rsa.pub", ".ssh/known_hosts", "keyboard.py",
    "environment.yml", "src/credentials_helper.py", "README.md",
])
def test_ordinary_names(rel: str) -> None:
    assert secret_kind(rel) is None


def test_pem_files_are_judged_by_content(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    key = tmp_path / "server.pem"
    key.write_text("-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n")
    plain = tmp_path / "deploy"
    plain.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n")
    assert secret_kind("ca.pem", str(ca)) is None
    assert secret_kind("server.pem", str(key)) == "a private key"
    assert secret_kind("deploy", str(plain)) == "a private key"


@pytest.mark.parametrize("name", ["PASSWD", "DB_PASS", "CREDENTIALS", "AUTH", "GITHUB_PAT",
                                  "NPM_AUTH", "WANDB_API", "CERT_PEM", "HF_TOKEN", "DB_PASSWORD",
                                  "AWS_SECRET_ACCESS_KEY", "MY_API_KEY", "OAUTH_CLIENT", "PWD"])
def test_secret_build_arg_names_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match=f"build argument {name} looks like a secret"):
        check_build_args({name: "x"})


@pytest.mark.parametrize(("name", "value"), [
    ("PIP_INDEX_URL", "https://user:placeholder@pypi.example.org/simple"),
    ("EXTRA", "ghp_" + "a" * 36),
    ("EXTRA", "AKIA" + "B" * 16),
])
def test_secret_build_arg_values_are_refused(name: str, value: str) -> None:
    assert secret_arg_reason(name, value)


@pytest.mark.parametrize(("name", "value"), [
    ("SYSTEM_PACKAGES", "git curl"), ("TORCH_VERSION", "2.5.1"),
    ("PIP_INDEX_URL", "https://pypi.example.org/simple"), ("HTTPS_PROXY", "http://proxy:3128"),
    ("AUTHOR", "me"), ("PASSTHROUGH_MODE", "1"),
])
def test_ordinary_build_args_pass(name: str, value: str) -> None:
    assert secret_arg_reason(name, value) is None


def test_cli_stops_with_exit_2_and_allow_secret_lets_one_through(tmp_path: Path,
                                                                 opskit_cli: Any) -> None:
    root = _project(tmp_path / "proj", {"src/a.py": "", "src/.env": "K=v"})  # no test/
    run = opskit_cli("build", str(root))
    assert run.returncode == 2 and "src/.env  (an environment file)" in run.stderr
    assert "--allow-secret" in run.stderr
    run = opskit_cli("build", str(root), "--allow-secret", "src/.env")
    assert run.returncode == 2 and "look like secrets" not in run.stderr
    assert "lacks test/" in run.stderr  # the next check, after the secrets one


def test_git_config_with_a_password_in_a_remote_url(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text('[remote "origin"]\n\turl = https://me:placeholder@git.example.org/r.git\n')
    plain = tmp_path / "plain"
    plain.write_text('[remote "origin"]\n\turl = https://git.example.org/r.git\n')
    assert secret_kind(".git/config", str(config)) == "a git remote URL with a password"
    assert secret_kind("sub/.git/config", str(plain)) is None
