"""Tiny exported models with known weights, following recdistill.exported's contract.

``logits = wx * x + wz * z + b`` over the raw FLOAT columns ``x`` and ``z``; ``serving_default``
takes them (plus the STRING column ``user_id``, read but unused, so string feeds are exercised)
and returns ``logits`` and ``probs``; ``predict_examples`` takes serialized tf.Examples.
Tests compute the same scores with numpy, so expected metrics do not depend on TensorFlow.
"""

import os

import numpy as np
import tensorflow as tf

from recdistill import exported

EVAL_CONFIG = """
eval_config {
  metrics_set { auc {} }
  metrics_set { gauc { uid_field: "user_id" reduction: "%(reduction)s" } }
}
data_config {
  input_fields { input_name: "clk" input_type: INT32 }
  input_fields { input_name: "user_id" input_type: STRING }
  input_fields { input_name: "x" input_type: FLOAT }
  input_fields { input_name: "z" input_type: FLOAT }
  %(kd_field)s
  label_fields: "clk"
  input_type: CSVInput
}
feature_configs {
  input_names: "user_id" feature_type: IdFeature embedding_dim: 4 hash_bucket_size: 10
}
feature_configs { input_names: "x" feature_type: RawFeature }
feature_configs { input_names: "z" feature_type: RawFeature }
model_config {
  model_class: "DSSM"
  feature_groups { group_name: "user" feature_names: "user_id" }
  feature_groups { group_name: "item" feature_names: "x" feature_names: "z" }
  dssm { user_tower { id: "user" dnn { hidden_units: 4 } }
         item_tower { id: "item" dnn { hidden_units: 4 } } }
  %(kd_block)s
}
"""
KD_FIELD = 'input_fields { input_name: "kd_soft" input_type: DOUBLE } label_fields: "kd_soft"'
KD_BLOCK = ('kd { pred_name: "logits" soft_label_name: "kd_soft" teacher_pred_name: "%s" '
            'loss_type: CROSS_ENTROPY_LOSS }')
COLUMNS = ("clk", "user_id", "x", "z")


def config_text(reduction: str = "mean", teacher_pred_name: str | None = None) -> str:
    """The eval config of the toy table: label clk, GAUC grouped by user_id.

    Args:
      teacher_pred_name: adds a kd block reading this teacher output, and the soft-label
        field ``kd_soft`` (in training tables only; the eval table stays raw).
    """
    kd = teacher_pred_name is not None
    return EVAL_CONFIG % {"reduction": reduction, "kd_field": KD_FIELD if kd else "",
                          "kd_block": KD_BLOCK % teacher_pred_name if kd else ""}


class _Linear(tf.Module):
    def __init__(self, wx: float, wz: float, b: float, head: str, with_probs: bool):
        super().__init__()
        self.suffix = f"_{head}" if head else ""
        self.with_probs = with_probs
        self.wx = tf.Variable(wx, dtype=tf.float32)
        self.wz = tf.Variable(wz, dtype=tf.float32)
        self.b = tf.Variable(b, dtype=tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x"),
                                  tf.TensorSpec([None], tf.float32, name="z"),
                                  tf.TensorSpec([None], tf.string, name="user_id")])
    def serve(self, x, z, user_id):
        del user_id  # read so the signature has a string input, not used by the score
        logits = self.wx * x + self.wz * z + self.b
        outputs = {f"logits{self.suffix}": logits}
        if self.with_probs:
            outputs[f"probs{self.suffix}"] = tf.sigmoid(logits)
        return outputs

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(self, examples):
        spec = {"x": tf.io.FixedLenFeature([], tf.float32),
                "z": tf.io.FixedLenFeature([], tf.float32),
                "user_id": tf.io.FixedLenFeature([], tf.string)}
        parsed = tf.io.parse_example(examples, spec)
        return self.serve(parsed["x"], parsed["z"], parsed["user_id"])


def save_linear(path, wx: float, wz: float = 0.0, b: float = 0.0, *,
                signature: str = exported.SERVING_SIGNATURE, head: str = "",
                with_probs: bool = True) -> str:
    """Exports a linear toy model to ``path`` (a model_dir: the export goes to ``path/export``).

    Args:
      signature: the name the raw-column signature is saved under; anything but
        ``serving_default`` makes a model that breaks the contract.
      head: a tower name; outputs become ``logits_<head>``/``probs_<head>``.
      with_probs: False exports only the logits output.

    Returns:
      The model_dir.
    """
    module = _Linear(wx, wz, b, head, with_probs)
    export = exported.export_dir(str(path))
    tf.saved_model.save(module, export, signatures={
        signature: module.serve.get_concrete_function(),
        exported.EXAMPLES_SIGNATURE: module.serve_examples.get_concrete_function()})
    exported.write_metadata(export, {"model_class": "ToyLinear", "inputs": ["x", "z", "user_id"],
                                     "outputs": ["logits", "probs"], "label_fields": ["clk"],
                                     "weights": {"wx": wx, "wz": wz, "b": b}})
    return str(path)


def linear_probs(columns, wx: float, wz: float = 0.0, b: float = 0.0) -> np.ndarray:
    """What :func:`save_linear`'s model predicts, in float32 like the model."""
    x = np.asarray(columns["x"], np.float32)
    z = np.asarray(columns["z"], np.float32)
    logits = np.float32(wx) * x + np.float32(wz) * z + np.float32(b)
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def make_table(users: int = 12, rows_per_user: int = 25, seed: int = 0) -> dict:
    """A small eval table: clk depends on x strongly and on z weakly, per-user offsets."""
    rng = np.random.default_rng(seed)
    n = users * rows_per_user
    user = np.repeat([f"u{i:02d}" for i in range(users)], rows_per_user)
    x = rng.normal(size=n).round(3)
    z = rng.normal(size=n).round(3)
    offset = np.repeat(rng.normal(scale=0.5, size=users), rows_per_user)
    clk = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * x + 0.5 * z + offset)))).astype(int)
    return {"clk": clk, "user_id": user, "x": x, "z": z}


def write_csv(path, table: dict) -> str:
    """Writes the table as a header-less CSV in input_fields order (clk, user_id, x, z)."""
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "w") as f:
        for row in zip(*(table[c] for c in COLUMNS)):
            f.write(",".join(str(v) for v in row) + "\n")
    return str(path)
