import pytest

from opskit.testing.cli import opskit_cli  # noqa: F401  (fixture: the CLI run in-process)
from opskit.testing.engine import configure_testcontainers

configure_testcontainers()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Everything under tests/integration/ is an integration test.
    for item in items:
        if "/integration/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)
