"""The scripts under ``bench/`` as modules, for the tests that run them (bench/ is no package)."""

import importlib.util
import os

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


def path(name: str) -> str:
    """The file of ``bench/<name>.py``."""
    return os.path.join(BENCH, name + ".py")


def load(name: str):
    """``bench/<name>.py`` imported afresh (its module-level state is the test's own)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
