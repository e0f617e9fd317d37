"""Checkpoints, resume and warm start of Keras models.

* ``ckpt-<step>`` checkpoints (model, optimizer, step) in ``model_dir``: a killed job
  restarted with the same ``model_dir`` continues from the last one.
* ``export/warm_start/``: a checkpoint of the model's weights only, beside the SavedModel.
  :func:`restore_warm_start` restores it into a freshly built model, which is how daily
  retraining starts from yesterday's student (restoring by variable path, see
  :func:`variables_by_path`, survives re-exports; matching the SavedModel's own variables by
  position would not).

Checkpoints are written with ``tf.io.gfile``, so ``model_dir`` is a local path or a real
``gs://`` bucket; the warm-start copy goes through ``recdistill.data.filesystems``.
"""

import logging
import os
import re
import tempfile

import tensorflow as tf

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

    Raises:
      FileNotFoundError: ``warm_start`` holds no ``warm_start/`` checkpoint.
      ValueError: the checkpoint does not fit the model (different config).
    """
    source = filesystems.join(warm_start, WARM_START_SUBDIR)
    if not filesystems.exists(filesystems.join(source, _WARM_START_PREFIX + ".index")):
        raise FileNotFoundError(
            f"{warm_start}: no {WARM_START_SUBDIR}/ checkpoint in this export. Pass the export "
            f"folder of a model trained by recdistill.training (<model_dir>/export).")
    local = filesystems.localize(source)
    try:
        tf.train.Checkpoint(model=variables_by_path(model.variables)).read(
            os.path.join(local, _WARM_START_PREFIX)).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as error:
        raise ValueError(f"{warm_start}: its weights do not fit this model ({error}). Warm-start "
                         "only from a model built from the same features and model_config.") \
            from None
    logger.info("Warm-started %s from %s", model.name, warm_start)
