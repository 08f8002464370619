"""The torch-free catalogue agrees with the builders it describes.

The catalogue is what ``opskit models list`` and ``run-remote`` read without torch, so each
entry is checked here against the real builder: its module registers it, and the reference
configuration built on the meta device has exactly the catalogued parameter count.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from opskit.models import catalogue, registry
from opskit.models.summary import build_for_summary, count_parameters


@pytest.mark.parametrize("name", catalogue.model_names())
def test_entry_matches_its_builder(name: str) -> None:
    entry = catalogue.entry(name)
    info = registry.get_model_info(name)
    assert info.builder.__module__ == entry.module
    assert info.task in catalogue.TASKS
    assert count_parameters(build_for_summary(name)[0]) == entry.parameters


def test_every_registered_builder_is_catalogued() -> None:
    for module in {e.module for e in catalogue.CATALOGUE.values()}:
        importlib.import_module(module)
    assert sorted(registry._BUILDERS) == catalogue.model_names()


def test_register_outside_the_catalogue_is_refused() -> None:
    with pytest.raises(catalogue.UnknownModelError, match="no_such_net"):
        registry.register_model("no_such_net")
    with pytest.raises(ValueError, match="catalogue says opskit.models.lenet"):
        registry.register_model("lenet")(lambda **cfg: None)  # defined in this test module


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(catalogue.UnknownModelError) as exc:
        catalogue.entry("resnet19")
    assert "resnet18" in str(exc.value) and "lenet" in str(exc.value)


PROBE = """
import json, sys
from opskit.models import list_models
from opskit.models.catalogue import entry
from opskit.jobs.spec import validate_train_args
validate_train_args("resnet18", ["--small", "--steps", "2"])
print(json.dumps({"n": len(list_models()), "p": entry("lenet").parameters,
                  "torch": "torch" in sys.modules}))
"""


def test_catalogue_and_train_args_check_import_no_torch() -> None:
    res = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=60, check=True)
    report = json.loads(res.stdout)
    assert report == {"n": len(catalogue.CATALOGUE), "p": 61_706, "torch": False}
