"""Unit tests of push_model: the pushed version's URI is the output; a refusal fails the step."""

import types

import pytest
from kfp.dsl import Artifact, Model

from components.push_model.component import push_model


def _push(artifact, keep=3):
    return push_model.python_func(model=artifact(Model, "student"),
                                  evaluation=artifact(Artifact, "e"),
                                  destination="gs://b/serving", run_date="d", keep=keep)


def test_push_model_returns_the_pushed_version(record, artifact, tmp_path):
    calls = record("push_model", types.SimpleNamespace(pushed=True, reason="pushed as version 4",
                                                       version_uri="gs://b/serving/4"))
    assert _push(artifact) == "gs://b/serving/4"
    [(_, args, kwargs)] = calls
    assert args == (str(tmp_path / "student"), "gs://b/serving")
    assert kwargs == dict(evaluation_dir=str(tmp_path / "e"), keep=3)


def test_a_refused_push_fails_the_step_with_the_reason(record, artifact):
    record("push_model", types.SimpleNamespace(
        pushed=False, version_uri=None,
        reason="not pushed: the evaluation says not blessed: student_auc 0.51 < min_auc 0.6"))
    with pytest.raises(RuntimeError, match=r"push to gs://b/serving refused: not pushed: the "
                                           r"evaluation says not blessed: student_auc 0\.51"):
        _push(artifact)
