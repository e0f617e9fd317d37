"""Unit test of evaluate: metrics, ROC, confusion matrix and the blessing returned."""

import types

from kfp.dsl import Artifact, ClassificationMetrics, Dataset, HTML, Metrics, Model

from components.evaluate.component import evaluate


def test_evaluate_fills_metrics_roc_and_confusion_and_returns_the_blessing(record, artifact,
                                                                            tmp_path):
    result = types.SimpleNamespace(
        blessed=False, scalars={"student_auc": 0.7, "kd_gain_auc": 0.01},
        roc={"fpr": [0.0, 1.0], "tpr": [0.0, 1.0], "thresholds": [1.0, 0.0]},
        confusion_matrix={"categories": ["0", "1"], "matrix": [[5, 1], [2, 3]]})
    calls = record("evaluate", result)
    metrics, roc = artifact(Metrics, "m"), artifact(ClassificationMetrics, "r")
    report, evaluation = artifact(HTML, "h"), artifact(Artifact, "e")
    blessed = evaluate.python_func(
        model=artifact(Model, "student"), eval_data=artifact(Dataset, "ev"),
        config="s.config", teacher=artifact(Model, "teacher"),
        baseline=artifact(Model, "baseline"), champion="", thresholds="{}",
        run_date="d", metrics=metrics, roc=roc, report=report, evaluation=evaluation)
    assert blessed is False
    [(_, args, kwargs)] = calls
    assert args == (str(tmp_path / "student"), str(tmp_path / "ev"), "s.config", evaluation.uri)
    assert kwargs["report_copy"] == report.path
    assert kwargs["baseline_uri"] == str(tmp_path / "baseline")
    assert metrics.metadata == {"kd_gain_auc": 0.01, "student_auc": 0.7}
    assert roc.metadata["confusionMatrix"]["rows"] == [{"row": [5, 1]}, {"row": [2, 3]}]
    assert [p["recall"] for p in roc.metadata["confidenceMetrics"]] == [0.0, 1.0]


def test_evaluate_passes_the_kd_sweep_selection_to_the_report(record, artifact):
    result = types.SimpleNamespace(
        blessed=True, scalars={}, roc={"fpr": [0.0], "tpr": [0.0], "thresholds": [1.0]},
        confusion_matrix={"categories": ["0", "1"], "matrix": [[1, 0], [0, 1]]})
    calls = record("evaluate", result)
    selection = artifact(Artifact, "selection")
    evaluate.python_func(
        model=artifact(Model, "student"), eval_data=artifact(Dataset, "ev"),
        config="s.config", teacher=artifact(Model, "teacher"),
        baseline=artifact(Model, "baseline"), champion="", thresholds="{}", run_date="d",
        metrics=artifact(Metrics, "m"), roc=artifact(ClassificationMetrics, "r"),
        report=artifact(HTML, "h"), evaluation=artifact(Artifact, "e"), selection=selection)
    [(_, _, kwargs)] = calls
    assert kwargs["selection_uri"] == selection.uri
