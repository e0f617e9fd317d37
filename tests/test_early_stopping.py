"""Early stopping: the config block, the stop / best decisions, and a real run stopped at its best."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from recdistill import config as config_lib
from recdistill import exported
from recdistill import metrics as metrics_lib
from recdistill import training
from recdistill.data import sample
from recdistill.protos import pipeline_pb2
from recdistill.training import early_stopping


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return sample.write_sample_data(str(tmp_path_factory.mktemp("early")), rows=400)


def test_the_sample_teacher_stops_early_and_the_students_do_not(data):
    teacher = config_lib.load_config(data.teacher_config).train_config
    assert teacher.early_stopping.metric == "auc" and teacher.early_stopping.patience == 2
    assert 0 < teacher.early_stopping.eval_every_steps < teacher.num_steps
    for path in (data.student_config, data.student_nokd_config):
        assert not config_lib.load_config(path).train_config.HasField("early_stopping")


def test_bad_early_stopping_fields_are_config_errors(data):
    cfg = config_lib.load_config(data.teacher_config)
    cfg.train_config.early_stopping.metric = "ndcg"
    cfg.train_config.early_stopping.patience = 0
    cfg.train_config.early_stopping.min_delta = -0.1
    with pytest.raises(config_lib.ConfigError) as error:
        config_lib.load_config(config_lib.to_text(cfg))
    text = str(error.value)
    for fragment in ("train_config.early_stopping.metric", "'ndcg'", "one of auc, logloss",
                     "train_config.early_stopping.patience", "min_delta"):
        assert fragment in text, text


def test_early_stopping_without_eval_data_is_refused(data, tmp_path):
    cfg = config_lib.load_config(data.teacher_config)
    cfg.eval_input_path = ""
    with pytest.raises(ValueError, match="early_stopping needs eval data"):
        training.train(cfg, model_dir=str(tmp_path / "m"), num_steps=5)


def _stopper(model_dir, model, scores, *, metric="auc", patience=2, min_delta=0.0):
    spec = pipeline_pb2.EarlyStopping(metric=metric, patience=patience, min_delta=min_delta)
    values = iter(scores)
    return early_stopping.EarlyStopping(spec, 10, str(model_dir), model,
                                        lambda: {f"eval_{metric}": next(values)})


def _dense():
    model = keras.Sequential([keras.layers.Dense(1)])
    model(np.zeros([1, 2], np.float32))
    return model


def test_a_new_best_resets_the_wait(tmp_path):
    stopper = _stopper(tmp_path, _dense(), [0.60, 0.70, 0.69, 0.705, 0.70])
    assert stopper.every == 10  # save_checkpoints_steps when eval_every_steps is unset
    assert [stopper.evaluate(step) for step in (10, 20, 30, 40, 50)] == [False] * 5
    assert stopper.best["step"] == 40


def test_stops_after_patience_and_restores_the_best_weights(tmp_path):
    model = _dense()
    kernel = model.layers[0].kernel
    stopper = _stopper(tmp_path, model, [0.60, 0.70, 0.69, 0.68])
    decisions = []
    for step in (10, 20, 30, 40):
        kernel.assign(np.full([2, 1], step, np.float32))
        decisions.append(stopper.evaluate(step))
    assert decisions == [False, False, False, True]
    assert stopper.stopped_at == 40 and stopper.best["step"] == 20
    # Only the best weights are kept on disk.
    assert sorted(d for d in os.listdir(tmp_path) if d.startswith("best-")) == ["best-20"]
    assert stopper.restore_best() == {"eval_auc": 0.70}
    np.testing.assert_array_equal(kernel.numpy(), np.full([2, 1], 20, np.float32))
    summary = stopper.summary()
    assert summary["best_step"] == 20 and summary["stopped_at_step"] == 40
    assert [e["step"] for e in summary["evaluations"]] == [10, 20, 30, 40]

    # A rerun takes the state over: stopped, same best, nothing evaluated again.
    again = _stopper(tmp_path, _dense(), [])
    again.resume()
    assert again.stopped and again.best["step"] == 20
    state = json.loads((tmp_path / early_stopping.STATE_FILE).read_text())
    assert state["stopped_at"] == 40


def test_logloss_improves_downwards_and_min_delta_is_a_margin(tmp_path):
    stopper = _stopper(tmp_path, _dense(), [0.50, 0.495, 0.40, 0.45], metric="logloss",
                       patience=1, min_delta=0.01)
    assert [stopper.evaluate(step) for step in (10, 20)] == [False, True]  # 0.005 < margin
    assert stopper.best["step"] == 10


def test_a_missing_metric_names_the_fix(tmp_path):
    spec = pipeline_pb2.EarlyStopping(metric="auc")
    stopper = early_stopping.EarlyStopping(spec, 10, str(tmp_path), _dense(),
                                           lambda: {"eval_logloss": 0.5})
    with pytest.raises(ValueError, match="no eval_auc at step 10.*metric: 'logloss'"):
        stopper.evaluate(10)


@pytest.mark.slow
def test_a_run_stops_at_patience_and_exports_its_best_evaluation(data, tmp_path, caplog):
    cfg = config_lib.load_config(data.student_nokd_config)
    cfg.data_config.batch_size = 16
    stopping = cfg.train_config.early_stopping
    stopping.eval_every_steps, stopping.patience = 10, 2
    stopping.min_delta = 1.0  # nothing improves on the first evaluation
    model_dir = str(tmp_path / "model")
    result = training.train(cfg, model_dir=model_dir, num_steps=500)
    assert result.steps == 30
    metadata = exported.read_metadata(result.export_dir)
    summary = metadata["early_stopping"]
    assert (summary["best_step"], summary["stopped_at_step"]) == (10, 30)
    first = {k: v for k, v in summary["evaluations"][0].items() if k != "step"}
    assert metadata["eval_metrics"] == first and result.metrics["eval_auc"] == first["eval_auc"]
    assert metadata["training_metrics"]["best_step"] == 10
    # The export holds the step-10 weights: its AUC on the eval table is the one recorded.
    names = [field.input_name for field in cfg.data_config.input_fields]
    frame = pd.read_csv(data.eval_path, header=None, names=names, keep_default_na=False)
    probs = exported.load_exported(result.export_dir).predict(
        {name: frame[name].to_numpy() for name in names})["probs"]
    assert metrics_lib.auc(frame["clk"].to_numpy(), probs) == pytest.approx(
        first["eval_auc"], abs=1e-6)
    assert set(training.read_scalars(model_dir)["eval/eval_auc"]) == {10, 20, 30}

    with caplog.at_level("INFO", logger="recdistill.training.early_stopping"):
        again = training.train(cfg, model_dir=model_dir, num_steps=500)
    assert again.steps == 30 and "not training further" in caplog.text
    assert exported.read_metadata(again.export_dir)["eval_metrics"] == first
