# Fixtures from opskit.testing, usable by any test under tests/integration/.
from opskit.testing.dind import gpu_hosts, small_disk_host, training_image  # noqa: F401
from opskit.testing.engine import base_image, docker_client  # noqa: F401
from opskit.testing.sshd import ssh_testbed, ssh_testbed_factory  # noqa: F401
