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
    second = local_run.run_local(str(work), thresholds='{"min_auc": 0.55}', run_date="2026-11-28")
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
    assert stats["rows_read"] == stats["rows_written"] == 40_000
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
