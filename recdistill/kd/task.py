"""KdTask: the training loss of a distilled student (hard-label losses plus every kd loss)."""

import logging
from typing import Iterable, Mapping, NamedTuple, Optional, Sequence, Union

import tensorflow as tf

from recdistill.kd import losses as losses_lib

logger = logging.getLogger(__name__)

LOSS_KEY = "loss"
REGULARIZATION_KEY = "regularization"
HARD_LOSS_PREFIX = "hard_loss_"


class HardTarget(NamedTuple):
    """A hard-label head: sigmoid cross-entropy of ``pred_name`` (logits) on ``label_name``."""

    pred_name: str
    label_name: str
    weight: float = 1.0


class KdTask(tf.Module):
    """The training loss of a distilled student: hard-label losses plus every kd loss.

    ``loss = sum_i weight_i * hard_loss_i + sum_k kd_loss_k + regularization``, where
    ``hard_loss_i = mean_b(sigmoid_xent(labels=y_b, logits=z_b))`` for target ``i``'s 0/1
    label ``y`` and logits ``z`` (shape ``[B]`` or ``[B, 1]``), and ``kd_loss_k`` are the
    already weighted losses of :func:`~recdistill.kd.losses.build_kd_losses`. Like tfrs'
    ranking task it keeps the loss out of the towers: a model returns predictions, the trainer
    calls the task each step and logs every component.

    The blocks are read and checked here, before any graph is traced. Listwise blocks with
    ``scale_logits`` get two variables each (``w = 1``, ``b = 0``, EasyRec's initial values);
    they are in :attr:`trainable_variables`, which the trainer must optimise with the model's
    (create the task under the distribution strategy's scope).

    Example::

        task = KdTask([("logits", "clk", 1.0)], config.model_config.kd, model.prediction_names)
        parts = task({"logits": z}, {"clk": y, "kd_soft": t}, features={"user_id": u})
        parts["loss"], parts["hard_loss_clk"], parts["kd_loss_logits_kd_soft"]

    Args:
        targets: ``(pred_name, label_name, weight)`` tuples or :class:`HardTarget` s.
        kd_blocks: ``KD`` messages (may be empty).
        prediction_names: the student's output names; when given, a block naming another
            prediction fails here, listing them.

    Raises:
        ValueError: a kd block breaks a rule or names an unknown prediction, two components
            would share a name, or a weight is negative.
    """

    def __init__(
        self,
        targets: Sequence[Union[HardTarget, tuple]],
        kd_blocks: Iterable = (),
        prediction_names: Optional[Iterable[str]] = None,
    ):
        super().__init__(name="kd_task")
        self.targets = [HardTarget(*target) for target in targets]
        self.kd_params = losses_lib.as_params(kd_blocks)
        names = [HARD_LOSS_PREFIX + target.label_name for target in self.targets]
        names += [block.name for block in self.kd_params]
        reserved = {LOSS_KEY, REGULARIZATION_KEY}
        for index, name in enumerate(names):
            if name in reserved or name in names[:index]:
                raise ValueError(
                    f"loss component name {name!r} is used twice (components: "
                    f"{', '.join(names)}; reserved: {LOSS_KEY}, {REGULARIZATION_KEY}). Give the "
                    "kd block a distinct loss_name or drop the duplicate target."
                )
        for index, target in enumerate(self.targets):
            if target.weight < 0:
                raise ValueError(
                    f"targets[{index}] ({target.label_name!r}) weight must be >= 0, got "
                    f"{target.weight}. Use 0 to train on soft labels only."
                )
        if prediction_names is not None:
            outputs = list(prediction_names)
            for index, block in enumerate(self.kd_params):
                losses_lib.check_prediction_name(f"kd[{index}].pred_name", block.pred_name,
                                                 outputs)
        self.logit_scales = {
            block.name: (tf.Variable([1.0], name=f"{block.name}_scale_w"),
                         tf.Variable([0.0], name=f"{block.name}_scale_b"))
            for block in self.kd_params if getattr(block.loss, "scale_logits", False)
        }
        logger.info("kd task: loss components %s", ", ".join(names))

    @property
    def feature_names(self) -> list:
        """The input columns the kd blocks read (sessions, weights, task-space indicators)."""
        return list(dict.fromkeys(n for block in self.kd_params for n in block.feature_names))

    def __call__(
        self,
        predictions: Mapping[str, tf.Tensor],
        labels: Mapping[str, tf.Tensor],
        regularization: Optional[tf.Tensor] = None,
        features: Optional[Mapping[str, tf.Tensor]] = None,
    ) -> dict:
        """Computes every loss component and their total.

        Args:
            predictions: student outputs by name.
            labels: hard labels and soft labels by name.
            regularization: optional scalar added to the total (e.g. embedding L2).
            features: input columns by name; must hold :attr:`feature_names`.

        Returns:
            ``{"hard_loss_<label_name>": ..., <kd loss_name>: ..., "regularization": ...,
            "loss": total}``; hard losses are unweighted, kd losses already weighted.

        Raises:
            ValueError: a prediction, label or column is missing (the message lists those
                present), or a target prediction is not binary.
        """
        components = {}
        total = tf.constant(0.0)
        for index, target in enumerate(self.targets):
            hard = _hard_loss(index, target, predictions, labels)
            components[HARD_LOSS_PREFIX + target.label_name] = hard
            total += target.weight * tf.cast(hard, tf.float32)
        kd_losses = losses_lib.build_kd_losses(self.kd_params, predictions, labels, features,
                                               self.logit_scales)
        for name, kd in kd_losses.items():
            components[name] = kd
            total += tf.cast(kd, tf.float32)
        if regularization is not None:
            regularization = tf.cast(regularization, tf.float32)
            components[REGULARIZATION_KEY] = regularization
            total += regularization
        components[LOSS_KEY] = total
        return components


def _hard_loss(
    index: int,
    target: HardTarget,
    predictions: Mapping[str, tf.Tensor],
    labels: Mapping[str, tf.Tensor],
) -> tf.Tensor:
    """Mean sigmoid cross-entropy of one binary head on its 0/1 label."""
    logits = losses_lib.prediction(f"targets[{index}].pred_name", target.pred_name, predictions)
    if losses_lib.num_classes(f"targets[{index}].pred_name {target.pred_name!r}", logits) != 1:
        raise ValueError(
            f"targets[{index}].pred_name {target.pred_name!r} has shape {logits.shape}; hard "
            "targets are binary heads with shape [B] or [B, 1]. Point it at a one-logit output."
        )
    label = losses_lib.label(f"targets[{index}].label_name", target.label_name, labels)
    label = tf.reshape(tf.cast(label, logits.dtype), [-1])
    return tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=label, logits=tf.reshape(logits, [-1]))
    )
