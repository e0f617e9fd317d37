import datetime

import pytest

from recdistill import run_date

TODAY = datetime.date(2026, 11, 28)


@pytest.mark.parametrize("raw, expected", [
    ("2026-03-04T03:00:00Z", "2026-03-04"),
    ("2026-03-04T03:00:00.123456+00:00", "2026-03-04"),
    ("2026-03-04", "2026-03-04"),
    ("20260304", "2026-03-04"),
    (" 2026-03-04 ", "2026-03-04"),
])
def test_schedule_times_and_dates_give_the_date(raw, expected):
    assert run_date.resolve_run_date(raw, today=TODAY) == expected


@pytest.mark.parametrize("raw", ["{{$.pipeline_job_schedule_time_utc}}", "", None, "latest"])
def test_unresolved_placeholder_falls_back_to_today_with_a_warning(raw, caplog):
    assert run_date.resolve_run_date(raw, today=TODAY) == "2026-11-28"
    assert "using today's UTC date 2026-11-28" in caplog.text


def test_impossible_calendar_date_is_an_error_not_today():
    with pytest.raises(ValueError, match="2026-02-30.*not a valid calendar date"):
        run_date.resolve_run_date("2026-02-30", today=TODAY)


def test_partition_uri_fills_every_date_field():
    assert (run_date.partition_uri("gs://b/clicks/dt={date}/part-{date}.csv", "2026-01-02")
            == "gs://b/clicks/dt=2026-01-02/part-2026-01-02.csv")
    assert run_date.partition_uri("/data/train.csv", "2026-01-02") == "/data/train.csv"


def test_previous_date_is_the_day_before_the_run_date():
    assert (run_date.partition_uri("gs://b/teacher/dt={previous_date}/", "2026-03-01")
            == "gs://b/teacher/dt=2026-02-28/")
    assert (run_date.partition_uri("s3://b/{previous_date}/{date}", "2026-01-01")
            == "s3://b/2025-12-31/2026-01-01")
