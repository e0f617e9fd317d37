"""What a training run hands back (:class:`TrainResult`) and writes into ``recdistill.json``.

Shared by the Keras trainer and the GBDT trainer, so both report the same metric names.
"""

import dataclasses

from recdistill import config as config_lib


@dataclasses.dataclass
class TrainResult:
    """What ``recdistill.training.train`` produced.

    Attributes:
      model_dir: where checkpoints and TensorBoard events are.
      export_dir: the SavedModel export (``<model_dir>/export``).
      steps: the global step reached (trees for a GBDT).
      metrics: flat name -> number: the final loss components (means over the last logging
        window), ``steps``, ``examples_per_sec`` and, with eval data, ``eval_auc`` /
        ``eval_logloss`` (plus ``eval_auc_<label>`` / ``eval_logloss_<label>`` per target)
        of the exported weights (with early stopping: the best checkpoint's).
    """

    model_dir: str
    export_dir: str
    steps: int
    metrics: dict


def export_metadata(cfg, label_fields, train_metrics: dict, eval_metrics: dict,
                    **extra) -> dict:
    """The ``recdistill.json`` entries training owns (export adds inputs, outputs, versions).

    ``eval_metrics`` are those of the exported weights: the soft-label job's leak guard
    compares its ``eval_auc`` with the teacher's AUC on the rows it scores.
    """
    return {"config": config_lib.to_text(cfg), "training_metrics": train_metrics,
            "eval_metrics": eval_metrics, "label_fields": list(label_fields), **extra}
