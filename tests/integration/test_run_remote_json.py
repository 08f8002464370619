"""``opskit run-remote --json`` on this machine's engine (``--host localhost``): stdout is one
JSON document, while build progress, preflight and the run's own output go to stderr.

The default training image is built (or reused, layer by layer) by run-remote itself, so its
build progress is part of what stderr must show. About 30 s with warm images.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

QUICK = ["lenet", "--small", "--steps", "4", "--batch-size", "16", "--log-every", "2",
         "--train-samples", "64", "--val-samples", "32", "--threads", "1"]


def test_run_remote_json_is_one_document_and_progress_is_on_stderr(docker_client, base_image,
                                                                   tmp_path: Path) -> None:
    run_id = f"rj-{secrets.token_hex(3)}"
    env = {**os.environ, "OPSKIT_RUNS_DIR": str(tmp_path / "runs"), "COLUMNS": "200"}
    try:
        res = subprocess.run(
            [sys.executable, "-m", "opskit", "run-remote", "--host", "localhost", "--json",
             "--run-id", run_id, "--remove-remote", *QUICK],
            env=env, capture_output=True, text=True, timeout=900, check=False)
    finally:
        try:
            docker_client.containers.get(f"opskit-run-{run_id}").remove(force=True)
        except Exception:  # noqa: BLE001 - never started
            pass
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout)  # the whole of stdout: one document, `| jq` works
    assert doc["run_id"] == run_id and doc["host"] == "localhost" and doc["detached"] is False
    assert doc["state"] == "exited" and doc["exit_code"] == 0
    assert {"metrics.jsonl", "summary.json", "run_card.json"} <= set(doc["collected"])
    assert Path(doc["local_dir"], "summary.json").is_file()
    err = res.stderr
    assert "[localhost] building the default training image (profile offline)" in err
    assert "[localhost] build image: " in err and " cached)" in err  # the build's progress
    assert "[localhost] preflight disk:" in err
    assert "[localhost] step 4/4 " in err  # the run's own output, on stderr under --json
