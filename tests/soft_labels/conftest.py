"""The soft-label tests' teacher: built once per session from soft_label_helpers."""

import pytest

from soft_label_helpers import build_teacher


@pytest.fixture(scope="session")
def teacher(tmp_path_factory) -> str:
    return build_teacher(str(tmp_path_factory.mktemp("teacher") / "export"))
