# Fixtures from opskit.testing, usable by any test under tests/integration/.
from opskit.testing.engine import base_image, docker_client  # noqa: F401
