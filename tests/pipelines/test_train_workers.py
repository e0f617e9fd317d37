"""The compiled pipeline's ``train_workers``: one parameter, passed to every training step."""

import pytest
import yaml

from pipelines.compile import compile_pipeline

#: The components of the teacher (when it trains), the kd students and the baseline.
TRAINING_COMPONENTS = ("comp-prepare-teacher", "comp-train-model")


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("compiled") / "kd_pipeline.yaml"
    compile_pipeline(path)
    return next(yaml.safe_load_all(path.read_text()))


def test_train_workers_defaults_to_one_pod(spec):
    parameter = spec["root"]["inputDefinitions"]["parameters"]["train_workers"]
    assert (parameter["defaultValue"], parameter["isOptional"], parameter["parameterType"]) \
        == (1, True, "NUMBER_INTEGER")
    assert "TFJob" in parameter["description"]


def _training_tasks(spec):
    """(task name, task) of every training step, in the root DAG or a sub-DAG (the kd
    students train inside the sweep's ParallelFor)."""
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    return [(name, task) for dag in dags for name, task in dag["tasks"].items()
            if task["componentRef"]["name"].rstrip("-0123456789") in TRAINING_COMPONENTS]


def test_every_training_step_gets_train_workers(spec):
    tasks = _training_tasks(spec)
    assert sorted(name for name, _ in tasks) == ["prepare-teacher", "train-model"]
    for name, task in tasks:
        source = task["inputs"]["parameters"]["workers"]["componentInputParameter"]
        assert source in ("train_workers", "pipelinechannel--train_workers"), name
        component = spec["components"][task["componentRef"]["name"]]
        assert component["inputDefinitions"]["parameters"]["workers"]["defaultValue"] == 1.0
