"""Unit test of current_champion: it asks the push destination."""

from components.current_champion.component import current_champion


def test_current_champion_asks_the_destination(record):
    calls = record("current_champion", "gs://b/serving/2")
    assert current_champion.python_func(destination="gs://b/serving", run_date="d") == \
        "gs://b/serving/2"
    assert calls == [("current_champion", ("gs://b/serving",), {})]
