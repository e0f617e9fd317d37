"""Knowledge-distillation losses: the ``kd`` blocks of a config turned into TF scalars.

This module owns the kd loss arithmetic and its combination with the hard-label losses
(:class:`KdTask`). It imports nothing from recdistill except ``recdistill.protos`` and never
imports kfp; models, the trainer and the evaluator call it with plain dicts of tensors.

Semantics follow Alibaba EasyRec's ``build_kd_loss``
(``easy_rec/python/builders/loss_builder.py``) so that EasyRec configs keep their meaning.
For one block with student prediction ``s`` (``pred_name``), teacher soft label ``t``
(``soft_label_name``), weight ``w`` (``loss_weight``), temperature ``T`` and epsilon
``eps = 1e-7``; ``C`` is the number of classes, 1 when the prediction has rank 1 or a last
dimension of 1 (binary), else its last dimension:

1. Probabilities become logits where ``pred_is_logits`` / ``label_is_logits`` is false:
   ``logit(p) = log(p) - log(1 - p)`` with ``p`` clipped to ``[eps, 1 - eps]`` for
   BINARY_CROSS_ENTROPY_LOSS (every column) and for one-class CROSS_ENTROPY_LOSS and
   KL_DIVERGENCE_LOSS; ``log(p + eps)`` for several classes (softmax does not see the shift).
2. Both sides are divided by ``T`` when ``T > 0`` (``T = 0`` means no division). L2_LOSS
   skips steps 1 and 2: it compares raw values.
3. The per-type loss, averaged over every element of the batch and multiplied by ``w``,
   with ``act`` = sigmoid for one class and softmax for several:

   - CROSS_ENTROPY_LOSS: ``y = act(t)``, ``p = act(s)``,
     ``mean(-y log(p + eps) - (1 - y) log(1 - p + eps))`` (EasyRec's ``tf.losses.log_loss``;
     for several classes this is the element-wise log loss over all ``B * C`` entries, not
     ``-sum(y log p)`` per row).
   - BINARY_CROSS_ENTROPY_LOSS: ``y = sigmoid(t)``, ``mean(sigmoid_xent(labels=y, logits=s))``
     element-wise, whatever ``C`` is.
   - KL_DIVERGENCE_LOSS: ``y = act(t)``, ``p = act(s)``; one class becomes the two-class
     distributions ``[1 - y, y]`` and ``[1 - p, p]``; both are clipped to ``[eps, 1]`` (as
     Keras' KLD does) and ``mean_rows(sum_classes(y log(y / p)))``.
   - L2_LOSS: ``mean((s - t)^2)``.

The default loss name is ``kd_loss_<pred_name>_<soft_label_name>`` with '/' replaced by '_'
(:func:`kd_loss_name`).

Deliberate differences from EasyRec:

- (a) EasyRec up to 0.8.1 computed the one-class CROSS_ENTROPY_LOSS prediction side from the
  soft label (``pred = sigmoid(label)``), so the student received no gradient. recdistill uses
  the student prediction, as later EasyRec releases do.
- (b) For one-class CROSS_ENTROPY_LOSS on probabilities EasyRec converts with ``log(p)``, so
  ``sigmoid(log p) = p / (1 + p)`` is compared instead of ``p``. recdistill converts with
  ``logit(p)`` (clipped by eps), so CE on probabilities with ``T = 1`` is the true binary
  cross-entropy between teacher and student probabilities.
- (c) A one-class KL on ``[B, 1]`` tensors is the per-row two-class KL, the same as on ``[B]``
  tensors (EasyRec's expand-and-concat would average over a spurious axis and halve it).

Extension beyond EasyRec: ``scale_by_temperature_squared`` multiplies a temperature-softened
loss (CE, BCE, KL with ``T > 0``) by ``T^2``, as Hinton et al. (2015), "Distilling the
Knowledge in a Neural Network", recommend so that the gradient scale does not shrink as ``T``
grows. ``teacher_pred_name`` is read by the soft-label job, not here.

Example::

    block = pipeline_pb2.KD(pred_name="logits", soft_label_name="kd_soft",
                            loss_type=pipeline_pb2.KL_DIVERGENCE_LOSS, temperature=2.0)
    losses = build_kd_losses([block], {"logits": student_logits}, {"kd_soft": teacher_logits})
    losses["kd_loss_logits_kd_soft"]  # scalar tf.Tensor
"""

