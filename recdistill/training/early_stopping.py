"""Early stopping on the eval metric, keeping the best weights for export.

A teacher trained too long memorises the rows it will then label, and its soft labels repeat
the clicks (issue 11). ``train_config.early_stopping`` evaluates every ``eval_every_steps``
on the training's eval data: in the pipeline the kd sweep's validation split when it carved
one (``recdistill.steps.train_model``'s ``validation_uri``), since a checkpoint picked on the
eval table would make that table's verdict on the model optimistic; else the eval table
(``recdistill train --eval``, ``validation_fraction`` 0). It keeps the weights of the best
evaluation in ``<model_dir>/best-<step>/`` and stops after ``patience`` evaluations without
an improvement of more than ``min_delta``; the export then holds those best weights, and
``recdistill.json`` their eval metrics (the soft-label job's leak guard compares its
``eval_auc`` with the AUC on the rows it scores: held-out rows either way).

State lives in ``<model_dir>/early_stopping.json`` (every evaluation, the best step, where
training stopped), written after each evaluation and after the checkpoint of the same step,
so a killed run resumes with its best so far, and a rerun of a stopped run does not train on.
"""

import json
import logging
import os
from typing import Callable, Optional

import tensorflow as tf

from recdistill import config as config_lib
from recdistill.training import checkpoints

logger = logging.getLogger(__name__)

STATE_FILE = "early_stopping.json"
BEST_PREFIX = "best-"
_WEIGHTS = "model"

class EarlyStopping:
    """Decides when training stops and keeps the best weights.

    Args:
      spec: the ``train_config.early_stopping`` message.
      save_checkpoints_steps: evaluations default to this interval.
      model_dir: where the state and the best weights go (local or gs://, via tf.io.gfile).
      model: the Keras model whose weights are kept and, at the end, restored.
      evaluate: returns the eval metrics (``eval_auc``, ``eval_logloss``, ...) of the model's
        current weights.
    """

    def __init__(self, spec, save_checkpoints_steps: int, model_dir: str, model,
                 evaluate: Callable[[], dict]):
        self.metric = spec.metric
        self.key = f"eval_{spec.metric}"
        self.patience = spec.patience
        self.min_delta = spec.min_delta
        self.every = max(spec.eval_every_steps or save_checkpoints_steps, 1)
        self.model_dir = model_dir
        self.model = model
        self._evaluate = evaluate
        self.history: list = []
        self.stopped_at: Optional[int] = None

    def resume(self) -> None:
        """Takes over the state of the run being resumed (nothing when it has none)."""
        path = os.path.join(self.model_dir, STATE_FILE)
        if not tf.io.gfile.exists(path):
            return
        with tf.io.gfile.GFile(path) as f:
            state = json.load(f)
        self.history = state["history"]
        self.stopped_at = state["stopped_at"]
        if self.stopped_at is not None:
            logger.info("Early stopping had stopped this run at step %d (best: step %d); not "
                        "training further", self.stopped_at, self.best["step"])

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    @property
    def last_step(self) -> Optional[int]:
        return self.history[-1]["step"] if self.history else None

    @property
    def best(self) -> Optional[dict]:
        """The best evaluation so far (the earliest of equals): ``{"step": .., eval_..: ..}``."""
        best = None
        for entry in self.history:
            if best is None or self._improves(entry[self.key], best[self.key]):
                best = entry
        return best

    def _improves(self, value: float, reference: float) -> bool:
        if config_lib.EARLY_STOPPING_METRICS[self.metric]:
            return value > reference + self.min_delta
        return value < reference - self.min_delta

    def evaluate(self, step: int) -> bool:
        """Evaluates the current weights at ``step``; returns whether training should stop.

        Raises:
          ValueError: the eval data gives no value for the watched metric (an AUC needs both
            classes in the eval labels).
        """
        metrics = self._evaluate()
        if self.key not in metrics:
            raise ValueError(f"train_config.early_stopping.metric {self.metric!r}: the eval data "
                             f"gave no {self.key} at step {step} (got {sorted(metrics)}); an AUC "
                             "needs clicks and non-clicks in the eval labels. Use eval data with "
                             "both, or metric: 'logloss'.")
        previous = self.best
        self.history.append({"step": step, **metrics})
        stale = None
        if previous is None or self._improves(metrics[self.key], previous[self.key]):
            self._keep_weights(step)
            stale = previous
        best = self.best
        waited = sum(1 for entry in self.history if entry["step"] > best["step"])
        logger.info("Early stopping at step %d: %s %.5f (best %.5f at step %d, %d of %d "
                    "evaluations without improvement)", step, self.key, metrics[self.key],
                    best[self.key], best["step"], waited, self.patience)
        if waited >= self.patience:
            self.stopped_at = step
            logger.info("Stopping: no %s improvement in %d evaluations; exporting step %d",
                        self.metric, waited, best["step"])
        self._write_state()
        if stale is not None:  # only once the state no longer points at it
            tf.io.gfile.rmtree(self._best_dir(stale["step"]))
        return self.stopped

    def restore_best(self) -> dict:
        """Loads the best weights into the model; returns their eval metrics."""
        best = self.best
        tf.train.Checkpoint(model=checkpoints.variables_by_path(self.model.variables)).read(
            os.path.join(self._best_dir(best["step"]), _WEIGHTS)).assert_existing_objects_matched()
        logger.info("Restored the best weights (step %d, %s %.5f)", best["step"], self.key,
                    best[self.key])
        return {name: value for name, value in best.items() if name != "step"}

    def summary(self) -> dict:
        """What ``recdistill.json`` records: the watched metric, the best and every evaluation."""
        return {"metric": self.metric, "patience": self.patience, "min_delta": self.min_delta,
                "eval_every_steps": self.every, "best_step": self.best["step"],
                "stopped_at_step": self.stopped_at, "evaluations": self.history}

    def _best_dir(self, step: int) -> str:
        return os.path.join(self.model_dir, f"{BEST_PREFIX}{step}")

    def _keep_weights(self, step: int) -> None:
        tf.train.Checkpoint(model=checkpoints.variables_by_path(self.model.variables)).write(
            os.path.join(self._best_dir(step), _WEIGHTS))

    def _write_state(self) -> None:
        """Writes the state beside the checkpoints, replacing the old one in one rename."""
        path = os.path.join(self.model_dir, STATE_FILE)
        with tf.io.gfile.GFile(path + ".tmp", "w") as f:
            json.dump({"history": self.history, "stopped_at": self.stopped_at}, f, indent=2)
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
