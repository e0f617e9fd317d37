"""`recdistill run`: the whole pipeline under kfp.local on the embedded sample, twice."""

import json
import os

import pytest

from pipelines import local_run
from recdistill import exported

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("local")
    first = local_run.run_local(str(work), run_date="2026-11-27")
    # Day two: the first push is now the champion; only an absolute bound, so it pushes again.
    # A kd variant beside the configured student: two items in the sweep's ParallelFor.
    second = local_run.run_local(str(work), thresholds='{"min_auc": 0.55}', run_date="2026-11-28",
                                 kd_variants=[{"loss_weight": 0.5}])
    return work, first, second


def test_first_run_trains_teacher_student_baseline_and_pushes_version_1(two_runs):
    work, first, _ = two_runs
    models = first.metrics["models"]
    assert set(models) == {"student", "teacher", "baseline"}
    assert models["teacher"]["auc"] > models["student"]["auc"] > 0.6
    assert first.metrics["kd_gain"]["auc"] == pytest.approx(
        models["student"]["auc"] - models["baseline"]["auc"])
    assert first.metrics["blessed"] is True
    soft = first.artifacts["generate-soft-labels/soft_labels"]
    stats = json.loads(open(os.path.join(soft, "stats.json")).read())
    assert stats["rows_read"] == stats["rows_written"] == _train_rows(first)
    assert os.path.exists(os.path.join(work, "serving", "1", "saved_model.pb"))


def test_second_run_evaluates_against_the_champion_and_pushes_version_2(two_runs):
    work, first, second = two_runs
    champion = second.metrics["models"]["champion"]
    assert champion["uri"].rstrip("/").endswith(os.path.join("serving", "1"))
    assert champion["auc"] == pytest.approx(first.metrics["models"]["student"]["auc"], abs=1e-6)
    assert sorted(v for v in os.listdir(work / "serving") if v.isdigit()) == ["1", "2"]
    pushed = exported.load_exported(str(work / "serving" / "2"))
    assert "logits" in pushed.outputs
    assert "position" not in pushed.inputs and "kd_soft" not in pushed.inputs


def test_summary_names_every_artifact_and_the_serving_folder(two_runs):
    _, _, second = two_runs
    text = local_run.format_summary(second)
    for name in ("prepare-teacher/teacher", "train-model/model", "evaluate/report"):
        assert name in text
    assert "kd gain (student - baseline)" in text and "champion" in text
    assert "serving folder" in text and "1, 2" in text


def _logged(run, task, output):
    """The metadata a task logged on an output artifact (kfp.local keeps it in the task's
    executor_output.json, as the KFP backend keeps it in ML Metadata)."""
    executor_output = os.path.join(run.run_dir, task, "executor_output.json")
    [artifact] = json.loads(open(executor_output).read())["artifacts"][output]["artifacts"]
    return artifact["metadata"]


def test_metrics_artifacts_carry_training_soft_label_and_evaluation_scalars(two_runs):
    _, first, _ = two_runs
    soft = _logged(first, "generate-soft-labels", "stats")
    assert soft["rows_read"] == soft["rows_written"] == _train_rows(first)
    assert soft["rows_rejected"] == 0
    assert 0.7 < soft["teacher_auc_kd_soft"] <= 1.0
    stats = json.loads(open(os.path.join(first.artifacts["generate-soft-labels/soft_labels"],
                                         "stats.json")).read())
    assert soft["teacher_auc_kd_soft"] == stats["soft_labels"]["kd_soft"]["teacher_auc"]["clk"]
    evaluated = _logged(first, "evaluate", "metrics")
    models = first.metrics["models"]
    assert any(v == pytest.approx(models["student"]["auc"]) for v in evaluated.values())
    assert any(v == pytest.approx(first.metrics["kd_gain"]["auc"]) for v in evaluated.values())
    trained = _logged(first, "train-model-2", "metrics")
    assert trained and all(isinstance(v, (int, float)) for v in trained.values())


def _train_rows(run) -> int:
    """Rows the kd sweep's holdout left for training (about 90% of the sample's 40,000)."""
    rows = _logged(run, "prepare-sweep", "train")["rows"]
    assert 34_000 < rows < 38_000
    return rows


def test_the_sweep_chooses_on_validation_rows_and_that_model_is_evaluated(two_runs):
    _, first, second = two_runs
    for run, names in ((first, {"kd", "baseline"}), (second, {"kd", "kd_v1", "baseline"})):
        chosen = run.metrics["selection"]
        assert set(chosen["candidates"]) == names and chosen["chosen"] in names
        assert run.metrics["model_digest"] == chosen["candidates"][chosen["chosen"]]["digest"]
        logged = _logged(run, "select-candidate", "metrics")
        for name in names:
            assert logged[f"valid_auc_{name}"] == pytest.approx(
                chosen["candidates"][name]["auc"])
        assert "kd sweep: candidates on the validation split" in open(
            run.artifacts["evaluate/report"]).read()
    assert second.metrics["selection"]["candidates"]["kd_v1"]["overrides"] == {
        "loss_weight": 0.5}
    assert "kd sweep: " in local_run.format_summary(second)


def test_classification_metrics_hold_the_students_roc_and_confusion_matrix(two_runs):
    work, first, _ = two_runs
    roc = _logged(first, "evaluate", "roc")
    points = roc["confidenceMetrics"]
    assert len(points) > 10
    recalls = [p["recall"] for p in points]
    assert min(recalls) == pytest.approx(0.0, abs=0.05) and max(recalls) == pytest.approx(1.0)
    assert all(0.0 <= p["falsePositiveRate"] <= 1.0 for p in points)
    matrix = [row["row"] for row in roc["confusionMatrix"]["rows"]]
    assert len(matrix) == 2 and all(len(row) == 2 for row in matrix)
    # Every eval row (the sample's eval.csv has no header) lands in one cell.
    with open(work / "sample" / "eval.csv") as eval_csv:
        assert sum(sum(row) for row in matrix) == sum(1 for _ in eval_csv)


def test_html_artifacts_are_the_reports(two_runs):
    _, first, _ = two_runs
    for name in ("evaluate/report", "train-model-2/report"):
        path = first.artifacts[name]
        html = open(path if os.path.isfile(path) else os.path.join(path, "report.html")).read()
        assert html.lstrip().lower().startswith(("<!doctype html", "<html")), name
    assert "AUC" in open(first.artifacts["evaluate/report"]).read()
