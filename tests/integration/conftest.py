# Fixtures from opskit.testing, usable by any test under tests/integration/.
from opskit.testing.dind import containerd_host, gpu_hosts, small_disk_host, training_image  # noqa: F401
from opskit.testing.engine import base_image, docker_client  # noqa: F401
from opskit.testing.localengine import empty_local_engine, local_engine_factory  # noqa: F401
from opskit.testing.slurm import slurm_cluster  # noqa: F401
from opskit.testing.sshd import ssh_testbed, ssh_testbed_factory  # noqa: F401
