"""Tests for recdistill.data.folds: stable key buckets and the streaming split."""

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from google.protobuf import text_format

from recdistill.data import filesystems as fsys
from recdistill.data import folds, tables
from recdistill.protos import pipeline_pb2

FIELDS = """
input_fields { input_name: "label" input_type: INT32 }
input_fields { input_name: "user" input_type: INT64 }
input_fields { input_name: "item" input_type: STRING }
"""


def _config(input_type="ParquetInput"):
    return text_format.Parse(f"input_type: {input_type}\n{FIELDS}", pipeline_pb2.DatasetConfig())


def test_buckets_are_farmhash_of_salted_text():
    # An independent statement of the rule: Fingerprint64("<salt>:<value>") mod n.
    expected = tf.strings.to_hash_bucket_fast(["s:7", "s:-3", "s:abc"], 5).numpy()
    assert list(folds.buckets([7, -3], 5, salt="s")) == list(expected[:2])
    assert list(folds.buckets(["abc"], 5, salt="s")) == [expected[2]]


def test_arrow_numpy_and_graph_tensors_agree():
    ids = np.arange(-50, 1000, dtype=np.int64)
    arrow = folds.buckets(pa.array(ids), 7, salt=folds.FOLD_SALT)
    assert list(folds.buckets(ids, 7, salt=folds.FOLD_SALT)) == list(arrow)
    graph = tf.function(lambda t: folds.buckets(t, 7, salt=folds.FOLD_SALT))(tf.constant(ids))
    assert list(graph.numpy()) == list(arrow)
    text = folds.buckets(tf.constant([str(i) for i in ids]), 7, salt=folds.FOLD_SALT)
    assert list(text.numpy()) == list(arrow)  # an id written as text lands in the same fold
    assert set(arrow) == set(range(7))
    assert abs(np.mean(arrow == 0) - 1 / 7) < 0.05  # roughly even


def test_salts_give_independent_splits():
    ids = np.arange(20_000)
    fold = folds.buckets(ids, 5, salt=folds.FOLD_SALT)
    holdout = folds.buckets(ids, 10, salt=folds.HOLDOUT_SALT) == 0
    for k in range(5):  # the holdout takes ~10% of every fold, not all of one
        assert 0.08 < holdout[fold == k].mean() < 0.12


def test_float_keys_and_bad_counts_are_refused():
    with pytest.raises(ValueError, match="'price' must hold integers or strings"):
        folds.buckets(pa.array([1.0, 2.0]), 3, salt="s", column="price")
    with pytest.raises(ValueError, match="'price' must hold integers or strings"):
        folds.buckets(tf.constant([1.0]), 3, salt="s", column="price")
    with pytest.raises(ValueError, match="num_buckets must be >= 1"):
        folds.buckets([1], 0, salt="s")


@pytest.mark.parametrize("input_type", ["CSVInput", "ParquetInput"])
def test_split_table_keeps_rows_order_and_keys_together(tmp_path, monkeypatch, input_type):
    monkeypatch.setattr(folds, "SHARD_ROWS", 64)  # several shards per part
    cfg = _config(input_type)
    users = np.repeat(np.arange(40), 5)
    table = pa.table({"label": pa.array(np.arange(200) % 2, pa.int32()),
                      "user": pa.array(users, pa.int64()),
                      "item": pa.array([f"i{n}" for n in range(200)])})
    src = tables.write_table(table, str(tmp_path / "in"), cfg)
    out = {str(tmp_path / "rest"): (1, 2), str(tmp_path / "zero"): (0,),
           str(tmp_path / "all"): (0, 1, 2)}
    rows = folds.split_table(src, cfg, key="user", num_buckets=3, salt=folds.FOLD_SALT, parts=out)
    bucket = folds.buckets(users, 3, salt=folds.FOLD_SALT)
    for uri, kept in out.items():
        got = tables.read_table(uri, cfg)
        want = np.flatnonzero(np.isin(bucket, kept))
        assert rows[uri] == len(want) == got.num_rows
        assert got.column("item").to_pylist() == [f"i{n}" for n in want]  # input order
        assert fsys.is_complete(uri)
    assert len(fsys.expand(str(tmp_path / "all"))) > 1


