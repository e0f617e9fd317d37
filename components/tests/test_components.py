"""Unit tests of the components' bodies: each forwards artifact URIs to one recdistill.steps call
and copies its result into the outputs. The step is replaced by a recorder; the artifacts are
kfp's own classes on temporary URIs."""

import inspect
import re
import types

import pytest
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, HTML, Metrics, Model

from components.current_champion.component import current_champion
from components.evaluate.component import evaluate
from components.generate_soft_labels.component import generate_soft_labels
from components.prepare_teacher.component import prepare_teacher
from components.push_model.component import push_model
from components.resolve_data_uris.component import resolve_data_uris
from components.train_model.component import train_model
from recdistill import steps

ALL = [current_champion, evaluate, generate_soft_labels, prepare_teacher, push_model,
       resolve_data_uris, train_model]


@pytest.fixture
def record(monkeypatch):
    """Replaces ``recdistill.steps.<name>`` by a recorder returning ``result``."""
    calls = []

    def patch(name, result=None):
        def fake(*args, **kwargs):
            calls.append((name, args, kwargs))
            return result
        monkeypatch.setattr(steps, name, fake)
        return calls
    return patch


def _artifact(cls, tmp_path, name):
    return cls(name=name, uri=str(tmp_path / name), metadata={})


@pytest.mark.parametrize("component", ALL, ids=lambda c: c.name)
def test_every_component_input_is_described_in_its_docstring(component):
    doc = inspect.getdoc(component.python_func)
    described = set(re.findall(r"^\s{2}(\w+):", doc.split("Args:")[1], re.M))
    inputs = set(component.component_spec.inputs or {})
    assert inputs <= described, f"undocumented: {sorted(inputs - described)}"


@pytest.mark.parametrize("component", ALL, ids=lambda c: c.name)
def test_components_skip_installing_kfp_and_run_in_a_project_image(component):
    container = component.component_spec.implementation.container
    assert container.image.startswith("ghcr.io/recdistill/")
    assert "pip install" not in " ".join(container.command)


def test_resolve_data_uris_fills_the_schedule_date():
    out = resolve_data_uris.python_func(run_date="2026-03-04T03:00:00Z",
                                        train_data_template="gs://b/clicks/dt={date}/",
                                        eval_data_template="gs://b/eval.csv")
    assert tuple(out) == ("2026-03-04", "gs://b/clicks/dt=2026-03-04/", "gs://b/eval.csv")


def test_prepare_teacher_passes_uris_and_records_the_source(record, tmp_path):
    calls = record("prepare_teacher")
    teacher = _artifact(Model, tmp_path, "teacher")
    prepare_teacher.python_func(
        config="gs://b/teacher.config", teacher_uri="", run_date="2026-03-04",
        train_data=_artifact(Dataset, tmp_path, "train"), eval_data=_artifact(Dataset, tmp_path, "eval"),
        teacher=teacher, num_steps=7)
    [(_, args, kwargs)] = calls
    assert args == ("gs://b/teacher.config", teacher.uri)
    assert kwargs == dict(teacher_uri="", train_uri=str(tmp_path / "train"),
                          eval_uri=str(tmp_path / "eval"), num_steps=7)
    assert teacher.metadata == {"source": "trained"}


def test_generate_soft_labels_logs_the_job_statistics(record, tmp_path):
    calls = record("generate_soft_labels", {"rows_read": 10, "rows_written": 9,
                                            "rows_rejected": 1, "teacher_auc": 0.7,
                                            "columns": {"kd_soft": {}}})
    stats = _artifact(Metrics, tmp_path, "stats")
    generate_soft_labels.python_func(
        teacher=_artifact(Model, tmp_path, "teacher"), config="c.config",
        train_data=_artifact(Dataset, tmp_path, "train"), run_date="d",
        soft_labels=_artifact(Dataset, tmp_path, "soft"), stats=stats, runner="DataflowRunner",
        beam_args=["--project=p"], max_bad_rows_fraction=0.01)
    [(_, args, kwargs)] = calls
    assert args == (str(tmp_path / "teacher"), "c.config", str(tmp_path / "train"),
                    str(tmp_path / "soft"))
    assert kwargs == dict(runner="DataflowRunner", beam_args=["--project=p"],
                          max_bad_rows_fraction=0.01)
    assert stats.metadata == {"rows_read": 10, "rows_written": 9, "rows_rejected": 1,
                              "teacher_auc": 0.7}


