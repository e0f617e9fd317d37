"""steps.prepare_teacher with the daily alternative to cross-fitting: yesterday's teacher,
named by ``{previous_date}`` in teacher_uri and read from its versioned push folder."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from recdistill import exported, push, steps  # noqa: E402

import toy_models  # noqa: E402


def test_yesterdays_pushed_teacher_is_reused_from_a_previous_date_uri(tmp_path):
    yesterday = toy_models.save_linear(tmp_path / "trained" / "day1", 0.5, -1.0, 0.1)
    today = toy_models.save_linear(tmp_path / "trained" / "day2", 2.0, 1.0, 0.0)
    push.push_model(yesterday, str(tmp_path / "teachers" / "2026-02-28"), force=True)
    push.push_model(today, str(tmp_path / "teachers" / "2026-03-01"), force=True)
    model_dir = str(tmp_path / "run" / "teacher")

    export = steps.prepare_teacher("unused.config", model_dir, run_date="2026-03-01",
                                   teacher_uri=str(tmp_path / "teachers" / "{previous_date}"))
    assert exported.model_digest(export) == exported.model_digest(yesterday)
    assert exported.model_digest(export) != exported.model_digest(today)


def test_a_missing_day_names_the_filled_in_uri(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"teacher_uri '.*\{previous_date\}' \(run date "
                                                r"2026-03-01\): .*teachers/2026-02-28 holds no "
                                                r"export"):
        steps.prepare_teacher("unused.config", str(tmp_path / "run"), run_date="2026-03-01",
                              teacher_uri=str(tmp_path / "teachers" / "{previous_date}"))
