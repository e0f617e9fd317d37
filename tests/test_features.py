"""Tests for recdistill.features: each encoder against values worked out independently."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format

from recdistill import features
from recdistill.protos import pipeline_pb2

CONFIG = """
data_config {
  input_fields { input_name: "label" input_type: INT32 }
  input_fields { input_name: "user" input_type: STRING }
  input_fields { input_name: "uid" input_type: INT64 default_val: "7" }
  input_fields { input_name: "price" input_type: DOUBLE }
  input_fields { input_name: "flag" input_type: BOOL default_val: "true" }
  input_fields { input_name: "tags" input_type: STRING default_val: "none" }
  label_fields: "label"
}
feature_configs { input_names: "user" hash_bucket_size: 100 embedding_dim: 3 }
feature_configs { feature_name: "uid_id" input_names: "uid" num_buckets: 10 embedding_dim: 2 }
feature_configs { input_names: "price" feature_type: RawFeature }
feature_config { features { input_names: "tags" feature_type: TagFeature hash_bucket_size: 9
                            embedding_dim: 2 separator: ";" } }
"""


def _cfg():
    return text_format.Parse(CONFIG, pipeline_pb2.EasyRecConfig())


def _encoder(text, vocab=(), **kwargs):
    return features.FeatureEncoder(text, vocab=vocab, **kwargs)


def _table(encoder):
    return encoder.embedding.embeddings.numpy()


def test_serving_dtypes_follow_the_contract():
    t = pipeline_pb2.DatasetConfig.FieldType
    assert features.serving_dtype(t.Value("STRING")) == tf.string
    for name in ("INT32", "INT64", "BOOL"):
        assert features.serving_dtype(t.Value(name)) == tf.int64
    for name in ("FLOAT", "DOUBLE"):
        assert features.serving_dtype(t.Value(name)) == tf.float32


def test_input_columns_lists_only_the_named_features_with_serving_dtypes():
    cfg = _cfg()
    assert features.input_columns(cfg, ["user", "price"]) == {"user": tf.string,
                                                              "price": tf.float32}
    # feature_name differs from the column; feature_config.features entries count too.
    assert features.input_columns(cfg, ["uid_id", "tags"]) == {"uid": tf.int64,
                                                               "tags": tf.string}
    with pytest.raises(ValueError, match="'nope'.*valid"):
        features.input_columns(cfg, ["nope"])


def test_default_value_uses_default_val_or_zero():
    cfg = _cfg()
    fields = {f.input_name: f for f in cfg.data_config.input_fields}
    assert features.default_value(fields["uid"]) == 7
    assert features.default_value(fields["price"]) == 0.0
    assert features.default_value(fields["flag"]) == 1
    assert features.default_value(fields["user"]) == ""
    assert features.default_value(fields["tags"]) == "none"
    bad = pipeline_pb2.DatasetConfig.Field(input_name="x", input_type=1, default_val="abc")
    with pytest.raises(ValueError, match="'x'.*'abc'"):
        features.default_value(bad)


def test_hashing_is_farmhash_of_the_string_form_and_deterministic():
    enc = _encoder('input_names: "user" hash_bucket_size: 100 embedding_dim: 3')
    other = _encoder('input_names: "user" hash_bucket_size: 100 embedding_dim: 3')
    values = tf.constant(["alice", "bob", "alice"])
    ids = enc._ids(values).numpy()
    np.testing.assert_array_equal(ids, other._ids(values).numpy())
    np.testing.assert_array_equal(
        ids, tf.strings.to_hash_bucket_fast(["alice", "bob", "alice"], 100).numpy())
    out = enc(values).numpy()
    np.testing.assert_allclose(out, _table(enc)[ids])
    np.testing.assert_allclose(out[0], out[2])
    # An integer column hashes its decimal string form.
    np.testing.assert_array_equal(enc._ids(tf.constant([7], tf.int64)).numpy(),
                                  tf.strings.to_hash_bucket_fast(["7"], 100).numpy())


def test_vocab_lookup_maps_tokens_to_rows_one_on_and_oov_to_row_zero():
    enc = _encoder('input_names: "c" vocab_list: ["a", "b", "c"] embedding_dim: 2',
                   vocab=["a", "b", "c"])
    out = enc(tf.constant(["b", "zzz", "a"])).numpy()
    table = _table(enc)
    assert table.shape == (4, 2)
    np.testing.assert_allclose(out, table[[2, 0, 1]])


def test_build_encoder_reads_vocab_file(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("red\ngreen\n\nblue\n")
    cfg = _cfg()
    cfg.feature_configs.add(input_names=["user"], feature_name="color",
                            vocab_file=str(vocab), embedding_dim=2)
    enc = features.build_encoder(cfg, "color")
    assert enc.vocab == ["red", "green", "blue"]
    np.testing.assert_allclose(enc(tf.constant(["blue", "pink"])).numpy(), _table(enc)[[3, 0]])


def test_num_buckets_uses_the_id_and_wraps_out_of_range_ids():
    enc = _encoder('input_names: "uid" num_buckets: 10 embedding_dim: 2')
    ids = enc._ids(tf.constant([3, 10, 25, -1], tf.int64)).numpy()
    np.testing.assert_array_equal(ids, [3, 0, 5, 9])
    np.testing.assert_array_equal(enc._ids(tf.constant(["4"])).numpy(), [4])


def test_boundaries_bucketise_like_numpy_digitize():
    boundaries = [0.0, 18.0, 30.0, 50.0]
    enc = _encoder('input_names: "age" feature_type: RawFeature boundaries: [0, 18, 30, 50]')
    x = np.array([-5, 0, 17.9, 18, 29.99, 30, 49, 50, 80], np.float32)
    out = enc(tf.constant(x)).numpy()
    assert out.shape == (9, 5)
    np.testing.assert_array_equal(out.argmax(axis=1), np.digitize(x, boundaries))
    np.testing.assert_array_equal(out.sum(axis=1), np.ones(9))
    embedded = _encoder('input_names: "age" feature_type: RawFeature boundaries: [0, 18, 30, 50] '
                        'embedding_dim: 3')
    np.testing.assert_allclose(embedded(tf.constant(x)).numpy(),
                               _table(embedded)[np.digitize(x, boundaries)])


def test_min_max_normalises_to_unit_range():
    enc = _encoder('input_names: "p" feature_type: RawFeature min_val: 10 max_val: 30')
    out = enc(tf.constant([10.0, 15.0, 30.0, 40.0])).numpy()
    np.testing.assert_allclose(out, [[0.0], [0.25], [1.0], [1.5]])


@pytest.mark.parametrize("fn, expected", [
    ("method=log10,threshold=1e-3", np.log10(np.maximum([0.0, 1.0, 100.0], 1e-3))),
    ("method=zscore,mean=1.0,standard_deviation=2.0", (np.array([0.0, 1.0, 100.0]) - 1) / 2),
    ("method=minmax,min=0,max=200", np.array([0.0, 1.0, 100.0]) / 200),
])
def test_normalizer_fn(fn, expected):
    enc = _encoder(f'input_names: "p" feature_type: RawFeature normalizer_fn: "{fn}"')
    out = enc(tf.constant([0, 1, 100], tf.int64)).numpy()
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-5)


def test_unknown_normalizer_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="'p'.*'sqrt'.*log10"):
        _encoder('input_names: "p" feature_type: RawFeature normalizer_fn: "method=sqrt"')


def test_raw_value_with_embedding_dim_is_scaled_learned_vector():
    enc = _encoder('input_names: "p" feature_type: RawFeature embedding_dim: 3')
    out = enc(tf.constant([2.0, -1.0])).numpy()
    kernel = enc.projection.kernel.numpy()[0]
    np.testing.assert_allclose(out, [2 * kernel, -kernel], rtol=1e-6)


def test_tag_feature_mean_pools_token_embeddings():
    enc = _encoder('input_names: "tags" feature_type: TagFeature hash_bucket_size: 50 '
                   'embedding_dim: 4 separator: ";"')
    out = enc(tf.constant(["a;b;c", "b", "", "a;;a"])).numpy()
    table = _table(enc)
    row = {t: table[tf.strings.to_hash_bucket_fast([t], 50).numpy()[0]] for t in "abc"}
    np.testing.assert_allclose(out[0], (row["a"] + row["b"] + row["c"]) / 3, rtol=1e-6)
    np.testing.assert_allclose(out[1], row["b"], rtol=1e-6)
    np.testing.assert_allclose(out[2], np.zeros(4))
    np.testing.assert_allclose(out[3], row["a"], rtol=1e-6)  # empty token dropped


def test_tag_feature_sum_combiner():
    enc = _encoder('input_names: "tags" feature_type: TagFeature vocab_list: ["x", "y"] '
                   'embedding_dim: 2 combiner: "sum"', vocab=["x", "y"])
    out = enc(tf.constant(["x|y|q"])).numpy()
    table = _table(enc)
    np.testing.assert_allclose(out[0], table[1] + table[2] + table[0], rtol=1e-6)


def test_categorical_feature_needs_exactly_one_vocabulary_and_an_embedding_dim():
    with pytest.raises(ValueError, match="exactly one.*none"):
        _encoder('input_names: "u" embedding_dim: 2')
    with pytest.raises(ValueError, match="'u'.*embedding_dim > 0"):
        _encoder('input_names: "u" hash_bucket_size: 5')


def test_embedding_regularization_adds_a_loss():
    enc = _encoder('input_names: "u" hash_bucket_size: 5 embedding_dim: 2',
                   embedding_regularization=0.1)
    enc(tf.constant(["a"]))
    expected = 0.1 * np.sum(_table(enc) ** 2)
    assert len(enc.losses) == 1
    np.testing.assert_allclose(float(enc.losses[0]), expected, rtol=1e-5)


def test_encoder_config_round_trip():
    enc = _encoder('input_names: "c" vocab_list: ["a", "b"] embedding_dim: 2', vocab=["a", "b"],
                   embedding_regularization=0.5)
    clone = features.FeatureEncoder.from_config(enc.get_config())
    assert clone.vocab == ["a", "b"] and clone.output_dim == 2
    assert clone.embedding_regularization == 0.5
