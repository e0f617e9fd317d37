"""The GBDT teacher: gradient-boosted trees trained with YDF and exported as a TF SavedModel.

A tree ensemble is a strong, cheap teacher for tabular click logs. This module owns training
it (``train_gbdt``) on every feature column of a config (privileged ones included, since only
the teacher runs on logged data) and exporting it under recdistill's SavedModel contract
(``recdistill.exported``): ``serving_default`` takes one raw column per input field and
returns ``logits`` and ``probs``; ``predict_examples`` takes serialized ``tf.Example`` s. The
trees run through YDF's TensorFlow ops, so ``recdistill.json`` lists ``custom_ops: ["ydf"]``
and every loader imports ``ydf_tf`` first.

Like every model module it reads no files: the trainer passes columns as numpy arrays.
It must not import ``kfp`` or ``recdistill.data`` (except the filesystem layer, to write the
export to local or gs:// folders alike).
"""

import logging
import os
import tempfile
from typing import Mapping

import numpy as np
import tensorflow as tf

from recdistill import config as config_lib
from recdistill import exported
from recdistill import features as features_lib
from recdistill.data import filesystems
from recdistill.protos import pipeline_pb2

logger = logging.getLogger(__name__)

CUSTOM_OPS = ["ydf"]
"""What ``recdistill.json`` of a GBDT export lists so loaders import ``ydf_tf`` first."""

LOGITS = "logits"
PROBS = "probs"
_EPSILON = 1e-7

_NUMERIC_FEATURES = (pipeline_pb2.FeatureConfig.RawFeature,)


def input_columns(cfg) -> dict:
    """Every raw column the GBDT reads (all features, privileged ones included) -> serving dtype.

    Args:
      cfg: a loaded ``EasyRecConfig`` with ``model_class: 'GBDT'``.
    """
    return features_lib.input_columns(cfg, features_lib.feature_configs(cfg))


def hard_label(cfg) -> str:
    """The one 0/1 label the GBDT is trained on: the label field that is not a soft label.

    Raises:
      ValueError: the config has no hard label or several (a GBDT teacher has one target).
    """
    hard = config_lib.hard_label_fields(cfg)
    if len(hard) != 1:
        raise ValueError(f"data_config.label_fields must hold exactly one hard label for a GBDT "
                         f"teacher, got {hard}. Keep one 0/1 label (train one GBDT per target).")
    return hard[0]


def _semantics(cfg) -> list:
    """YDF semantics per column: RawFeature columns are numerical, every other type categorical.

    Id, tag and combo columns hold identifiers, so comparing them with ``<`` (YDF's default for
    numbers) would be meaningless. A TagFeature's whole string is one category here.
    """
    import ydf

    return [ydf.Feature(features_lib.input_field_of(cfg, fc).input_name,
                        ydf.Semantic.NUMERICAL if fc.feature_type in _NUMERIC_FEATURES
                        else ydf.Semantic.CATEGORICAL)
            for fc in config_lib.all_features(cfg)]


def _as_serving(columns: Mapping[str, np.ndarray], dtypes: Mapping[str, tf.DType]) -> dict:
    """Casts numpy columns to the dtypes ``serving_default`` will receive, so YDF trains on
    exactly what the exported ops are fed later."""
    out = {}
    for name, dtype in dtypes.items():
        values = np.asarray(columns[name])
        out[name] = values.astype(str).astype(object) if dtype == tf.string \
            else values.astype(dtype.as_numpy_dtype)
    return out


