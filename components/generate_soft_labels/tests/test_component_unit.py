"""Unit tests of generate_soft_labels: URIs and Beam options forwarded to the job, and the
job's real stats (as recdistill.soft_labels.stats builds them) logged to the Metrics artifact."""

import numpy as np
import pytest
from kfp.dsl import Dataset, Metrics, Model

from components.generate_soft_labels.component import generate_soft_labels
from recdistill.soft_labels import stats as stats_lib


def _job_stats(soft_labels, hard_labels, rejected=()):
    """stats.json as the job writes it, from one chunk of soft- and hard-labelled rows."""
    summary = stats_lib.SoftLabelSummary.of_chunk(
        soft_labels, hard_labels, rows_read=len(next(iter(hard_labels.values()))) + len(rejected),
        rejected=list(rejected), seed=0)
    return summary.to_dict({name: {"teacher_output": "logits"} for name in soft_labels},
                           list(hard_labels))


def _run(record, artifact, result):
    calls = record("generate_soft_labels", result)
    stats = artifact(Metrics, "stats")
    generate_soft_labels.python_func(
        teacher=artifact(Model, "teacher"), config="c.config",
        train_data=artifact(Dataset, "train"), run_date="d",
        soft_labels=artifact(Dataset, "soft"), stats=stats, runner="DataflowRunner",
        beam_args=["--project=p"], max_bad_rows_fraction=0.01)
    return calls, stats.metadata


def test_generate_soft_labels_forwards_uris_and_beam_options(record, artifact, tmp_path):
    calls, _ = _run(record, artifact, _job_stats({"kd_soft": [0.2, 0.9]}, {"clk": [0, 1]}))
    [(_, args, kwargs)] = calls
    assert args == (str(tmp_path / "teacher"), "c.config", str(tmp_path / "train"),
                    str(tmp_path / "soft"))
    assert kwargs == dict(runner="DataflowRunner", beam_args=["--project=p"],
                          max_bad_rows_fraction=0.01)


def test_teacher_auc_of_each_soft_label_column_goes_to_the_metrics(record, artifact):
    # kd_a ranks clicks perfectly except one pair (5 of 6 pairs right); kd_b inverts them.
    clicks = np.array([0, 0, 1, 1, 0])
    result = _job_stats({"kd_a": np.array([-2.0, 0.5, 0.1, 3.0, -1.0]),
                         "kd_b": np.array([2.0, 1.0, -1.0, -2.0, 0.0])},
                        {"clk": clicks}, rejected=["f.csv: row 7: bad value"])
    _, metrics = _run(record, artifact, result)
    assert metrics == {"rows_read": 6, "rows_written": 5, "rows_rejected": 1,
                       "teacher_auc_kd_a": pytest.approx(5 / 6),
                       "teacher_auc_kd_b": pytest.approx(0.0)}


def test_several_hard_labels_name_the_label_and_undefined_aucs_are_left_out(record, artifact):
    result = _job_stats({"kd": np.array([0.1, 0.8, 0.3, 0.9])},
                        {"clk": np.array([0, 1, 0, 1]), "buy": np.array([0, 0, 1, 1]),
                         "rating": np.array([1, 3, 4, 5])})
    _, metrics = _run(record, artifact, result)
    assert {k: v for k, v in metrics.items() if k.startswith("teacher_auc")} == {
        "teacher_auc_kd_clk": pytest.approx(1.0), "teacher_auc_kd_buy": pytest.approx(0.75)}


def test_fold_teachers_replace_the_teacher_for_cross_fitted_soft_labels(record, artifact):
    calls = record("generate_soft_labels", _job_stats({"kd_soft": [0.2, 0.9]}, {"clk": [0, 1]}))
    generate_soft_labels.python_func(
        teacher=artifact(Model, "teacher"), config="c.config",
        train_data=artifact(Dataset, "train"), run_date="d",
        soft_labels=artifact(Dataset, "soft"), stats=artifact(Metrics, "stats"),
        fold_teachers=["gs://b/fold0", "gs://b/fold1"])
    [(_, args, _)] = calls
    assert args[0] == ["gs://b/fold0", "gs://b/fold1"]
