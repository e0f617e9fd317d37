"""Fixtures of the components' unit tests (``components/<name>/tests/``).

A unit test calls a component's ``python_func`` with kfp's own artifact classes on temporary
URIs; where the body calls a ``recdistill.steps`` function, ``record`` replaces it by a recorder.
"""

import pytest

from recdistill import steps


@pytest.fixture
def record(monkeypatch):
    """``record(name, result)`` replaces ``recdistill.steps.<name>`` by a recorder returning
    ``result``; it returns the list the calls are appended to as (name, args, kwargs)."""
    calls = []

    def patch(name, result=None):
        def fake(*args, **kwargs):
            calls.append((name, args, kwargs))
            return result
        monkeypatch.setattr(steps, name, fake)
        return calls
    return patch


@pytest.fixture
def artifact(tmp_path):
    """``artifact(cls, name)``: a kfp artifact of class ``cls`` on ``tmp_path / name``."""
    def make(cls, name):
        return cls(name=name, uri=str(tmp_path / name), metadata={})
    return make
