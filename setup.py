"""Build hook: the wheel carries the top-level ``dockerfiles/`` as ``opskit/dockerfiles/``.

The recipes live at the repository's top level (see ARCHITECTURE); ``opskit.images.recipes.
dockerfiles_dir()`` looks there first, then inside the installed package. Everything else is
configured in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithDockerfiles(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "opskit" / "dockerfiles"
        self.mkpath(str(target))
        for path in sorted((HERE / "dockerfiles").iterdir()):
            if path.is_file():
                self.copy_file(str(path), str(target / path.name))


setup(cmdclass={"build_py": BuildPyWithDockerfiles})
