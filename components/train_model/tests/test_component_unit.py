"""Unit test of train_model: every training metric logged to the Metrics artifact."""

import types

from kfp.dsl import HTML, Dataset, Metrics, Model

from components.train_model.component import train_model


def test_train_model_logs_every_training_metric(record, artifact):
    calls = record("train_model", types.SimpleNamespace(metrics={"loss": 0.4, "eval_auc": 0.71}))
    metrics, model, report = artifact(Metrics, "metrics"), artifact(Model, "model"), \
        artifact(HTML, "report")
    train_model.python_func(
        config="s.config", train_data=artifact(Dataset, "train"),
        eval_data=artifact(Dataset, "eval"), run_date="d", model=model,
        metrics=metrics, report=report, warm_start="gs://b/serving/3", num_steps=5,
        mixed_precision=True)
    [(_, args, kwargs)] = calls
    assert args == ("s.config", model.uri)
    assert kwargs["warm_start"] == "gs://b/serving/3" and kwargs["without_kd"] is False
    assert kwargs["num_steps"] == 5 and kwargs["mixed_precision"] is True
    assert kwargs["report_copy"] == report.path
    assert kwargs["workers"] == 1  # the default: train in the step's own pod
    assert kwargs["validation_uri"] == ""  # no split: eval_data, as before
    assert metrics.metadata == {"eval_auc": 0.71, "loss": 0.4}


def test_train_model_forwards_the_worker_count(record, artifact):
    calls = record("train_model", types.SimpleNamespace(metrics={}))
    train_model.python_func(
        config="s.config", train_data=artifact(Dataset, "train"),
        eval_data=artifact(Dataset, "eval"), run_date="d", model=artifact(Model, "model"),
        metrics=artifact(Metrics, "metrics"), report=artifact(HTML, "report"), workers=4)
    [(_, _, kwargs)] = calls
    assert kwargs["workers"] == 4


def test_train_model_stops_on_the_validation_split_when_there_is_one(record, artifact):
    calls = record("train_model", types.SimpleNamespace(metrics={}))
    valid = artifact(Dataset, "valid")
    for fraction, expected in ((0.1, valid.uri), (0.0, "")):
        train_model.python_func(
            config="s.config", train_data=artifact(Dataset, "train"),
            eval_data=artifact(Dataset, "eval"), run_date="d", model=artifact(Model, "model"),
            metrics=artifact(Metrics, "metrics"), report=artifact(HTML, "report"),
            validation=valid, validation_fraction=fraction)
        assert calls[-1][2]["validation_uri"] == expected


def _train_candidate(record, artifact, candidate: str):
    """train_model of one sweep candidate given both tables; returns (kwargs, model)."""
    calls = record("train_model", types.SimpleNamespace(metrics={}))
    model = artifact(Model, "model")
    train_model.python_func(
        config="s.config", train_data=artifact(Dataset, "train"),
        eval_data=artifact(Dataset, "eval"), run_date="d", model=model,
        metrics=artifact(Metrics, "metrics"), report=artifact(HTML, "report"),
        soft_labels=artifact(Dataset, "soft"), candidate=candidate)
    [(_, _, kwargs)] = calls
    return kwargs, model


def test_a_kd_sweep_candidate_overrides_the_kd_blocks_and_names_the_model(record, artifact):
    kwargs, model = _train_candidate(
        record, artifact, '{"name": "kd_v2", "overrides": {"loss_weight": 0.5}}')
    assert kwargs["kd_overrides"] == {"loss_weight": 0.5} and kwargs["variant_name"] == "kd_v2"
    assert kwargs["train_uri"] == artifact(Dataset, "soft").uri and kwargs["without_kd"] is False
    assert model.metadata == {"candidate": "kd_v2", "overrides": {"loss_weight": 0.5}}


def test_the_baseline_candidate_trains_without_kd_on_the_rows_without_soft_labels(record,
                                                                                  artifact):
    kwargs, model = _train_candidate(
        record, artifact, '{"name": "baseline", "overrides": {}, "without_kd": true}')
    assert kwargs["train_uri"] == artifact(Dataset, "train").uri and kwargs["without_kd"] is True
    assert model.metadata == {"candidate": "baseline", "overrides": {}}