def train_gbdt(cfg, columns: Mapping[str, np.ndarray], labels: np.ndarray):
    """Trains a YDF gradient-boosted-trees binary classifier on the config's feature columns.

    Args:
      cfg: a loaded config; ``model_config.gbdt`` gives num_trees, max_depth, shrinkage and
        min_examples. num_trees is an upper bound: YDF holds 10% of the rows out and keeps
        the trees up to the lowest loss on them (its default early stopping).
      columns: column name -> 1-D numpy array, at least every column of :func:`input_columns`.
      labels: 0/1 array, one per row.

    Returns:
      The trained ``ydf`` model.

    Raises:
      ValueError: a needed column is missing from ``columns``.
    """
    import ydf

    dtypes = input_columns(cfg)
    missing = sorted(set(dtypes) - set(columns))
    if missing:
        raise ValueError(f"GBDT features read columns {missing} that the training data lacks; "
                         f"it has {sorted(columns)}. Add them to the data or the config.")
    label = hard_label(cfg)
    data = _as_serving(columns, dtypes)
    data[label] = np.asarray(labels).astype(np.int64)
    params = cfg.model_config.gbdt
    learner = ydf.GradientBoostedTreesLearner(
        label=label, task=ydf.Task.CLASSIFICATION, features=_semantics(cfg),
        include_all_columns=False, num_trees=params.num_trees, max_depth=params.max_depth,
        shrinkage=params.shrinkage, min_examples=params.min_examples)
    model = learner.train(data, verbose=0)
    logger.info("Trained GBDT on %d rows and %d columns: %d trees", len(data[label]), len(dtypes),
                model.num_trees())
    return model


def predict_probs(cfg, model, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Click probabilities of a trained GBDT for raw columns (float32, one per row)."""
    data = _as_serving(columns, input_columns(cfg))
    return np.asarray(model.predict(data), dtype=np.float32).reshape(-1)


class _GbdtServing(tf.Module):
    """Wraps YDF's TF function so the SavedModel speaks recdistill's contract."""

    def __init__(self, ydf_function, example_spec: Mapping[str, tf.io.FixedLenFeature]):
        super().__init__()
        self.ydf_function = ydf_function
        self._example_spec = dict(example_spec)

    def serve(self, **columns):
        probs = tf.reshape(self.ydf_function(columns), [-1])
        clipped = tf.clip_by_value(probs, _EPSILON, 1.0 - _EPSILON)
        return {LOGITS: tf.math.log(clipped) - tf.math.log1p(-clipped), PROBS: probs}

    def serve_examples(self, examples):
        return self.serve(**tf.io.parse_example(examples, self._example_spec))


def export_gbdt(cfg, model, export_path: str, metadata: Mapping[str, object]) -> None:
    """Writes the GBDT as a SavedModel with ``serving_default`` and ``predict_examples``.

    The SavedModel is written to a local temp folder (TF cannot write to every ``gs://``
    endpoint, e.g. the test emulator) and then moved into place atomically with
    ``filesystems.atomic_dir``, so readers never see half an export.

    Args:
      cfg: the config the model was trained with.
      model: the ``ydf`` model from :func:`train_gbdt`.
      export_path: the export folder, local or gs://.
      metadata: extra ``recdistill.json`` entries (config text, metrics, ...);
        ``custom_ops``, ``model_class``, ``inputs`` and ``outputs`` are filled in here.
    """
    dtypes = input_columns(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        module = _GbdtServing(model.to_tensorflow_function(temp_dir=tmp),
                              features_lib.example_spec(cfg, dtypes))
        serving = tf.function(module.serve).get_concrete_function(
            **{name: tf.TensorSpec([None], dtype, name=name) for name, dtype in dtypes.items()})
        examples = tf.function(module.serve_examples).get_concrete_function(
            tf.TensorSpec([None], tf.string, name=exported.EXAMPLES_INPUT))
        local = os.path.join(tmp, "export")
        tf.saved_model.save(module, local, signatures={exported.SERVING_SIGNATURE: serving,
                                                       exported.EXAMPLES_SIGNATURE: examples})
        full = dict(metadata)
        full.update(custom_ops=list(CUSTOM_OPS), model_class="GBDT",
                    inputs={name: dtype.name for name, dtype in dtypes.items()},
                    outputs=[LOGITS, PROBS])
        exported.write_metadata(local, full)
        with filesystems.atomic_dir(export_path, replaces=(exported.SAVED_MODEL_FILE,)) as staging:
            filesystems.copy_tree(local, staging)
    logger.info("Exported GBDT (%d trees) to %s", model.num_trees(), export_path)
