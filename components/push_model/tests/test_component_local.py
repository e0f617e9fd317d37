"""push_model's body on a real export and a real evaluation: a refusal fails the step."""

import pathlib
import sys

import pytest
from kfp.dsl import Artifact, Model

from components.push_model.component import push_model

pytestmark = pytest.mark.slow
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "tests"))


def test_a_push_the_evaluation_refuses_raises_with_its_reason(tmp_path):
    import toy_models

    from recdistill import evaluation
    from recdistill.config import load_config

    data = toy_models.write_csv(tmp_path / "eval" / "part-00000.csv",
                                toy_models.make_table(users=4, rows_per_user=10))
    model = toy_models.save_linear(tmp_path / "student", 1.3, -0.2, 0.1)
    verdict = tmp_path / "evaluation"
    evaluation.evaluate(model, data, load_config(toy_models.config_text()),
                        thresholds={"min_auc": 0.999}, out_dir=str(verdict))
    serving = tmp_path / "serving"
    with pytest.raises(RuntimeError, match=r"push to .*serving refused: not pushed: the "
                                           r"evaluation says not blessed: .*min_auc"):
        push_model.python_func(model=Model(name="m", uri=str(model), metadata={}),
                               evaluation=Artifact(name="e", uri=str(verdict), metadata={}),
                               destination=str(serving), run_date="d", keep=0)
    assert not serving.exists() or not any(p.name.isdigit() for p in serving.iterdir())
