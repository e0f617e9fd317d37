"""Training: a loaded config and data files in, checkpoints and a serving export out.

This package owns the training of every model recdistill trains. :func:`train` dispatches:

* a Keras model (DSSM student, DCN / DeepFM teacher) is trained by
  ``recdistill.training.keras_trainer``: a custom step whose loss is ``recdistill.kd.KdTask``,
  every loss component logged on its own;
* a GBDT teacher (``model_class: 'GBDT'``) by ``recdistill.models.gbdt_training``.

What a run leaves in ``model_dir``:

* ``ckpt-<step>`` checkpoints (model, optimizer, step) every ``save_checkpoints_steps``; a
  killed job restarted with the same ``model_dir`` continues from the last one
  (``recdistill.training.checkpoints``).
* ``events/``: TensorBoard summaries of every loss component, steps/s and examples/s, and
  ``training_report.html``: the same loss curves as a self-contained page
  (``recdistill.training.report``).
* ``export/``: the SavedModel (``recdistill.exported`` contract) with ``recdistill.json``
  holding the config, training metrics and eval metrics, and ``export/warm_start/``: a
  checkpoint of the model's weights only, from which ``train(..., warm_start=<export>)``
  initialises a later run.
* with ``train_config.early_stopping``: ``best-<step>/`` and ``early_stopping.json``; the
  export then holds the best evaluation's weights (``recdistill.training.early_stopping``).

A loss or weights turning NaN / inf stop the run with ``NonFiniteLossError`` naming the step;
nothing non-finite is checkpointed, resumed or exported. Under a ``TF_CONFIG`` cluster every
worker runs :func:`train` and only the chief writes ``model_dir``
(``recdistill.training.distribution``).

Soft-label columns and privileged features are read for training only: the export takes
exactly the columns the model reads (``model.input_columns``).

Does all IO through ``recdistill.data``; never imports ``kfp``.
"""

from typing import Optional

from recdistill.training import keras_trainer
from recdistill.training.checkpoints import CHECKPOINT_NAME, WARM_START_SUBDIR, variables_by_path
from recdistill.training.keras_trainer import (NonFiniteLossError, build_optimizer,
                                               make_train_step)
from recdistill.training.report import EVENTS_SUBDIR, TRAINING_REPORT, read_scalars
from recdistill.training.result import TrainResult

__all__ = ["CHECKPOINT_NAME", "EVENTS_SUBDIR", "TRAINING_REPORT", "WARM_START_SUBDIR",
           "NonFiniteLossError", "TrainResult", "build_optimizer", "make_train_step",
           "read_scalars", "train", "variables_by_path"]


def train(cfg, *, train_uri: Optional[str] = None, eval_uri: Optional[str] = None,
          model_dir: Optional[str] = None, warm_start: Optional[str] = None,
          mixed_precision: bool = False, num_steps: Optional[int] = None,
          exclude_fold=None) -> TrainResult:
    """Trains the model a config describes, then exports it for serving.

    Args:
      cfg: a loaded ``EasyRecConfig`` (``recdistill.config.load_config``).
      train_uri: training data (file, folder of shards or glob; local or gs://); defaults to
        ``train_input_path``.
      eval_uri: eval data for AUC / logloss; defaults to ``eval_input_path`` (none: no eval).
      model_dir: checkpoints, events and export; defaults to the config's ``model_dir``.
      warm_start: an export folder (or pushed version) of an earlier model, whose weights
        initialise this run where their variable path and shape fit (the rest start fresh,
        logged). Ignored when ``model_dir`` already holds a checkpoint (resuming wins).
      mixed_precision: compute in float16 with loss scaling (``mixed_float16``); for GPUs.
      num_steps: overrides ``train_config.num_steps`` (0: train for ``num_epochs``).
      exclude_fold: a ``recdistill.data.datasets.ExcludedFold``: train a cross-fitting fold
        teacher on every training row but that fold's (filtered while reading, no copy); the
        export's ``recdistill.json`` records it under ``cross_fit``.

    Returns:
      A :class:`TrainResult`.

    Raises:
      TypeError: ``cfg`` is not a loaded config.
      ValueError: no training data / model_dir, a negative ``num_steps``, bad data (see
        ``datasets.check_inputs``), a checkpoint or warm start holding NaN / inf, or training
        that diverged (``NonFiniteLossError``, naming the step).
      FileNotFoundError: the training data or warm start does not exist.
    """
    from recdistill.protos import pipeline_pb2

    if not isinstance(cfg, pipeline_pb2.EasyRecConfig):
        raise TypeError(f"train() takes a loaded config, got {type(cfg).__name__}. Load it "
                        "first with recdistill.config.load_config(path).")
    train_uri = train_uri or cfg.train_input_path
    eval_uri = eval_uri or cfg.eval_input_path or None
    model_dir = model_dir or cfg.model_dir
    if not train_uri:
        raise ValueError("no training data: set train_input_path in the config or pass train_uri.")
    if not model_dir:
        raise ValueError("no model_dir: set model_dir in the config or pass model_dir.")
    steps = cfg.train_config.num_steps if num_steps is None else num_steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"num_steps must be a whole number >= 0 (0: train for "
                         f"data_config.num_epochs), got {steps!r}. Pass a positive step count.")
    if cfg.model_config.model_class == "GBDT":
        from recdistill.models import gbdt_training

        return gbdt_training.train_gbdt_model(cfg, train_uri, eval_uri, model_dir,
                                              exclude_fold=exclude_fold)
    if steps == 0 and cfg.data_config.num_epochs == 0:
        raise ValueError("train_config.num_steps is 0 and data_config.num_epochs is 0, so "
                         "training would never end. Set num_steps or num_epochs.")
    return keras_trainer.KerasTrainer(cfg, model_dir, mixed_precision, exclude_fold).run(
        train_uri, eval_uri, steps=steps, warm_start=warm_start)
