"""Tests for recdistill.exported beyond loading: the model digest that ties a verdict to a model."""

import shutil

from recdistill import exported
from tests import toy_models


def test_digest_is_the_same_for_a_copy_and_differs_for_other_weights(tmp_path):
    first = toy_models.save_linear(tmp_path / "a", wx=1.0)
    copy = tmp_path / "copy"
    shutil.copytree(exported.export_dir(first), copy)
    exported.write_metadata(str(copy), {"edited": True})  # metadata is not the model
    other = toy_models.save_linear(tmp_path / "b", wx=2.0)

    digest = exported.model_digest(first)
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    assert exported.model_digest(str(copy)) == digest
    assert exported.model_digest(other) != digest


def test_digest_changes_when_a_variable_file_changes(tmp_path):
    model = toy_models.save_linear(tmp_path / "a", wx=1.0)
    before = exported.model_digest(model)
    variables = tmp_path / "a" / "export" / "variables"
    data = next(p for p in variables.iterdir() if p.name.startswith("variables.data"))
    data.write_bytes(data.read_bytes() + b"x")
    assert exported.model_digest(model) != before
