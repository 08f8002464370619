"""`opskit base bootstrap` against the real engine.

The debootstrap path itself runs in the `base_image` fixture whenever the engine lacks
opskit-base:bookworm (a fresh CI machine); here: reuse, --from-rootfs, --force, bad input.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TAG = "opskit-buildtest-rootfs:it"


@pytest.fixture()
def rootfs(tmp_path: Path) -> Path:
    path = tmp_path / "rootfs.tar"
    with tarfile.open(path, "w") as tar:
        data = b"made by test_base\n"
        info = tarfile.TarInfo("etc/opskit-test")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture()
def cleanup(docker_client: Any) -> Iterator[None]:
    yield
    from docker.errors import ImageNotFound

    try:
        docker_client.images.remove(TAG, force=True)
    except ImageNotFound:
        pass


def test_existing_base_is_reused(base_image: str, docker_client: Any, opskit_cli: Any) -> None:
    proc = opskit_cli("base", "bootstrap", "--tag", base_image, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["reused"] is True and out["source"] == "existing" and out["tag"] == base_image
    assert out["image_id"] == docker_client.images.get(base_image).id
    table = opskit_cli("base", "bootstrap", "--tag", base_image)
    assert table.returncode == 0 and "reused" in table.stdout


def test_from_rootfs_imports_then_reuses_then_force(
    rootfs: Path, docker_client: Any, cleanup: None, opskit_cli: Any
) -> None:
    made = opskit_cli("base", "bootstrap", "--tag", TAG, "--from-rootfs", str(rootfs), "--json")
    assert made.returncode == 0, made.stderr
    first = json.loads(made.stdout)
    assert first["reused"] is False and first["source"] == f"rootfs:{rootfs}"
    image = docker_client.images.get(TAG)
    assert image.labels["org.opskit.base.suite"] == "bookworm"
    assert image.attrs["Config"]["Env"][0] == "LANG=C.UTF-8"
    again = json.loads(opskit_cli("base", "bootstrap", "--tag", TAG, "--from-rootfs", str(rootfs),
                               "--json").stdout)
    assert again["reused"] is True and again["image_id"] == first["image_id"]
    forced = json.loads(opskit_cli("base", "bootstrap", "--tag", TAG, "--from-rootfs", str(rootfs),
                                "--force", "--json").stdout)
    assert forced["reused"] is False


def test_missing_rootfs_is_a_usage_error(tmp_path: Path, docker_client: Any, opskit_cli: Any) -> None:
    proc = opskit_cli("base", "bootstrap", "--tag", TAG, "--from-rootfs", str(tmp_path / "none.tar"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_not_a_tar_and_bad_tag_are_usage_errors(tmp_path: Path, opskit_cli: Any) -> None:
    (tmp_path / "notes.txt").write_text("not a root filesystem\n")
    run = opskit_cli("base", "bootstrap", "--tag", TAG, "--from-rootfs", str(tmp_path / "notes.txt"))
    assert run.returncode == 2 and "is not a tar archive" in run.stderr
    run = opskit_cli("base", "bootstrap", "--tag", "Bad Tag")
    assert run.returncode == 2 and "is not valid" in run.stderr


def test_truncated_archive_fails_cleanly(tmp_path: Path, opskit_cli: Any, docker_client: Any, cleanup: None) -> None:
    from docker.errors import ImageNotFound

    path = tmp_path / "cut.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = 1024 * 1024
        tar.addfile(info, io.BytesIO(b"\1" * info.size))
    with open(path, "r+b") as fh:
        fh.truncate(300 * 1024)
    run = opskit_cli("base", "bootstrap", "--tag", TAG, "--from-rootfs", str(path))
    assert run.returncode == 1 and "could not import" in run.stderr
    with pytest.raises(ImageNotFound):
        docker_client.images.get(TAG)