import logging
from typing import Iterable, Mapping, NamedTuple, Optional, Sequence, Union

import tensorflow as tf

from recdistill.protos import pipeline_pb2

logger = logging.getLogger(__name__)

EPSILON = 1e-7
"""Clipping epsilon, ``tf.keras.backend.epsilon()`` as EasyRec uses."""

SUPPORTED_LOSS_TYPES = (
    pipeline_pb2.CROSS_ENTROPY_LOSS,
    pipeline_pb2.L2_LOSS,
    pipeline_pb2.BINARY_CROSS_ENTROPY_LOSS,
    pipeline_pb2.KL_DIVERGENCE_LOSS,
)

LOSS_KEY = "loss"
REGULARIZATION_KEY = "regularization"
HARD_LOSS_PREFIX = "hard_loss_"


def kd_loss_name(block: pipeline_pb2.KD) -> str:
    """Returns the name of a kd block's loss: ``loss_name`` or EasyRec's default.

    Args:
        block: a ``KD`` message.

    Returns:
        ``block.loss_name`` when set, else ``kd_loss_<pred_name>_<soft_label_name>`` with every
        '/' replaced by '_' (e.g. ``kd_loss_tower_logits_kd_soft`` for ``tower/logits``).
    """
    if block.loss_name:
        return block.loss_name
    return "kd_loss_{}_{}".format(
        block.pred_name.replace("/", "_"), block.soft_label_name.replace("/", "_")
    )


def build_kd_losses(
    kd_blocks: Iterable[pipeline_pb2.KD],
    predictions: Mapping[str, tf.Tensor],
    labels: Mapping[str, tf.Tensor],
) -> dict:
    """Builds one weighted scalar loss per kd block (see the module docstring for formulas).

    Args:
        kd_blocks: ``KD`` messages, e.g. ``config.model_config.kd``.
        predictions: student outputs by name (``logits``, ``probs``, ...), shape ``[B]``,
            ``[B, 1]`` or ``[B, C]``.
        labels: label columns by name, including each block's soft label; float64, ``[B]``
            and ``[B, 1]`` are accepted and cast/reshaped to the prediction.

    Returns:
        ``{loss_name: scalar tf.Tensor}`` in block order, each already multiplied by
        ``loss_weight`` (and by ``T^2`` where ``scale_by_temperature_squared`` asks).

    Raises:
        ValueError: a block names an unknown prediction or soft label (the message lists
            the available names), an unsupported loss type, a negative temperature, a
            soft label whose shape does not fit the prediction, or two blocks share a name.
    """
    losses = {}
    for index, block in enumerate(kd_blocks):
        name = kd_loss_name(block)
        if name in losses:
            raise ValueError(
                f"kd[{index}] loss name {name!r} is already used by an earlier kd block. "
                "Set a distinct loss_name on one of them."
            )
        _check_block(index, block)
        student = _prediction(f"kd[{index}].pred_name", block.pred_name, predictions)
        teacher = _label(f"kd[{index}].soft_label_name", block.soft_label_name, labels)
        student, teacher, num_class = _aligned(index, block, student, teacher)
        losses[name] = _block_loss(block, student, teacher, num_class)
    return losses


def _check_block(index: int, block: pipeline_pb2.KD) -> None:
    """Rejects kd settings the loss cannot honour, naming the field and the fix."""
    if block.loss_type not in SUPPORTED_LOSS_TYPES:
        valid = ", ".join(pipeline_pb2.LossType.Name(t) for t in SUPPORTED_LOSS_TYPES)
        raise ValueError(
            f"kd[{index}].loss_type {pipeline_pb2.LossType.Name(block.loss_type)} is not "
            f"supported for distillation; valid: {valid}."
        )
    if block.temperature < 0:
        raise ValueError(
            f"kd[{index}].temperature must be >= 0, got {block.temperature}. "
            "Use 1.0 (or 0) for no softening."
        )
    if block.scale_by_temperature_squared and block.loss_type == pipeline_pb2.L2_LOSS:
        raise ValueError(
            f"kd[{index}].scale_by_temperature_squared is set but L2_LOSS ignores the "
            "temperature, so T^2 would only rescale loss_weight. Remove it or change loss_weight."
        )


