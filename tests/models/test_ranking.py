"""Tests for the DCN and DeepFM teachers (single and multi-task heads)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf

from recdistill import config
from recdistill.models import DCN, DeepFM, build_model

DATA = """
data_config {
  input_fields { input_name: "clk" input_type: INT32 }
  input_fields { input_name: "buy" input_type: INT32 }
  input_fields { input_name: "user_id" input_type: STRING }
  input_fields { input_name: "item_id" input_type: INT64 }
  input_fields { input_name: "cat" input_type: STRING }
  input_fields { input_name: "price" input_type: FLOAT }
  label_fields: ["clk", "buy"]
}
feature_configs { input_names: "user_id" hash_bucket_size: 50 embedding_dim: 4 }
feature_configs { input_names: "item_id" num_buckets: 20 embedding_dim: 4 }
feature_configs { input_names: "cat" vocab_list: ["a", "b", "c"] embedding_dim: 4 }
feature_configs { input_names: "price" feature_type: RawFeature boundaries: [10, 100] embedding_dim: 4 }
"""
TASKS = """
  task_towers { tower_name: "ctr" label_name: "clk" }
  task_towers { tower_name: "cvr" label_name: "buy" weight: 0.5 }
"""
DCN_CONFIG = DATA + """
model_config {
  model_class: "DCN"
  feature_groups { group_name: "deep" feature_names: ["user_id", "item_id", "cat"] }
  feature_groups { group_name: "cross" feature_names: ["item_id", "price"] }
  dcn { deep_tower { input: "deep" dnn { hidden_units: [8] } }
        cross_tower { input: "cross" cross_num: 2 }
        final_dnn { hidden_units: [4] }
        l2_regularization: 1e-3 }
  %s
}
"""
DEEPFM_CONFIG = DATA + """
model_config {
  model_class: "DeepFM"
  feature_groups { group_name: "wide" feature_names: ["user_id", "cat"] wide_deep: WIDE }
  feature_groups { group_name: "deep" feature_names: ["user_id", "item_id", "cat", "price"] }
  deepfm { dnn { hidden_units: [8] } %s }
  %s
}
"""

FEATURES = {"user_id": tf.constant(["a", "b", "a"]), "item_id": tf.constant([3, 25, 7], tf.int64),
            "cat": tf.constant(["a", "zz", "c"]), "price": tf.constant([5., 50., 500.])}


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_dcn_single_task_combines_deep_and_cross_towers():
    model = build_model(config.load_config(DCN_CONFIG % ""))
    assert isinstance(model, DCN)
    out = {k: v.numpy() for k, v in model(FEATURES, training=False).items()}
    assert sorted(out) == sorted(model.prediction_names) == ["logits", "probs"]
    assert model.targets == [("logits", "clk", 1.0)]
    assert model.input_columns == {"user_id": tf.string, "item_id": tf.int64, "cat": tf.string,
                                   "price": tf.float32}
    # Recompute the forward pass from the parts: deep + 2 crosses -> final_dnn -> head.
    deep = model.deep_tower(model.deep_group(FEATURES), training=False)
    x0 = model.cross_group(FEATURES)
    x = x0
    for cross in model.crosses:
        w, b = cross.dense.kernel.numpy(), cross.dense.bias.numpy()
        x = x0.numpy() * (np.asarray(x) @ w + b) + np.asarray(x)
    hidden = model.final_dnn(tf.concat([deep, tf.constant(x, tf.float32)], 1), training=False)
    expected = model.logit_layers[0](hidden).numpy()[:, 0]
    np.testing.assert_allclose(out["logits"], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["probs"], _sigmoid(out["logits"]), rtol=1e-5)


def test_dcn_multi_task_gives_one_head_per_tower():
    model = build_model(config.load_config(DCN_CONFIG % TASKS))
    out = model(FEATURES, training=True)
    assert sorted(out) == sorted(model.prediction_names) == [
        "logits_ctr", "logits_cvr", "probs_ctr", "probs_cvr"]
    assert model.targets == [("logits_ctr", "clk", 1.0), ("logits_cvr", "buy", 0.5)]
    assert all(v.shape == (3,) and v.dtype == tf.float32 for v in out.values())
    assert not np.allclose(out["logits_ctr"].numpy(), out["logits_cvr"].numpy())
    # 8-unit deep dense, 2 cross kernels, 4-unit final dense, 2 heads.
    assert len(model.losses) == 6


def test_deepfm_logit_is_wide_plus_fm_plus_deep():
    model = build_model(config.load_config(DEEPFM_CONFIG % ("", "")))
    assert isinstance(model, DeepFM)
    out = model(FEATURES, training=False)["logits"].numpy()
    wide_tables = [e.embedding.embeddings.numpy() for e in model.wide_group.encoders]
    assert all(t.shape[1] == 1 for t in wide_tables)  # wide_output_dim defaults to 1
    wide = model.wide_group(FEATURES).numpy().sum(axis=1)
    v = model.deep_group(FEATURES, stacked=True).numpy()  # [B, 4 features, 4]
    fm = sum((v[:, i] * v[:, j]).sum(axis=1) for i in range(4) for j in range(i + 1, 4))
    deep = model.dnn(tf.constant(v.reshape(3, -1)), training=False)
    head = model.logit_layers[0](deep).numpy()[:, 0]
    np.testing.assert_allclose(out, wide + fm + head, rtol=1e-4, atol=1e-5)
    assert model.input_columns == {"user_id": tf.string, "item_id": tf.int64, "cat": tf.string,
                                   "price": tf.float32}


def test_deepfm_multi_task_with_final_dnn():
    model = build_model(config.load_config(
        DEEPFM_CONFIG % ("final_dnn { hidden_units: [4] } wide_output_dim: 2", TASKS)))
    out = model(FEATURES, training=True)
    assert sorted(out) == ["logits_ctr", "logits_cvr", "probs_ctr", "probs_cvr"]
    np.testing.assert_allclose(out["probs_cvr"].numpy(), _sigmoid(out["logits_cvr"].numpy()),
                               rtol=1e-5)
    assert model.wide_group.output_dim == 4  # two features x wide_output_dim 2


def test_deepfm_needs_equal_embedding_dims_for_fm():
    text = (DEEPFM_CONFIG % ("", "")).replace(
        'num_buckets: 20 embedding_dim: 4', 'num_buckets: 20 embedding_dim: 3')
    with pytest.raises(ValueError, match="FM term needs .*same embedding_dim.*'item_id': 3"):
        build_model(config.load_config(text))


def test_deepfm_needs_wide_and_deep_groups():
    text = (DEEPFM_CONFIG % ("", "")).replace('group_name: "wide"', 'group_name: "linear"')
    with pytest.raises(ValueError, match="no group 'wide'.*'deep', 'linear'"):
        build_model(config.load_config(text))
