"""`recdistill run`: the whole pipeline under kfp.local, on two days.

Day one runs the embedded sample on local disk. Day two runs as on a Kubeflow whose store is
MinIO or S3 (moto on loopback): its tables, student config, reused teacher (day one's) and
serving folder (holding day one's push) are on the store; kfp.local keeps its pipeline root
on local disk (the closest it allows), every step reads and writes the store.
"""

import json
import os

import pytest

from pipelines import local_run
from recdistill import config as config_lib
from recdistill import exported, push
from recdistill.data import filesystems, sample

# The first test holds the module fixture: two whole kfp.local runs (about 160 CPU s each), on one
# core when dev/test.sh shares the machine with a second xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, new_s3_bucket):
    work = tmp_path_factory.mktemp("local")
    first = local_run.run_local(str(work), run_date="2026-11-27")

    # Day two moves to the S3 store: the sample's tables and student config, day one's teacher
    # (reused, not retrained) and day one's serving folder, whose push is now the champion.
    bucket = new_s3_bucket()
    remote = {}
    for name in (sample.TRAIN_FILE, sample.EVAL_FILE, sample.STUDENT_CONFIG):
        remote[name] = filesystems.join(bucket, "in", name)
        filesystems.copy_tree(str(work / "sample" / name), remote[name])
    teacher = filesystems.join(bucket, "models", "teacher")
    filesystems.copy_tree(exported.resolve_export(first.artifacts["prepare-teacher/teacher"]),
                          teacher)
    serving = filesystems.join(bucket, "serving")
    for name in ("1", push.CHAMPION_FILE):
        filesystems.copy_tree(str(work / "serving" / name), filesystems.join(serving, name))
    # Only an absolute bound, so it pushes again. A kd variant beside the configured student:
    # two items in the sweep's ParallelFor.
    second = local_run.run_local(str(work / "day2"), student_config=remote[sample.STUDENT_CONFIG],
                                 teacher_uri=teacher, train_data=remote[sample.TRAIN_FILE],
                                 eval_data=remote[sample.EVAL_FILE],
                                 thresholds='{"min_auc": 0.55}', num_steps=30,
                                 run_date="2026-11-28", serving_dir=serving,
                                 kd_variants=[{"loss_weight": 0.5}])
    return work, first, second, teacher


def test_first_run_trains_teacher_student_baseline_and_pushes_version_1(two_runs):
    work, first, _, _ = two_runs
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


def test_second_run_on_s3_evaluates_against_the_champion_and_pushes_version_2(two_runs):
    _, first, second, _ = two_runs
    serving = second.serving_dir
    assert serving.startswith("s3://")
    assert second.metrics["blessed"] is True
    champion = second.metrics["models"]["champion"]
    assert champion["uri"].rstrip("/") == filesystems.join(serving, "1")
    assert champion["auc"] == pytest.approx(first.metrics["models"]["student"]["auc"], abs=1e-6)
    assert second.metrics["models"]["student"]["auc"] > 0.55
    assert push.list_versions(serving) == [1, 2]
    pushed = exported.load_exported(filesystems.join(serving, "2"))
    assert "logits" in pushed.outputs
    assert "position" not in pushed.inputs and "kd_soft" not in pushed.inputs


def test_second_run_copies_the_s3_teacher_instead_of_training_it(two_runs):
    _, first, second, teacher = two_runs
    copied = second.artifacts["prepare-teacher/teacher"]
    assert exported.model_digest(copied) == exported.model_digest(teacher)
    # The same export on the same eval rows: day one's teacher AUC, to the digit.
    assert second.metrics["models"]["teacher"]["auc"] == pytest.approx(
        first.metrics["models"]["teacher"]["auc"], abs=1e-6)


def test_summary_names_every_artifact_and_the_serving_folder(two_runs):
    _, _, second, _ = two_runs
    text = local_run.format_summary(second)
    for name in ("prepare-teacher/teacher", "train-model/model", "evaluate/report"):
        assert name in text
    assert "kd gain (student - baseline)" in text and "champion" in text
    assert f"serving folder {second.serving_dir}: 1, 2" in text


def _logged(run, task, output):
    """The metadata a task logged on an output artifact (kfp.local keeps it in the task's
    executor_output.json, as the KFP backend keeps it in ML Metadata)."""
    executor_output = os.path.join(run.run_dir, task, "executor_output.json")
    [artifact] = json.loads(open(executor_output).read())["artifacts"][output]["artifacts"]
    return artifact["metadata"]


def test_metrics_artifacts_carry_training_soft_label_and_evaluation_scalars(two_runs):
    _, first, _, _ = two_runs
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
    trained = _logged(first, _candidate_task(first, "baseline"), "metrics")
    assert trained and all(isinstance(v, (int, float)) for v in trained.values())


def _candidate_task(run, candidate: str) -> str:
    """The task folder of the sweep's loop iteration that trained ``candidate``."""
    [task] = [os.path.dirname(name) for name in run.artifacts
              if name.endswith("/train-model/model")
              and _logged(run, os.path.dirname(name), "model").get("candidate") == candidate]
    return task


def test_the_baseline_trains_in_the_sweep_loop_without_soft_labels(two_runs):
    _, first, second, _ = two_runs
    for run, names in ((first, {"kd", "baseline"}), (second, {"kd", "kd_v1", "baseline"})):
        tasks = {name: _candidate_task(run, name) for name in names}
        assert len(set(tasks.values())) == len(names)  # one loop iteration per candidate
        kd_blocks = {name: len(config_lib.load_config(exported.read_metadata(
            exported.export_dir(run.artifacts[f"{task}/model"]))["config"]).model_config.kd)
            for name, task in tasks.items()}
        assert kd_blocks == {name: 0 if name == "baseline" else 1 for name in names}
        # evaluate compares with the loop's baseline, copied out by select-candidate
        assert run.metrics["models"]["baseline"]["digest"] == exported.model_digest(
            exported.export_dir(run.artifacts[f"{tasks['baseline']}/model"]))


def _train_rows(run) -> int:
    """Rows the kd sweep's holdout left for training (about 90% of the sample's 40,000)."""
    rows = _logged(run, "prepare-sweep", "train")["rows"]
    assert 34_000 < rows < 38_000
    return rows


def test_the_sweep_chooses_on_validation_rows_and_that_model_is_evaluated(two_runs):
    _, first, second, _ = two_runs
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
    work, first, _, _ = two_runs
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
    _, first, _, _ = two_runs
    for name in ("evaluate/report", f"{_candidate_task(first, 'baseline')}/report"):
        path = first.artifacts[name]
        html = open(path if os.path.isfile(path) else os.path.join(path, "report.html")).read()
        assert html.lstrip().lower().startswith(("<!doctype html", "<html")), name
    assert "AUC" in open(first.artifacts["evaluate/report"]).read()