def test_split_table_errors_name_the_problem_and_leave_nothing(tmp_path):
    cfg = _config()
    src = tables.write_table(pa.table({"label": pa.array([1], pa.int32()),
                                       "user": pa.array([1], pa.int64()),
                                       "item": pa.array(["a"])}), str(tmp_path / "in"), cfg)
    with pytest.raises(ValueError, match="split key 'uid' is not an input field.*label, user"):
        folds.split_table(src, cfg, key="uid", num_buckets=2, salt="s",
                          parts={str(tmp_path / "a"): (0,)})
    with pytest.raises(ValueError, match=r"buckets \[2\] outside \[0, 2\)"):
        folds.split_table(src, cfg, key="user", num_buckets=2, salt="s",
                          parts={str(tmp_path / "a"): (2,)})
    assert not (tmp_path / "a").exists()


# ---------------------------------------------------------------- the latest rows (time holdout)


def _timed_table(tmp_path, cfg, times):
    table = pa.table({"label": pa.array(np.arange(len(times)) % 2, pa.int32()),
                      "user": pa.array(np.arange(len(times)) % 7, pa.int64()),
                      "item": pa.array([f"i{n}" for n in range(len(times))])})
    return tables.write_table(table, str(tmp_path / "in"), cfg)


@pytest.mark.parametrize("input_type", ["CSVInput", "ParquetInput"])
def test_split_latest_by_row_order_takes_the_last_rows_in_order(tmp_path, monkeypatch,
                                                                input_type):
    monkeypatch.setattr(folds, "SHARD_ROWS", 64)  # batches of 16: the cut falls inside one
    cfg = _config(input_type)
    src = _timed_table(tmp_path, cfg, range(203))
    early, late = str(tmp_path / "early"), str(tmp_path / "late")
    rows = folds.split_latest(src, cfg, fraction=0.1, earlier_uri=early, latest_uri=late)
    assert rows == {early: 183, late: 20}  # round(20.3)
    assert tables.read_table(late, cfg).column("item").to_pylist() == \
        [f"i{n}" for n in range(183, 203)]
    assert tables.read_table(early, cfg).column("item").to_pylist() == \
        [f"i{n}" for n in range(183)]
    assert fsys.is_complete(early) and fsys.is_complete(late)


def test_split_latest_by_a_time_column_keeps_ties_together(tmp_path, monkeypatch):
    monkeypatch.setattr(folds, "SHARD_ROWS", 64)
    cfg = text_format.Parse('input_type: CSVInput\n' + FIELDS +
                            'input_fields { input_name: "ts" input_type: INT64 }',
                            pipeline_pb2.DatasetConfig())
    # not in time order: the column decides, not the position; ts 90 is shared by 3 rows
    ts = np.array([50, 95, 10, 90, 99, 20, 90, 30, 90, 97] * 10)
    table = pa.table({"label": pa.array(np.arange(100) % 2, pa.int32()),
                      "user": pa.array(np.arange(100), pa.int64()),
                      "item": pa.array([f"i{n}" for n in range(100)]),
                      "ts": pa.array(ts, pa.int64())})
    src = tables.write_table(table, str(tmp_path / "in"), cfg)
    early, late = str(tmp_path / "early"), str(tmp_path / "late")
    # the latest 35% start inside the ties at 90: all 60 rows at >= 90 go to the latest part
    rows = folds.split_latest(src, cfg, fraction=0.35, earlier_uri=early, latest_uri=late,
                              time_column="ts")
    assert rows == {early: 40, late: 60}
    got = tables.read_table(late, cfg)
    assert got.column("item").to_pylist() == [f"i{n}" for n in np.flatnonzero(ts >= 90)]
    assert min(got.column("ts").to_pylist()) == 90
    assert max(tables.read_table(early, cfg).column("ts").to_pylist()) == 50


def test_split_latest_errors_name_the_problem(tmp_path):
    cfg = _config()
    src = _timed_table(tmp_path, cfg, range(10))
    parts = dict(earlier_uri=str(tmp_path / "a"), latest_uri=str(tmp_path / "b"))
    with pytest.raises(ValueError, match="time column 'ts' is not an input field"):
        folds.split_latest(src, cfg, fraction=0.1, time_column="ts", **parts)
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\), got 1"):
        folds.split_latest(src, cfg, fraction=1, **parts)
    assert not (tmp_path / "a").exists()
