"""Tests for recdistill.models.export: SavedModel round trips through both signatures."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf

from recdistill import config, exported
from recdistill.models import build_model
from recdistill.models.export import export_model

DATA = """
data_config {
  input_fields { input_name: "label" input_type: INT32 }
  input_fields { input_name: "buy" input_type: INT32 }
  input_fields { input_name: "teacher_logits" input_type: FLOAT }
  input_fields { input_name: "user_id" input_type: STRING default_val: "u0" }
  input_fields { input_name: "age" input_type: INT64 default_val: "33" }
  input_fields { input_name: "item_id" input_type: INT32 }
  input_fields { input_name: "dense" input_type: DOUBLE default_val: "2.5" }
  input_fields { input_name: "privileged" input_type: FLOAT }
  label_fields: ["label", "buy", "teacher_logits"]
}
feature_configs { input_names: "user_id" hash_bucket_size: 50 embedding_dim: 4 }
feature_configs { input_names: "age" feature_type: RawFeature boundaries: [18, 30, 50] embedding_dim: 4 }
feature_configs { input_names: "item_id" num_buckets: 20 embedding_dim: 4 }
feature_configs { input_names: "dense" feature_type: RawFeature min_val: 0 max_val: 10 }
feature_configs { input_names: "privileged" feature_type: RawFeature boundaries: [0.5] embedding_dim: 4 }
"""
STUDENT = DATA + """
model_config {
  model_class: "DSSM"
  feature_groups { group_name: "user" feature_names: ["user_id", "age"] }
  feature_groups { group_name: "item" feature_names: ["item_id", "dense"] }
  dssm { user_tower { id: "user" dnn { hidden_units: [8, 4] } }
         item_tower { id: "item" dnn { hidden_units: [8, 4] } } }
  kd { pred_name: "logits" soft_label_name: "teacher_logits" }
}
"""
TEACHER = DATA + """
model_config {
  model_class: "DCN"
  feature_groups { group_name: "all" feature_names: ["user_id", "age", "item_id", "privileged"] }
  dcn { deep_tower { input: "all" dnn { hidden_units: [8] } }
        cross_tower { input: "all" cross_num: 1 }
        final_dnn { hidden_units: [4] } }
  task_towers { tower_name: "ctr" label_name: "label" }
  task_towers { tower_name: "cvr" label_name: "buy" }
}
"""
COLUMNS = {"user_id": np.array(["a", "b", "c"], object), "age": np.array([10, 31, 70]),
           "item_id": np.array([1, 19, 44]), "dense": np.array([0.5, 3.0, 12.0], np.float32),
           "privileged": np.array([0.1, 0.9, 0.4], np.float32)}


def _feed(model):
    return {name: tf.constant(COLUMNS[name], dtype) for name, dtype in model.input_columns.items()}


def _serialize(rows):
    out = []
    for row in rows:
        example = tf.train.Example()
        for name, value in row.items():
            feature = example.features.feature[name]
            if isinstance(value, str):
                feature.bytes_list.value.append(value.encode())
            elif isinstance(value, float):
                feature.float_list.value.append(value)
            else:
                feature.int64_list.value.append(value)
        out.append(example.SerializeToString())
    return tf.constant(out)


def _rows(names, n=3):
    cast = {"user_id": str, "age": int, "item_id": int, "dense": float, "privileged": float}
    return [{k: cast[k](COLUMNS[k][i]) for k in names} for i in range(n)]


def _check_outputs(got, want):
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_allclose(np.asarray(got[name]), np.asarray(want[name]), atol=1e-5,
                                   err_msg=name)


def test_student_export_round_trip_needs_only_student_columns(tmp_path):
    model = build_model(config.load_config(STUDENT))
    want = {k: v.numpy() for k, v in model(_feed(model), training=False).items()}
    path = export_model(model, str(tmp_path / "export"), {"label_fields": ["label"]})

    loaded = tf.saved_model.load(path)
    serving = loaded.signatures["serving_default"]
    inputs = serving.structured_input_signature[1]
    assert {k: v.dtype for k, v in inputs.items()} == {
        "user_id": tf.string, "age": tf.int64, "item_id": tf.int64, "dense": tf.float32}
    assert "privileged" not in inputs and "teacher_logits" not in inputs
    assert all(v.shape.as_list() == [None] for v in inputs.values())
    _check_outputs({k: v.numpy() for k, v in serving(**_feed(model)).items()}, want)

    examples = _serialize(_rows(["user_id", "age", "item_id", "dense"]))
    _check_outputs({k: v.numpy() for k, v in
                    loaded.signatures["predict_examples"](examples=examples).items()}, want)

    export = exported.load_exported(path)
    assert sorted(export.outputs) == sorted(model.prediction_names)
    _check_outputs(export.predict(COLUMNS), want)
    metadata = json.loads((tmp_path / "export" / "recdistill.json").read_text())
    assert metadata["model_class"] == "DSSM"
    assert metadata["label_fields"] == ["label"]
    assert metadata["inputs"] == {"user_id": "string", "age": "int64", "item_id": "int64",
                                  "dense": "float32"}
    assert set(metadata["versions"]) == {"recdistill", "tensorflow", "keras"}


@pytest.mark.parametrize("simi", ["COSINE", "INNER_PRODUCT"])
def test_two_tower_signatures_combine_into_the_joint_logits(tmp_path, simi):
    tf.keras.utils.set_random_seed(5)
    model = build_model(config.load_config(
        STUDENT.replace("dssm {", f"dssm {{ simi_func: {simi}")))
    model(_feed(model), training=False)
    model.sim_w.assign([-1.75])  # a learned-looking scale (used as |sim_w|) and bias
    model.sim_b.assign([0.4])
    path = export_model(model, str(tmp_path / "export"), {})
    loaded = tf.saved_model.load(path)
    metadata = json.loads((tmp_path / "export" / "recdistill.json").read_text())
    towers = metadata["two_tower"]
    assert metadata["signatures"] == ["serving_default", "predict_examples", "user_embedding",
                                      "item_embedding"]
    assert towers["user_inputs"] == {"user_id": "string", "age": "int64"}
    assert towers["item_inputs"] == {"item_id": "int64", "dense": "float32"}
    assert (towers["similarity"], towers["normalized"]) == (simi, simi == "COSINE")
    assert (towers["scale"], towers["bias"]) == pytest.approx((1.75, 0.4))

    embeddings = {}
    for side in ("user", "item"):
        signature = loaded.signatures[towers[f"{side}_signature"]]
        inputs = signature.structured_input_signature[1]
        assert {k: v.dtype.name for k, v in inputs.items()} == towers[f"{side}_inputs"]
        feed = {name: tf.constant(COLUMNS[name], inputs[name].dtype) for name in inputs}
        embeddings[side] = signature(**feed)[towers[f"{side}_output"]].numpy()
        with pytest.raises(TypeError, match="unexpected keyword argument"):  # other tower's
            signature(**_feed(model))
    joint = loaded.signatures["serving_default"](**_feed(model))
    combined = (np.sum(embeddings["user"] * embeddings["item"], axis=1) * towers["scale"]
                + towers["bias"])
    np.testing.assert_allclose(combined, joint["logits"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(1 / (1 + np.exp(-combined)), joint["probs"].numpy(), rtol=1e-5)
    norms = np.linalg.norm(embeddings["user"], axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5) == (simi == "COSINE")


def test_predict_examples_fills_missing_values_with_default_val(tmp_path):
    model = build_model(config.load_config(STUDENT))
    path = export_model(model, str(tmp_path / "export"), {})
    loaded = tf.saved_model.load(path)
    got = loaded.signatures["predict_examples"](examples=_serialize([{"item_id": 4}]))
    want = model({"user_id": tf.constant(["u0"]), "age": tf.constant([33], tf.int64),
                  "item_id": tf.constant([4], tf.int64), "dense": tf.constant([2.5])},
                 training=False)
    _check_outputs({k: v.numpy() for k, v in got.items()}, {k: v.numpy() for k, v in want.items()})


def test_multi_task_teacher_export_replaces_an_old_export(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    model = build_model(config.load_config(TEACHER))
    with pytest.raises(FileExistsError, match=r"export: already exists and is not an earlier "
                                              r"output .*stale\.txt"):
        export_model(model, str(target), {})  # a folder that is not an export is never wiped
    assert (target / "stale.txt").read_text() == "old"
    for name in ("_SUCCESS", exported.SAVED_MODEL_FILE):  # an earlier export: replaced whole
        (target / name).write_text("old")
    model(_feed(model), training=True)  # a trained-looking model: built, BN stats touched
    want = {k: v.numpy() for k, v in model(_feed(model), training=False).items()}
    export_model(model, str(target), {})
    assert not (target / "stale.txt").exists()
    export = exported.load_exported(str(target))
    assert sorted(export.outputs) == ["logits_ctr", "logits_cvr", "probs_ctr", "probs_cvr"]
    assert "privileged" in export.inputs and "dense" not in export.inputs
    metadata = exported.read_metadata(str(target))
    assert metadata["signatures"] == ["serving_default", "predict_examples"]
    assert "two_tower" not in metadata
    assert "user_embedding" not in tf.saved_model.load(str(target)).signatures
    _check_outputs(export.predict(COLUMNS), want)
    loaded = tf.saved_model.load(str(target))
    examples = _serialize(_rows(["user_id", "age", "item_id", "privileged"]))
    _check_outputs({k: v.numpy() for k, v in
                    loaded.signatures["predict_examples"](examples=examples).items()}, want)


def test_an_output_without_its_logits_probs_twin_is_refused(tmp_path):
    model = build_model(config.load_config(STUDENT))
    model.prediction_names = [n for n in model.prediction_names if n != "probs"]
    with pytest.raises(ValueError, match=r"outputs \['logits'\] without their twin"):
        export_model(model, str(tmp_path / "export"), {})
    assert not (tmp_path / "export").exists()



def test_both_endpoints_share_one_trace_of_the_model(tmp_path):
    """predict_examples calls the traced serving function, so building the endpoints traces
    the model once, not once per endpoint (saving walks it again, as TF does)."""
    from recdistill.models import export

    model = build_model(config.load_config(TEACHER))
    want = {k: v.numpy() for k, v in model(_feed(model), training=False).items()}
    traces = []
    call = model.call

    def counted(*args, **kwargs):
        traces.append(tf.executing_eagerly())
        return call(*args, **kwargs)

    model.call = counted
    archive = export._archive(model)
    assert traces == [False]  # one graph trace for serving_default and predict_examples
    archive.write_out(str(tmp_path / "export"), verbose=False)

    loaded = tf.saved_model.load(str(tmp_path / "export"))
    examples = _serialize(_rows(["user_id", "age", "item_id", "privileged"]))
    _check_outputs({k: v.numpy() for k, v in
                    loaded.signatures["predict_examples"](examples=examples).items()}, want)
