"""Tests for the DSSM student and build_model."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf

from recdistill import config
from recdistill.models import DSSM, build_model

STUDENT = """
data_config {
  input_fields { input_name: "label" input_type: INT32 }
  input_fields { input_name: "teacher_logits" input_type: FLOAT }
  input_fields { input_name: "user_id" input_type: STRING }
  input_fields { input_name: "age" input_type: INT64 }
  input_fields { input_name: "item_id" input_type: INT64 }
  input_fields { input_name: "tags" input_type: STRING }
  input_fields { input_name: "privileged" input_type: FLOAT }
  label_fields: ["label", "teacher_logits"]
}
feature_configs { input_names: "user_id" hash_bucket_size: 50 embedding_dim: 4 }
feature_configs { input_names: "age" feature_type: RawFeature boundaries: [18, 30] embedding_dim: 4 }
feature_configs { input_names: "item_id" num_buckets: 20 embedding_dim: 4 }
feature_configs { input_names: "tags" feature_type: TagFeature hash_bucket_size: 30 embedding_dim: 4 }
feature_configs { input_names: "privileged" feature_type: RawFeature }
model_config {
  model_class: "DSSM"
  feature_groups { group_name: "user" feature_names: ["user_id", "age"] }
  feature_groups { group_name: "item" feature_names: ["item_id", "tags"] }
  dssm {
    user_tower { id: "user" dnn { hidden_units: [8, 4] } }
    item_tower { id: "item" dnn { hidden_units: [6, 4] } }
    l2_regularization: 1e-3
  }
  embedding_regularization: 1e-4
  kd { pred_name: "logits" soft_label_name: "teacher_logits" }
}
"""

FEATURES = {"user_id": tf.constant(["a", "b", "c"]), "age": tf.constant([10, 25, 60], tf.int64),
            "item_id": tf.constant([1, 5, 30], tf.int64),
            "tags": tf.constant(["x|y", "", "z"])}


def _config(text=STUDENT, **replace):
    for old, new in replace.items():
        text = text.replace(old, new)
    return config.load_config(text)


def _cosine(u, v):
    """Row-wise cosine, 0 for a zero vector (tf.math.l2_normalize's epsilon convention)."""
    def unit(x):
        return x / np.sqrt(np.maximum(np.sum(x * x, axis=1, keepdims=True), 1e-12))
    return np.sum(unit(u) * unit(v), axis=1)


def test_cosine_logits_are_scaled_cosine_of_tower_outputs():
    tf.keras.utils.set_random_seed(3)
    model = build_model(_config())
    assert isinstance(model, DSSM)
    model(FEATURES)
    model.sim_w.assign([-2.5])  # EasyRec scales by |sim_w|
    model.sim_b.assign([0.25])
    out = {k: v.numpy() for k, v in model(FEATURES, training=False).items()}
    cos = _cosine(out["user_tower_emb"], out["item_tower_emb"])
    np.testing.assert_allclose(out["logits"], 2.5 * cos + 0.25, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["probs"], 1 / (1 + np.exp(-out["logits"])), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out["user_emb"], axis=1), np.ones(3), rtol=1e-5)
    np.testing.assert_allclose(out["item_emb"],
                               out["item_tower_emb"] / np.linalg.norm(out["item_tower_emb"],
                                                                      axis=1, keepdims=True),
                               rtol=1e-5)


def test_scale_starts_at_one_and_bias_at_zero():
    model = build_model(_config())
    out = model(FEATURES)
    cos = _cosine(out["user_tower_emb"].numpy(), out["item_tower_emb"].numpy())
    np.testing.assert_allclose(out["logits"].numpy(), cos, rtol=1e-5, atol=1e-6)


def test_inner_product_without_scale():
    cfg = _config(**{"l2_regularization: 1e-3":
                     "l2_regularization: 1e-3 simi_func: INNER_PRODUCT scale_simi: false"})
    model = build_model(cfg)
    out = {k: v.numpy() for k, v in model(FEATURES).items()}
    np.testing.assert_allclose(out["logits"],
                               np.sum(out["user_tower_emb"] * out["item_tower_emb"], axis=1),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["user_emb"], out["user_tower_emb"])
    assert not any("sim_w" in w.path for w in model.weights)


def test_outputs_shapes_and_dtypes_match_prediction_names():
    model = build_model(_config())
    out = model(FEATURES, training=True)
    assert sorted(out) == sorted(model.prediction_names) == sorted(
        ["logits", "probs", "user_tower_emb", "item_tower_emb", "user_emb", "item_emb"])
    assert out["logits"].shape == (3,) and out["probs"].shape == (3,)
    assert out["user_emb"].shape == (3, 4)
    assert all(v.dtype == tf.float32 for v in out.values())
    assert model.targets == [("logits", "label", 1.0)]


