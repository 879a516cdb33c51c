"""Builds the kvtier package: setuptools copies the sources, and build_py first generates the
protobuf and gRPC stubs from the repository's proto/ (build_package.py)."""

import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import build_package  # noqa: E402


class BuildWithStubs(build_py):
    """build_py, plus the stubs."""

    def run(self) -> None:
        super().run()
        build_package.generate_stubs(os.path.join(HERE, "..", "..", "proto"), self.build_lib)


setup(packages=["kvtier", "kvtier.v1"], cmdclass={"build_py": BuildWithStubs})
