"""Unit test of cross_fit_folds: the plan's folds are the ParallelFor items; bad K is refused
by the real steps.cross_fit_plan (no teacher trains)."""

import pytest

from components.cross_fit_folds.component import cross_fit_folds


def test_cross_fit_folds_returns_the_plans_folds(record):
    calls = record("cross_fit_plan", ([0, 1, 2], "user_id"))
    assert cross_fit_folds.python_func(student_config="s.config", num_folds=3, key="",
                                       run_date="d") == [0, 1, 2]
    assert calls == [("cross_fit_plan", ("s.config", 3, ""), {})]


def test_one_fold_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"cross_fit_folds must be 0 \(off\) or >= 2, got 1"):
        cross_fit_folds.python_func(student_config="unused.config", num_folds=1, key="",
                                    run_date="d")
