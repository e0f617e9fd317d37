"""Unit test of resolve_data_uris: the schedule time fills the data URI templates."""

from components.resolve_data_uris.component import resolve_data_uris


def test_resolve_data_uris_fills_the_schedule_date():
    out = resolve_data_uris.python_func(run_date="2026-03-04T03:00:00Z",
                                        train_data_template="gs://b/clicks/dt={date}/",
                                        eval_data_template="gs://b/eval.csv")
    assert tuple(out) == ("2026-03-04", "gs://b/clicks/dt=2026-03-04/", "gs://b/eval.csv")