def _prediction(field: str, name: str, predictions: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Looks up a prediction as float32 (float64 kept), listing every name when it is absent.

    Half-precision outputs are widened because ``eps = 1e-7`` underflows in float16.
    """
    if name not in predictions:
        raise ValueError(
            f"{field} {name!r} is not a prediction of the model; available predictions: "
            f"{', '.join(sorted(predictions))}. Set {field.rsplit('.', 1)[-1]} to one of them."
        )
    value = tf.convert_to_tensor(predictions[name])
    return value if value.dtype == tf.float64 else tf.cast(value, tf.float32)


def _label(field: str, name: str, labels: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Looks up a label column, listing every available label when it is absent."""
    if name not in labels:
        raise ValueError(
            f"{field} {name!r} is not among the labels; available labels: "
            f"{', '.join(sorted(labels))}. Add it to data_config.label_fields or fix the name."
        )
    return tf.convert_to_tensor(labels[name])


def _num_classes(field: str, value: tf.Tensor) -> int:
    """Returns 1 for rank-1 or ``[B, 1]`` tensors, else the static last dimension."""
    if value.shape.rank is not None and value.shape.rank < 2:
        return 1
    last = value.shape[-1] if value.shape.rank is not None else None
    if last is None:
        raise ValueError(
            f"{field} has shape {value.shape} with an unknown last dimension; kd needs it "
            "to tell binary from multi-class. Give the model output a static shape."
        )
    return int(last)


def _aligned(index: int, block: pipeline_pb2.KD, student: tf.Tensor, teacher: tf.Tensor):
    """Casts the soft label to the prediction's dtype and gives both the same shape.

    Returns:
        ``(student, teacher, num_class)``; binary tensors are flattened to ``[B]``.
    """
    num_class = _num_classes(f"kd[{index}].pred_name {block.pred_name!r}", student)
    teacher = tf.cast(teacher, student.dtype)
    label_classes = _soft_label_classes(teacher)
    if label_classes not in (None, num_class):
        raise ValueError(
            f"kd[{index}].soft_label_name {block.soft_label_name!r} has shape {teacher.shape} "
            f"but prediction {block.pred_name!r} has shape {student.shape}; they need the same "
            "number of classes. Check that the soft label comes from the matching teacher output."
        )
    if num_class == 1:
        return tf.reshape(student, [-1]), tf.reshape(teacher, [-1]), 1
    return student, teacher, num_class


def _soft_label_classes(teacher: tf.Tensor) -> Optional[int]:
    """Classes in a soft label: 1 for ``[B]``, the last dimension otherwise (None if unknown)."""
    if teacher.shape.rank is None:
        return None
    if teacher.shape.rank < 2:
        return 1
    return teacher.shape[-1]


def _to_logits(value: tf.Tensor, is_logits: bool, use_logit: bool) -> tf.Tensor:
    """Maps probabilities to logits: ``logit(p)`` (clipped) or ``log(p + eps)``."""
    if is_logits:
        return value
    if use_logit:
        clipped = tf.clip_by_value(value, EPSILON, 1.0 - EPSILON)
        return tf.math.log(clipped) - tf.math.log1p(-clipped)
    return tf.math.log(value + EPSILON)


def _activate(logits: tf.Tensor, num_class: int) -> tf.Tensor:
    """Sigmoid for one class, softmax over the last axis for several."""
    return tf.nn.sigmoid(logits) if num_class == 1 else tf.nn.softmax(logits, axis=-1)


def _block_loss(
    block: pipeline_pb2.KD, student: tf.Tensor, teacher: tf.Tensor, num_class: int
) -> tf.Tensor:
    """One block's weighted scalar loss on aligned tensors."""
    loss_type = block.loss_type
    if loss_type == pipeline_pb2.L2_LOSS:
        return tf.reduce_mean(tf.square(student - teacher)) * block.loss_weight

    use_logit = num_class == 1 or loss_type == pipeline_pb2.BINARY_CROSS_ENTROPY_LOSS
    student = _to_logits(student, block.pred_is_logits, use_logit)
    teacher = _to_logits(teacher, block.label_is_logits, use_logit)
    temperature = block.temperature
    if temperature > 0:
        student = student / temperature
        teacher = teacher / temperature

    if loss_type == pipeline_pb2.BINARY_CROSS_ENTROPY_LOSS:
        loss = tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.nn.sigmoid(teacher), logits=student)
        )
    elif loss_type == pipeline_pb2.CROSS_ENTROPY_LOSS:
        target, prob = _activate(teacher, num_class), _activate(student, num_class)
        loss = tf.reduce_mean(
            -target * tf.math.log(prob + EPSILON)
            - (1.0 - target) * tf.math.log(1.0 - prob + EPSILON)
        )
    else:  # KL_DIVERGENCE_LOSS; _check_block admits nothing else.
        target, prob = _activate(teacher, num_class), _activate(student, num_class)
        if num_class == 1:
            target = tf.stack([1.0 - target, target], axis=-1)
            prob = tf.stack([1.0 - prob, prob], axis=-1)
        target = tf.clip_by_value(target, EPSILON, 1.0)
        prob = tf.clip_by_value(prob, EPSILON, 1.0)
        loss = tf.reduce_mean(tf.reduce_sum(target * tf.math.log(target / prob), axis=-1))

    loss = loss * block.loss_weight
    if block.scale_by_temperature_squared and temperature > 0:
        loss = loss * (temperature * temperature)
    return loss


