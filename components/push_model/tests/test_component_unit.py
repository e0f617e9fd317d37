"""Unit test of push_model: the pushed version's URI is the component's output."""

import types

from kfp.dsl import Artifact, Model

from components.push_model.component import push_model


def test_push_model_returns_the_pushed_version(record, artifact, tmp_path):
    calls = record("push_model", types.SimpleNamespace(version_uri="gs://b/serving/4"))
    out = push_model.python_func(model=artifact(Model, "student"),
                                 evaluation=artifact(Artifact, "e"),
                                 destination="gs://b/serving", run_date="d", keep=3)
    assert out == "gs://b/serving/4"
    [(_, args, kwargs)] = calls
    assert args == (str(tmp_path / "student"), "gs://b/serving")
    assert kwargs == dict(evaluation_dir=str(tmp_path / "e"), keep=3)
