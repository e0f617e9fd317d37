"""Eval AUC and logloss at the end of training (and at each early-stopping evaluation).

The eval table is the raw one, without soft-label columns (soft labels are a training
signal; the pipeline labels only the training table), read as ``recdistill.evaluation``
reads it. The full evaluation (GAUC, agreement with the teacher, blessing) is
``recdistill.evaluation``'s; these are the numbers training records in its export.
"""

import logging

import numpy as np
import tensorflow as tf

from recdistill import config as config_lib
from recdistill import metrics as metrics_lib
from recdistill.data import datasets

logger = logging.getLogger(__name__)

_EVAL_BATCH_SIZE = 4096


class KerasEvaluator:
    """Scores a Keras model on one eval table; built once, called at every evaluation.

    The table is read anew on each call (a pass over a file), while the compiled predict
    function is kept, so early stopping's repeated evaluations trace once.
    """

    def __init__(self, cfg, model, eval_uri: str):
        self.model = model
        self.eval_uri = eval_uri
        self.label_names = [label for _, label, _ in model.targets]
        self._cfg = cfg
        # An eval table may carry the soft-label columns (what an EasyRec user has) or not.
        self._optional = config_lib.soft_label_fields(cfg)
        # Checked once, before the first step, so a bad eval table fails now, not after
        # training; each evaluation then reads it without checking it again.
        datasets.check_inputs(eval_uri, cfg, columns=model.input_columns,
                              labels=self.label_names, optional_fields=self._optional)
        # One trace for every batch size (the last batch is shorter) and every evaluation.
        specs = {name: tf.TensorSpec([None], dtype, name=name)
                 for name, dtype in model.input_columns.items()}
        self._predict = tf.function(lambda features: model(features, training=False),
                                    input_signature=[specs])

    def __call__(self) -> dict:
        """``eval_auc`` / ``eval_logloss`` (and per-target copies) of the model's current weights."""
        dataset = datasets.make_dataset(self.eval_uri, self._cfg,
                                        columns=self.model.input_columns,
                                        labels=self.label_names, batch_size=_EVAL_BATCH_SIZE,
                                        shuffle=False, num_epochs=1, check=False,
                                        optional_fields=self._optional)
        targets = self.model.targets
        logits = {pred: [] for pred, _, _ in targets}
        labels = {label: [] for label in self.label_names}
        for features, batch_labels in dataset:
            outputs = self._predict(features)
            for pred, label, _ in targets:
                logits[pred].append(tf.reshape(tf.cast(outputs[pred], tf.float32), [-1]).numpy())
                labels[label].append(batch_labels[label].numpy())
        results = {}
        for index, (pred, label, _) in enumerate(targets):
            probs = 1.0 / (1.0 + np.exp(-np.concatenate(logits[pred])))
            results.update(classification_metrics(np.concatenate(labels[label]), probs, label,
                                                   primary=index == 0, several=len(targets) > 1))
        logger.info("Eval on %s: %s", self.eval_uri, results)
        return results


def classification_metrics(labels, probs, label: str, *, primary: bool, several: bool) -> dict:
    """``eval_auc`` / ``eval_logloss`` for the first target, suffixed copies per target.

    An eval split whose labels hold one class has no AUC; that is logged and the AUC left
    out rather than failing a finished training run before its export.
    """
    values = {"logloss": metrics_lib.logloss(labels, probs)}
    try:
        values["auc"] = metrics_lib.auc(labels, probs)
    except ValueError as error:
        logger.warning("No eval AUC for %s: %s", label, error)
    out = {}
    for name, value in values.items():
        if primary:
            out[f"eval_{name}"] = value
        if several:
            out[f"eval_{name}_{label}"] = value
    return out