class HardTarget(NamedTuple):
    """A hard-label head: sigmoid cross-entropy of ``pred_name`` (logits) on ``label_name``."""

    pred_name: str
    label_name: str
    weight: float = 1.0


class KdTask:
    """The training loss of a distilled student: hard-label losses plus every kd loss.

    ``loss = sum_i weight_i * hard_loss_i + sum_k kd_loss_k + regularization``, where
    ``hard_loss_i = mean_b(sigmoid_xent(labels=y_b, logits=z_b))`` for target ``i``'s 0/1
    label ``y`` and logits ``z`` (shape ``[B]`` or ``[B, 1]``), and ``kd_loss_k`` are the
    already weighted losses of :func:`build_kd_losses`. Like tfrs' ranking task it keeps the
    loss out of the towers: a model returns predictions, the trainer calls the task each step
    and logs every component.

    Example::

        task = KdTask([("logits", "clk", 1.0)], config.model_config.kd)
        parts = task({"logits": z}, {"clk": y, "kd_soft": t})
        parts["loss"], parts["hard_loss_clk"], parts["kd_loss_logits_kd_soft"]

    Args:
        targets: ``(pred_name, label_name, weight)`` tuples or :class:`HardTarget` s.
        kd_blocks: ``KD`` messages (may be empty).

    Raises:
        ValueError: two components would share a name, or a weight is negative.
    """

    def __init__(
        self,
        targets: Sequence[Union[HardTarget, tuple]],
        kd_blocks: Iterable[pipeline_pb2.KD] = (),
    ):
        self.targets = [HardTarget(*target) for target in targets]
        self.kd_blocks = list(kd_blocks)
        names = [HARD_LOSS_PREFIX + target.label_name for target in self.targets]
        names += [kd_loss_name(block) for block in self.kd_blocks]
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
        logger.info("kd task: loss components %s", ", ".join(names))

    def __call__(
        self,
        predictions: Mapping[str, tf.Tensor],
        labels: Mapping[str, tf.Tensor],
        regularization: Optional[tf.Tensor] = None,
    ) -> dict:
        """Computes every loss component and their total.

        Args:
            predictions: student outputs by name.
            labels: hard labels and soft labels by name.
            regularization: optional scalar added to the total (e.g. embedding L2).

        Returns:
            ``{"hard_loss_<label_name>": ..., <kd loss_name>: ..., "regularization": ...,
            "loss": total}``; hard losses are unweighted, kd losses already weighted.

        Raises:
            ValueError: a prediction or label is missing (the message lists those present),
                or a target prediction is not binary.
        """
        components = {}
        total = tf.constant(0.0)
        for index, target in enumerate(self.targets):
            hard = _hard_loss(index, target, predictions, labels)
            components[HARD_LOSS_PREFIX + target.label_name] = hard
            total += target.weight * tf.cast(hard, tf.float32)
        for name, kd in build_kd_losses(self.kd_blocks, predictions, labels).items():
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
    logits = _prediction(f"targets[{index}].pred_name", target.pred_name, predictions)
    if _num_classes(f"targets[{index}].pred_name {target.pred_name!r}", logits) != 1:
        raise ValueError(
            f"targets[{index}].pred_name {target.pred_name!r} has shape {logits.shape}; hard "
            "targets are binary heads with shape [B] or [B, 1]. Point it at a one-logit output."
        )
    label = _label(f"targets[{index}].label_name", target.label_name, labels)
    label = tf.reshape(tf.cast(label, logits.dtype), [-1])
    return tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=label, logits=tf.reshape(logits, [-1]))
    )
