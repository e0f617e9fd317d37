"""The compiled pipeline's ``train_workers``: one parameter, passed to every training step."""

import pytest
import yaml

from pipelines.compile import compile_pipeline

#: The teacher (when it trains), the kd student and the baseline.
TRAINING_TASKS = ("prepare-teacher", "train-model", "train-model-2")


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


@pytest.mark.parametrize("task", TRAINING_TASKS)
def test_every_training_step_gets_train_workers(spec, task):
    inputs = spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"]
    assert inputs["workers"] == {"componentInputParameter": "train_workers"}
    component = spec["components"][spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]]
    assert component["inputDefinitions"]["parameters"]["workers"]["defaultValue"] == 1.0
