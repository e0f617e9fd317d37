"""Cross-fitted soft labels: each row scored by the fold teacher that left its fold out, in
input order, with the same columns and stats; teacher sets that do not fit are refused."""

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf

from soft_label_helpers import TEACHER_INPUTS, expected_logits, make_rows, student_config
from recdistill import exported
from recdistill.data import filesystems, folds, tables
from recdistill.soft_labels import fold_teachers, job

pytestmark = pytest.mark.slow

INPUT_COLUMNS = ["clk", "user_id", "age_level", "occupation", "tag_brand_list", "adgroup_id",
                 "cate_id", "price"]
OFFSET = 10.0
"""Fold teacher k adds k * OFFSET to the test teacher's logit: its rows are recognisable."""


class _FoldTeacher(tf.Module):
    def __init__(self, offset: float, inputs=TEACHER_INPUTS):
        super().__init__()
        self._offset = offset
        specs = [tf.TensorSpec([None], dtype, name=name) for name, dtype in inputs.items()]
        self.serve = tf.function(self._serve, input_signature=specs)

    def _serve(self, user_id, cate_id, price):
        logits = (0.1 * tf.cast(tf.strings.length(user_id), tf.float32)
                  - 0.2 * tf.cast(tf.strings.length(cate_id), tf.float32)
                  + 0.01 * tf.cast(price, tf.float32) - 0.5 + self._offset)
        return {"logits": logits, "probs": tf.sigmoid(logits)}


def _fold_teacher(path, fold, num_folds, *, key="user_id", eval_auc=0.7, price=tf.int64):
    module = _FoldTeacher(fold * OFFSET, {**TEACHER_INPUTS, "price": price})
    tf.saved_model.save(module, str(path), signatures={
        exported.SERVING_SIGNATURE: module.serve.get_concrete_function()})
    exported.write_metadata(str(path), {
        "model_class": "TestTeacher", "outputs": ["logits", "probs"], "label_fields": ["clk"],
        "custom_ops": [], "eval_metrics": {"eval_auc": eval_auc},
        "cross_fit": {"key": key, "num_folds": num_folds, "excluded_fold": fold}})
    return str(path)


@pytest.fixture(scope="module")
def three_folds(tmp_path_factory):
    root = tmp_path_factory.mktemp("folds")
    return [_fold_teacher(root / f"fold{k}", k, 3, eval_auc=0.6 + 0.1 * k) for k in range(3)]


def _write_input(cfg, out_dir, rows, shard_sizes):
    data_config = type(cfg.data_config)()
    data_config.CopyFrom(cfg.data_config)
    del data_config.input_fields[:]
    data_config.input_fields.extend(f for f in cfg.data_config.input_fields
                                    if f.input_name != "kd_soft")
    start = 0
    for i, size in enumerate(shard_sizes):
        table = pa.table({name: rows[name][start:start + size] for name in INPUT_COLUMNS})
        tables.write_table(table, out_dir, data_config, shard=f"in-{i:02d}")
        start += size
    return out_dir


@pytest.mark.parametrize("input_type", ["CSVInput", "ParquetInput"])
def test_each_row_is_scored_by_the_teacher_that_left_its_fold_out(three_folds, tmp_path,
                                                                   input_type):
    cfg = student_config(input_type)
    rows = make_rows(200, seed=3)
    rows["user_id"] = np.array([f"user{k}" for k in np.random.default_rng(3).integers(0, 40, 200)],
                               dtype=object)
    src = _write_input(cfg, str(tmp_path / "in"), rows, (120, 80))
    shuffled = [three_folds[2], three_folds[0], three_folds[1]]  # order does not matter
    stats = job.generate_soft_labels(shuffled, src, str(tmp_path / "out"), cfg, batch_size=32)

    got = pa.concat_tables(tables.read_table(uri, cfg.data_config)
                           for uri in filesystems.expand(str(tmp_path / "out")))
    assert got.column_names == INPUT_COLUMNS + ["kd_soft"]
    assert got.column("user_id").to_pylist() == list(rows["user_id"])  # input order kept
    fold = folds.buckets(rows["user_id"], 3, salt=folds.FOLD_SALT)
    assert set(fold) == {0, 1, 2}
    want = expected_logits(rows["user_id"], rows["cate_id"], rows["price"]) + OFFSET * fold
    np.testing.assert_allclose(got.column("kd_soft").to_numpy(), want, atol=1e-4)

    assert stats["rows_written"] == 200 and stats["cross_fit"]["key"] == "user_id"
    assert stats["cross_fit"]["teachers"] == three_folds  # in fold order
    kd = stats["soft_labels"]["kd_soft"]
    assert kd["teacher_eval_auc"] == {"clk": pytest.approx(0.7)}  # the fold teachers' mean
    assert "leak_guard" in stats and kd["teacher_auc_gap"]["clk"] == pytest.approx(
        kd["teacher_auc"]["clk"] - 0.7)


def test_a_batch_is_routed_in_sub_batches_and_reassembled_in_order(three_folds):
    handler = fold_teachers.FoldTeachersModelHandler(three_folds, batch_size=8)
    teachers = handler.load_model()
    assert [m.uri for m in teachers.models] == three_folds and teachers.key == "user_id"
    users = ["a", "b", "c", "d", "e", "f", "g", "h"]
    batch = pa.record_batch({"user_id": users, "cate_id": ["c"] * 8,
                             "price": pa.array(range(8), pa.int64())})
    (result,) = handler.run_inference([batch], teachers)
    fold = folds.buckets(users, 3, salt=folds.FOLD_SALT)
    want = expected_logits(users, ["c"] * 8, np.arange(8)) + OFFSET * fold
    np.testing.assert_allclose(result.inference["logits"], want, atol=1e-5)
    assert result.example is batch


def test_teachers_that_are_not_one_splits_k_folds_are_refused(three_folds, tmp_path):
    def load(uris, key=""):
        return fold_teachers.make_handler(uris, cross_fit_key=key).load_model()

    with pytest.raises(ValueError, match=r"3 folds by 'user_id' need 3 fold teachers; got 2, "
                                         r"fold\(s\) \[2\] missing"):
        load(three_folds[:2])
    with pytest.raises(ValueError, match=r"both left out fold 1"):
        load([three_folds[1], three_folds[1], three_folds[0]])
    other = _fold_teacher(tmp_path / "other", 1, 2, key="cate_id")
    with pytest.raises(ValueError, match=r"different splits"):
        load([three_folds[0], other])
    with pytest.raises(ValueError, match=r"split rows by 'user_id', not 'adgroup_id'"):
        load(three_folds, key="adgroup_id")
    from soft_label_helpers import build_teacher
    plain = build_teacher(str(tmp_path / "plain"))
    with pytest.raises(ValueError, match=r"not a cross-fitting fold teacher"):
        load([plain, three_folds[1]])
    odd = _fold_teacher(tmp_path / "odd", 2, 3, price=tf.float32)
    with pytest.raises(ValueError, match=r"different signatures.*price:int64.*price:float32"):
        load([three_folds[0], three_folds[1], odd])
    with pytest.raises(ValueError, match=r"cross-fit key 'user_id' given with one teacher"):
        load(three_folds[0], key="user_id")
