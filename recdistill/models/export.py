"""Exports a trained Keras model as the serving SavedModel described in ``recdistill.exported``.

Two endpoints, both returning every model output (float32 logits/probs per head, and
embeddings for DSSM):

* ``serving_default``: one ``[None]`` tensor per raw column in ``model.input_columns``,
  named like the input field, in its serving dtype;
* ``predict_examples``: ``examples``, serialized ``tf.Example`` protos, parsed with one
  ``FixedLenFeature`` per input column (missing values take the field's ``default_val``, else
  0 / "").

A model with ``tower_signatures()`` (DSSM) also gets one signature per tower
(``user_embedding``, ``item_embedding``) that takes only that tower's columns, so a
pre-ranking server precomputes item embeddings and computes the user one per request; its
``two_tower_metadata()`` (signature names, inputs, similarity, learned scale and bias) is
recorded as ``two_tower`` in ``recdistill.json``.

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


def _input_specs(columns: Mapping[str, tf.DType]) -> dict:
    return {name: tf.TensorSpec([None], dtype, name=name) for name, dtype in columns.items()}


def _float32(outputs: Mapping[str, tf.Tensor]) -> dict:
    return {k: tf.cast(v, tf.float32) for k, v in outputs.items()}


def _tower_endpoint(columns: Mapping[str, tf.DType], embed):
    """A serving function over ``columns`` only, returning ``embed``'s outputs as float32."""
    @tf.function(input_signature=[_input_specs(columns)])
    def endpoint(features):
        return _float32(embed(features, training=False))
    return endpoint


def _tower_signatures(model: keras.Model) -> dict:
    """``model.tower_signatures()`` if it serves its towers apart (DSSM), else ``{}``."""
    towers = getattr(model, "tower_signatures", None)
    return towers() if towers else {}


def _archive(model: keras.Model) -> keras.export.ExportArchive:
    """An ExportArchive tracking ``model`` with both endpoints (plus one per served tower)."""
    input_specs = _input_specs(model.input_columns)
    example_spec = features_lib.example_spec(model.pipeline_config, model.input_columns)

    @tf.function(input_signature=[input_specs])
    def serving_default(features):
        return _float32(model(features, training=False))

    # Calls the traced serving function rather than the model: the model is traced (and its
    # graph stored in the SavedModel) once for both endpoints, which halves the export's cost.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string,
                                                name=exported.EXAMPLES_INPUT)])
    def predict_examples(examples):
        return serving_default(tf.io.parse_example(examples, example_spec))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(exported.SERVING_SIGNATURE, serving_default)
    archive.add_endpoint(exported.EXAMPLES_SIGNATURE, predict_examples)
    for name, (columns, embed) in _tower_signatures(model).items():
        archive.add_endpoint(name, _tower_endpoint(columns, embed))
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
        adds ``model_class``, ``inputs`` (name -> dtype name), ``outputs``, ``signatures``,
        ``versions`` and, for a two-tower model, ``two_tower`` (how to combine the towers).

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
        signatures=[exported.SERVING_SIGNATURE, exported.EXAMPLES_SIGNATURE,
                    *_tower_signatures(model)],
        versions={"recdistill": recdistill.__version__, "tensorflow": tf.__version__,
                  "keras": keras.__version__},
    )
    if hasattr(model, "two_tower_metadata"):
        full_metadata["two_tower"] = model.two_tower_metadata()
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