def test_student_reads_only_its_groups_columns():
    model = build_model(_config())
    assert model.input_columns == {"user_id": tf.string, "age": tf.int64,
                                   "item_id": tf.int64, "tags": tf.string}
    assert "privileged" not in model.input_columns
    assert "teacher_logits" not in model.input_columns


def test_each_tower_runs_on_its_own_columns_and_combines_into_the_logits():
    tf.keras.utils.set_random_seed(4)
    model = build_model(_config())
    model(FEATURES, training=False)
    model.sim_w.assign([-0.5])
    model.sim_b.assign([-1.25])
    joint = {k: v.numpy() for k, v in model(FEATURES, training=False).items()}
    towers = model.tower_signatures()
    assert {name: columns for name, (columns, _) in towers.items()} == {
        "user_embedding": {"user_id": tf.string, "age": tf.int64},
        "item_embedding": {"item_id": tf.int64, "tags": tf.string}}
    user = towers["user_embedding"][1]({k: FEATURES[k] for k in ("user_id", "age")})
    item = towers["item_embedding"][1]({k: FEATURES[k] for k in ("item_id", "tags")})
    assert sorted(user) == ["user_emb", "user_tower_emb"]
    assert sorted(item) == ["item_emb", "item_tower_emb"]
    np.testing.assert_allclose(user["user_emb"].numpy(), joint["user_emb"], rtol=1e-6)
    meta = model.two_tower_metadata()
    assert (meta["similarity"], meta["normalized"]) == ("COSINE", True)
    assert (meta["scale"], meta["bias"]) == (0.5, -1.25)
    assert (meta["user_inputs"], meta["item_inputs"]) == (
        {"user_id": "string", "age": "int64"}, {"item_id": "int64", "tags": "string"})
    np.testing.assert_allclose(
        np.sum(user["user_emb"].numpy() * item["item_emb"].numpy(), axis=1) * meta["scale"]
        + meta["bias"], joint["logits"], rtol=1e-5, atol=1e-6)


def test_two_tower_metadata_without_scale_is_the_plain_inner_product():
    cfg = _config(**{"l2_regularization: 1e-3":
                     "l2_regularization: 1e-3 simi_func: INNER_PRODUCT scale_simi: false"})
    meta = build_model(cfg).two_tower_metadata()
    assert (meta["similarity"], meta["normalized"], meta["scale"], meta["bias"]) == (
        "INNER_PRODUCT", False, 1.0, 0.0)


def test_regularisation_losses_cover_dense_kernels_and_embeddings():
    model = build_model(_config())
    model(FEATURES)
    dense = [w for w in model.weights if w.path.endswith("kernel")]
    embeddings = [w for w in model.weights if w.path.endswith("embeddings")]
    assert len(model.losses) == len(dense) + len(embeddings) == 4 + 4
    expected = (1e-3 * sum(np.sum(w.numpy() ** 2) for w in dense)
                + 1e-4 * sum(np.sum(w.numpy() ** 2) for w in embeddings))
    np.testing.assert_allclose(float(tf.add_n(model.losses)), expected, rtol=1e-4)


def test_dssm_rejects_task_towers_euclid_and_mismatched_towers():
    with pytest.raises(ValueError, match="task_towers is not supported for DSSM"):
        build_model(_config(**{'kd {': 'task_towers { tower_name: "a" label_name: "label" } kd {'}))
    with pytest.raises(ValueError, match="EUCLID.*COSINE, INNER_PRODUCT"):
        build_model(_config(**{"l2_regularization: 1e-3": "simi_func: EUCLID"}))
    with pytest.raises(ValueError, match="last hidden_units.*must match"):
        build_model(_config(**{"[6, 4]": "[6, 5]"}))


def test_build_model_rejects_gbdt_and_unknown_classes():
    cfg = _config()
    cfg.model_config.model_class = "GBDT"
    with pytest.raises(ValueError, match="recdistill.models.gbdt"):
        build_model(cfg)
    cfg.model_config.model_class = "WideAndDeep"
    with pytest.raises(ValueError, match="'WideAndDeep'.*DCN, DSSM, DeepFM"):
        build_model(cfg)


def test_model_config_round_trip_rebuilds_the_same_structure():
    model = build_model(_config())
    clone = DSSM.from_config(model.get_config())
    assert clone.input_columns == model.input_columns
    assert clone.prediction_names == model.prediction_names


def test_the_hard_label_is_the_first_label_that_is_not_a_soft_label():
    # EasyRec configs usually list the click first, but a soft label listed first must not
    # become the target of the hard-label loss.
    cfg = _config(STUDENT, **{'label_fields: ["label", "teacher_logits"]':
                              'label_fields: ["teacher_logits", "label"]'})
    assert build_model(cfg).targets == [("logits", "label", 1.0)]
