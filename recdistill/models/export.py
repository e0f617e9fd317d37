"""Exports a trained Keras model as the serving SavedModel described in ``recdistill.exported``.

Two endpoints, both returning every model output (float32 logits/probs per head, and
embeddings for DSSM):

* ``serving_default``: one ``[None]`` tensor per raw column in ``model.input_columns``,
  named like the input field, in its serving dtype;
* ``predict_examples``: ``examples``, serialized ``tf.Example`` protos, parsed with one
  ``FixedLenFeature`` per input column (missing values take the field's ``default_val``, else
  0 / "").

The export is written inside ``filesystems.atomic_dir(export_path)``, so a reader never sees
a half-written export; for ``gs://`` it is written to a local folder first and copied, so
no ``tf.io.gfile`` access to the bucket is needed (it cannot reach the GCS emulator).

Imports: models, ``recdistill.exported``, ``recdistill.outputs`` and
``recdistill.data.filesystems`` (this module is
the models' only door to storage); never ``kfp``.
"""

import logging
import tempfile
from typing import Any, Mapping

import keras
import tensorflow as tf

import recdistill
from recdistill import exported, outputs
from recdistill import features as features_lib
from recdistill.data import filesystems

logger = logging.getLogger(__name__)


def _dummy_batch(input_columns: Mapping[str, tf.DType]) -> dict:
    return {name: tf.constant([""]) if dtype == tf.string else tf.zeros([1], dtype)
            for name, dtype in input_columns.items()}


def _archive(model: keras.Model) -> keras.export.ExportArchive:
    """An ExportArchive tracking ``model`` with both endpoints."""
    input_specs = {name: tf.TensorSpec([None], dtype, name=name)
                   for name, dtype in model.input_columns.items()}
    example_spec = features_lib.example_spec(model.pipeline_config, model.input_columns)

    def predict(features):
        return {k: tf.cast(v, tf.float32) for k, v in model(features, training=False).items()}

    @tf.function(input_signature=[input_specs])
    def serving_default(features):
        return predict(features)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string,
                                                name=exported.EXAMPLES_INPUT)])
    def predict_examples(examples):
        return predict(tf.io.parse_example(examples, example_spec))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(exported.SERVING_SIGNATURE, serving_default)
    archive.add_endpoint(exported.EXAMPLES_SIGNATURE, predict_examples)
    return archive


def _write(model: keras.Model, local_dir: str, metadata: Mapping[str, Any]) -> None:
    _archive(model).write_out(local_dir, verbose=False)
    exported.write_metadata(local_dir, metadata)


def export_model(model: keras.Model, export_path: str, metadata: Mapping[str, Any]) -> str:
    """Writes ``model`` as a serving SavedModel plus ``recdistill.json`` to ``export_path``.

    Args:
      model: a model from ``recdistill.models.build_model`` (it needs ``input_columns``,
        ``prediction_names`` and ``pipeline_config``); built on a dummy row if never called.
      export_path: the export folder (local or gs://), usually
        ``recdistill.exported.export_dir(model_dir)``; replaced atomically.
      metadata: caller's metadata (label_fields, config text, training metrics, ...); this
        adds ``model_class``, ``inputs`` (name -> dtype name), ``outputs``, ``signatures`` and
        ``versions``.

    Returns:
      ``export_path``.

    Raises:
      ValueError: ``model`` lacks the attributes above, reads no input column, or has a
        logits/probs output without its twin (soft labels and evaluation convert between
        the two, see ``recdistill.outputs``).
    """
    missing = [a for a in ("input_columns", "prediction_names", "pipeline_config")
               if not hasattr(model, a)]
    if missing:
        raise ValueError(f"export_model: {type(model).__name__} lacks {missing}. Export a model "
                         "built by recdistill.models.build_model.")
    if not model.input_columns:
        raise ValueError(f"export_model: {type(model).__name__} reads no input columns; check "
                         "its feature groups.")
    unpaired = outputs.unpaired(model.prediction_names)
    if unpaired:
        raise ValueError(
            f"export_model: {type(model).__name__} outputs {unpaired} without their twin "
            f"(every logits<suffix> needs probs<suffix> and back; outputs: "
            f"{sorted(model.prediction_names)}). Name each head's pair with "
            "recdistill.outputs.output_name.")
    if not model.built:
        model(_dummy_batch(model.input_columns), training=False)
    full_metadata = dict(metadata)
    full_metadata.update(
        model_class=model.pipeline_config.model_config.model_class or type(model).__name__,
        inputs={name: dtype.name for name, dtype in model.input_columns.items()},
        outputs=sorted(model.prediction_names),
        signatures=[exported.SERVING_SIGNATURE, exported.EXAMPLES_SIGNATURE],
        versions={"recdistill": recdistill.__version__, "tensorflow": tf.__version__,
                  "keras": keras.__version__},
    )
    with filesystems.atomic_dir(export_path, replaces=(exported.SAVED_MODEL_FILE,)) as staging:
        if filesystems.is_remote(export_path):  # tf.io.gfile cannot reach every store
            with tempfile.TemporaryDirectory(prefix="recdistill-export-") as tmp:
                _write(model, tmp, full_metadata)
                filesystems.copy_tree(tmp, staging)
        else:
            _write(model, staging, full_metadata)
    logger.info("Exported %s (inputs %s; outputs %s) to %s", type(model).__name__,
                sorted(model.input_columns), sorted(model.prediction_names), export_path)
    return export_path
