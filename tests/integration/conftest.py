# Fixtures from opskit.testing, usable by any test under tests/integration/.
from collections.abc import Iterator

import pytest

from opskit.testing.dind import containerd_host, gpu_hosts, small_disk_host, training_image  # noqa: F401
from opskit.testing.engine import base_image, docker_client  # noqa: F401
from opskit.testing.localengine import empty_local_engine, local_engine_factory  # noqa: F401
from opskit.testing.slurm import SlurmCluster, slurm_cluster  # noqa: F401
from opskit.testing.sshd import ssh_testbed, ssh_testbed_factory  # noqa: F401


@pytest.fixture
def cluster(slurm_cluster: SlurmCluster, request: pytest.FixtureRequest) -> Iterator[SlurmCluster]:  # noqa: F811
    """The session's Slurm cluster; a failing test prints every daemon's log tail (at teardown)."""
    failed_before = request.session.testsfailed
    yield slurm_cluster
    if request.session.testsfailed > failed_before:
        print(slurm_cluster.logs())
