"""Helpers for the soft-label tests: a tiny teacher export built here (no trained model
needed), the EasyRec DSSM kd student config, and small data tables with known values."""

import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from recdistill import config as config_lib  # noqa: E402
from recdistill import exported  # noqa: E402

STUDENT_CONFIG = os.path.join(os.path.dirname(__file__), "..", "testdata", "configs",
                              "easyrec_dssm_kd.config")
TEACHER_INPUTS = {"user_id": tf.string, "cate_id": tf.string, "price": tf.int64}


def expected_logits(user_id, cate_id, price) -> np.ndarray:
    """The test teacher's logit, worked out with numpy from the raw column values."""
    user_len = np.array([len(u.encode()) for u in user_id], dtype=np.float64)
    cate_len = np.array([len(c.encode()) for c in cate_id], dtype=np.float64)
    price = np.asarray(price, np.float64)
    logits = 0.1 * user_len - 0.2 * cate_len + 0.01 * price - 0.5
    return np.where(price >= 0, logits, np.nan)


class _Teacher(tf.Module):
    """logits = 0.1 len(user_id) - 0.2 len(cate_id) + 0.01 price - 0.5 (NaN where price < 0,
    a row the teacher cannot score); probs = sigmoid(logits)."""

    @tf.function(input_signature=[tf.TensorSpec([None], dtype, name=name)
                                  for name, dtype in TEACHER_INPUTS.items()])
    def serve(self, user_id, cate_id, price):
        logits = (0.1 * tf.cast(tf.strings.length(user_id), tf.float32)
                  - 0.2 * tf.cast(tf.strings.length(cate_id), tf.float32)
                  + 0.01 * tf.cast(price, tf.float32) - 0.5)
        logits = tf.where(price >= 0, logits, tf.fill(tf.shape(logits), float("nan")))
        return {"logits": logits, "probs": tf.sigmoid(logits),
                "logits_2d": tf.stack([logits, -logits], axis=1)}


def build_teacher(export_dir: str) -> str:
    """Saves the test teacher following the export contract; returns the export folder."""
    module = _Teacher()
    tf.saved_model.save(module, export_dir,
                        signatures={exported.SERVING_SIGNATURE: module.serve.get_concrete_function()})
    exported.write_metadata(export_dir, {
        "model_class": "TestTeacher", "inputs": {k: v.name for k, v in TEACHER_INPUTS.items()},
        "outputs": ["logits", "logits_2d", "probs"], "label_fields": ["clk"], "custom_ops": []})
    return export_dir


def student_config(input_type: str = "CSVInput", **kd_fields):
    """The EasyRec DSSM kd sample config with data in ``input_type`` and kd[0] fields set."""
    cfg = config_lib.load_config(STUDENT_CONFIG)
    cfg.data_config.input_type = cfg.data_config.InputType.Value(input_type)
    for name, value in kd_fields.items():
        setattr(cfg.model_config.kd[0], name, value)
    return cfg


def make_rows(n: int, seed: int = 0) -> dict:
    """Column name -> values for ``n`` rows of the student's input fields (no soft label)."""
    rng = np.random.default_rng(seed)
    return {
        "clk": rng.integers(0, 2, n).astype(np.int32),
        "user_id": np.array([f"u{'x' * int(k)}" for k in rng.integers(0, 9, n)], dtype=object),
        "age_level": np.array([str(k) for k in rng.integers(0, 7, n)], dtype=object),
        "occupation": np.array(["student", "teacher", "other"], dtype=object)[rng.integers(0, 3, n)],
        "tag_brand_list": np.array([f"b{k}|b{k + 1}" for k in rng.integers(0, 50, n)], dtype=object),
        "adgroup_id": np.array([f"ad{k}" for k in rng.integers(0, 100, n)], dtype=object),
        "cate_id": np.array([f"c{'y' * int(k)}" for k in rng.integers(0, 5, n)], dtype=object),
        "price": rng.integers(1, 500, n).astype(np.int32),
    }
