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
