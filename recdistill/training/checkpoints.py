"""Checkpoints, resume and warm start of Keras models.

* ``ckpt-<step>`` checkpoints (model, optimizer, step) in ``model_dir``: a killed job
  restarted with the same ``model_dir`` continues from the last one.
* ``export/warm_start/``: a checkpoint of the model's weights only, beside the SavedModel.
  :func:`restore_warm_start` restores it into a freshly built model, which is how daily
  retraining starts from yesterday's student (restoring by variable path, see
  :func:`variables_by_path`, survives re-exports; matching the SavedModel's own variables by
  position would not).

Checkpoints are written with ``tf.io.gfile``, so the folder written here is local or a real
``gs://`` bucket (an ``s3://``/``minio://`` model_dir is staged locally by
``recdistill.training.staging``); the warm-start copy goes through ``recdistill.data.filesystems``.
"""

import logging
import os
import re
import tempfile

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from recdistill.data import filesystems

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "ckpt"
WARM_START_SUBDIR = "warm_start"
_WARM_START_PREFIX = "model"
_SEED_STATE = "seed_generator_state"
_OWNER_SUFFIX = re.compile(r"^([^/]*?)(?:_\d+)?/")


def variables_by_path(variables) -> dict:
    """Keras variables keyed by their path without the owner's name, as checkpoints hold them.

    ``tf.train.Checkpoint(model=keras_model)`` does not see variables of Keras 3 sublayers
    (only those set directly on the model), so checkpoints hold this dict instead. The first
    path component (the model's or optimizer's name) loses the numeric suffix Keras adds to
    make it unique per process (``adam_3`` -> ``adam``), so the keys are the same for every
    model built from the same config, while a loss-scale optimizer's own variables stay
    apart from those of the optimizer it wraps.

    Raises:
      ValueError: two variables share a path (they would overwrite each other).
    """
    by_path = {}
    for variable in variables:
        if variable.name == _SEED_STATE:
            continue  # dropout's RNG state: numbered per process, and nothing to resume
        key = _OWNER_SUFFIX.sub(r"\1/", variable.path, count=1)
        if key in by_path:
            raise ValueError(f"two variables share the path {key!r}; give the layers distinct "
                             "names so checkpoints can tell them apart.")
        by_path[key] = variable
    return by_path


def write_warm_start(model, export_path: str) -> None:
    """Saves the model's weights beside the SavedModel for :func:`restore_warm_start`."""
    with tempfile.TemporaryDirectory() as tmp:
        tf.train.Checkpoint(model=variables_by_path(model.variables)).write(
            os.path.join(tmp, _WARM_START_PREFIX))
        filesystems.copy_tree(tmp, filesystems.join(export_path, WARM_START_SUBDIR))


def restore_warm_start(model, warm_start: str) -> None:
    """Initialises ``model`` from the weights an earlier run stored in its export.

    Restores what fits: every variable whose path (:func:`variables_by_path`) and shape are
    in the checkpoint. A daily run whose config changed since the champion was trained (a
    new feature, a wider layer) so keeps yesterday's weights where they still fit and starts
    the rest fresh; what was not restored is logged as a warning.

    Raises:
      FileNotFoundError: ``warm_start`` holds no ``warm_start/`` checkpoint.
      ValueError: the checkpoint holds non-finite values (a diverged model).
    """
    source = filesystems.join(warm_start, WARM_START_SUBDIR)
    if not filesystems.exists(filesystems.join(source, _WARM_START_PREFIX + ".index")):
        raise FileNotFoundError(
            f"{warm_start}: no {WARM_START_SUBDIR}/ checkpoint in this export. Pass the export "
            f"folder of a model trained by recdistill.training (<model_dir>/export).")
    reader = tf.train.load_checkpoint(
        os.path.join(filesystems.localize(source), _WARM_START_PREFIX))
    saved = _saved_variable_keys(reader, "model")
    shapes = reader.get_variable_to_shape_map()
    restored, new, reshaped = [], [], []
    for path, variable in variables_by_path(model.variables).items():
        key = saved.pop(path, None)
        if key is None:
            new.append(path)
        elif tuple(shapes[key]) != tuple(variable.shape):
            reshaped.append(f"{path} {tuple(shapes[key])} -> {tuple(variable.shape)}")
        else:
            value = reader.get_tensor(key)
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise ValueError(
                    f"{warm_start}: variable {path!r} of its warm-start checkpoint holds NaN or "
                    "inf (the model diverged). Warm-start from a finite export (an earlier "
                    "version) or train without warm start.")
            variable.assign(value)
            restored.append(path)
    if new or reshaped or saved:
        logger.warning(
            "Warm start from %s restored %d of %d variables; the model's config changed since "
            "it was trained. Fresh (not in the checkpoint): %s. Fresh (shape changed): %s. "
            "Unused from the checkpoint: %s.", warm_start, len(restored),
            len(restored) + len(new) + len(reshaped), _few(new), _few(reshaped),
            _few(sorted(saved)))
    if not restored:
        logger.warning("Nothing in %s fits this model: training from scratch.", warm_start)
    else:
        logger.info("Warm-started %s from %s (%d variables)", model.name, warm_start,
                    len(restored))


def _saved_variable_keys(reader, owner: str) -> dict:
    """``{variable path: checkpoint key}`` of the dict saved as ``owner`` in a checkpoint.

    Read from the checkpoint's object graph rather than by un-escaping keys, so any path
    (dots and slashes included) maps back exactly.
    """
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    owners = [child.node_id for child in graph.nodes[0].children if child.local_name == owner]
    keys = {}
    for node_id in owners:
        for child in graph.nodes[node_id].children:
            for attribute in graph.nodes[child.node_id].attributes:
                if attribute.name == "VARIABLE_VALUE":
                    keys[child.local_name] = attribute.checkpoint_key
    return keys


def nonfinite_paths(variables) -> list:
    """Paths of the float variables holding NaN or inf (empty when every value is finite)."""
    return [path for path, variable in variables_by_path(variables).items()
            if tf.as_dtype(variable.dtype).is_floating
            and not bool(tf.reduce_all(tf.math.is_finite(variable)).numpy())]


def _few(names, limit: int = 10) -> str:
    """Up to ``limit`` names, and how many more, for a log line."""
    if not names:
        return "none"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
