"""ReadShards' read-ahead thread: order, bad rows per batch, errors and early stops."""

import itertools
import threading

import pytest

from recdistill.data import tables
from recdistill.soft_labels import transforms


def test_read_ahead_keeps_order_and_hands_each_batch_its_bad_rows():
    report = tables.ReadReport()

    def batches():
        report.bad_rows.append("bad before b0")
        yield "b0"
        yield "b1"
        report.bad_rows.extend(["bad before b2", "another"])
        yield "b2"
        report.bad_rows.append("bad after the last batch")

    assert list(transforms._read_ahead(batches(), report)) == [
        ("b0", ["bad before b0"]), ("b1", []), ("b2", ["bad before b2", "another"]),
        (None, ["bad after the last batch"])]
    assert report.bad_rows == []


def test_read_ahead_raises_the_readers_error_on_the_consumers_thread():
    def batches():
        yield "b0"
        raise tables.DataError("a.csv: row 3, field 'price': 'oops'")

    items = transforms._read_ahead(batches(), tables.ReadReport())
    assert next(items) == ("b0", [])
    with pytest.raises(tables.DataError, match="row 3, field 'price'"):
        next(items)


def test_read_ahead_stops_reading_when_the_consumer_stops():
    produced = itertools.count()
    endless = (next(produced) for _ in itertools.count())
    items = transforms._read_ahead(endless, tables.ReadReport())
    assert next(items) == (0, [])
    items.close()  # what Beam does with a DoFn whose downstream failed
    assert not any(t.name == "soft-labels-read-ahead" for t in threading.enumerate())
    assert next(produced) <= 4  # read at most a few batches ahead, then stopped
