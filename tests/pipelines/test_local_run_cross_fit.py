"""`recdistill run --cross-fit-folds 2`: kfp.local runs dsl.ParallelFor over the fold teachers
and dsl.Collected feeds them to the soft-label step; the full-data teacher is still evaluated."""

import json
import os

import numpy as np
import pytest

from pipelines import local_run
from recdistill import exported
from recdistill import config as config_lib
from recdistill.data import folds, sample, tables

pytestmark = pytest.mark.slow


@pytest.mark.timeout(2400)  # 12 kfp.local steps, 5 of them training (3 teachers, 2 students)
def test_a_cross_fitted_run_scores_each_fold_with_the_teacher_that_left_it_out(tmp_path):
    data = sample.write_sample_data(str(tmp_path / "sample"), rows=1000)
    run = local_run.run_local(str(tmp_path), student_config=data.student_config,
                              teacher_config=data.teacher_config, train_data=data.train_path,
                              eval_data=data.eval_path, run_date="2026-11-27", num_steps=10,
                              cross_fit_folds=2)
    cfg = config_lib.load_config(data.student_config)
    soft = run.artifacts["generate-soft-labels/soft_labels"]
    stats = json.loads(open(os.path.join(soft, "stats.json")).read())
    # The job labels the kd sweep's train part: the 800 training rows less the holdout's users.
    train_part = tables.read_table(run.artifacts["prepare-sweep/train"], cfg.data_config,
                                   fields=["user_id"], optional_fields=["kd_soft"])
    assert 600 < stats["rows_written"] == train_part.num_rows < 800
    assert stats["cross_fit"]["key"] == "user_id"
    teachers = [exported.load_exported(uri) for uri in stats["cross_fit"]["teachers"]]
    assert sorted(t.metadata["cross_fit"]["excluded_fold"] for t in teachers) == [0, 1]
    assert all(t.metadata["cross_fit"] == {"key": "user_id", "num_folds": 2,
                                           "excluded_fold": t.metadata["cross_fit"][
                                               "excluded_fold"]} for t in teachers)
    # Each row's soft label is the logit of the fold teacher that never read its fold.
    table = tables.read_table(soft, cfg.data_config)
    fold = folds.buckets(table.column("user_id"), 2, salt=folds.FOLD_SALT)
    columns = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    by_fold = {t.metadata["cross_fit"]["excluded_fold"]: t for t in teachers}
    for k in (0, 1):
        rows = fold == k
        want = by_fold[k].predict({n: v[rows] for n, v in columns.items()})["logits"]
        np.testing.assert_allclose(columns["kd_soft"][rows], np.ravel(want), atol=1e-4)
    # The teacher evaluated (and reused) is the one trained on every row.
    teacher = run.artifacts["prepare-teacher/teacher"]
    assert "cross_fit" not in exported.load_exported(exported.resolve_export(teacher)).metadata
    assert run.metrics["models"]["teacher"]["uri"].startswith(teacher)