def test_train_model_logs_every_training_metric(record, tmp_path):
    calls = record("train_model", types.SimpleNamespace(metrics={"loss": 0.4, "eval_auc": 0.71}))
    metrics = _artifact(Metrics, tmp_path, "metrics")
    model = _artifact(Model, tmp_path, "model")
    report = _artifact(HTML, tmp_path, "report")
    train_model.python_func(
        config="s.config", train_data=_artifact(Dataset, tmp_path, "train"),
        eval_data=_artifact(Dataset, tmp_path, "eval"), run_date="d", model=model,
        metrics=metrics, report=report, warm_start="gs://b/serving/3", without_kd=True,
        num_steps=5, mixed_precision=True)
    [(_, args, kwargs)] = calls
    assert args == ("s.config", model.uri)
    assert kwargs["warm_start"] == "gs://b/serving/3" and kwargs["without_kd"] is True
    assert kwargs["report_copy"] == report.path
    assert metrics.metadata == {"eval_auc": 0.71, "loss": 0.4}


def test_evaluate_fills_metrics_roc_and_confusion_and_returns_the_blessing(record, tmp_path):
    result = types.SimpleNamespace(
        blessed=False, scalars={"student_auc": 0.7, "kd_gain_auc": 0.01},
        roc={"fpr": [0.0, 1.0], "tpr": [0.0, 1.0], "thresholds": [1.0, 0.0]},
        confusion_matrix={"categories": ["0", "1"], "matrix": [[5, 1], [2, 3]]})
    calls = record("evaluate", result)
    metrics, roc = _artifact(Metrics, tmp_path, "m"), _artifact(ClassificationMetrics, tmp_path, "r")
    report, evaluation = _artifact(HTML, tmp_path, "h"), _artifact(Artifact, tmp_path, "e")
    blessed = evaluate.python_func(
        model=_artifact(Model, tmp_path, "student"), eval_data=_artifact(Dataset, tmp_path, "ev"),
        config="s.config", teacher=_artifact(Model, tmp_path, "teacher"),
        baseline=_artifact(Model, tmp_path, "baseline"), champion="", thresholds="{}",
        run_date="d", metrics=metrics, roc=roc, report=report, evaluation=evaluation)
    assert blessed is False
    [(_, args, kwargs)] = calls
    assert args == (str(tmp_path / "student"), str(tmp_path / "ev"), "s.config", evaluation.uri)
    assert kwargs["report_copy"] == report.path
    assert kwargs["baseline_uri"] == str(tmp_path / "baseline")
    assert metrics.metadata == {"kd_gain_auc": 0.01, "student_auc": 0.7}
    assert roc.metadata["confusionMatrix"]["rows"] == [{"row": [5, 1]}, {"row": [2, 3]}]
    assert [p["recall"] for p in roc.metadata["confidenceMetrics"]] == [0.0, 1.0]


def test_push_model_returns_the_pushed_version(record, tmp_path):
    calls = record("push_model", types.SimpleNamespace(version_uri="gs://b/serving/4"))
    out = push_model.python_func(model=_artifact(Model, tmp_path, "student"),
                                 evaluation=_artifact(Artifact, tmp_path, "e"),
                                 destination="gs://b/serving", run_date="d", keep=3)
    assert out == "gs://b/serving/4"
    [(_, args, kwargs)] = calls
    assert args == (str(tmp_path / "student"), "gs://b/serving")
    assert kwargs == dict(evaluation_dir=str(tmp_path / "e"), keep=3)


def test_current_champion_asks_the_destination(record):
    calls = record("current_champion", "gs://b/serving/2")
    assert current_champion.python_func(destination="gs://b/serving", run_date="d") == \
        "gs://b/serving/2"
    assert calls == [("current_champion", ("gs://b/serving",), {})]
