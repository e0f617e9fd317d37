"""Pointwise kd: each row's student output against its teacher soft label, on its own.

Pure functions of tensors and :class:`recdistill.kd.params.Pointwise`; the formulas (EasyRec's
``build_kd_loss`` and recdistill's fixes) are in the :mod:`recdistill.kd` docstring. Each
returns one loss per row so that per-row weights apply before the batch mean.
"""

import tensorflow as tf

from recdistill.kd import params as params_lib
from recdistill.protos import pipeline_pb2

EPSILON = 1e-7
"""Clipping epsilon, ``tf.keras.backend.epsilon()`` as EasyRec uses."""


def to_logits(value: tf.Tensor, is_logits: bool, use_logit: bool) -> tf.Tensor:
    """Maps probabilities to logits: ``logit(p)`` (p clipped to [eps, 1-eps]) or
    ``log(p + eps)``."""
    if is_logits:
        return value
    if use_logit:
        clipped = tf.clip_by_value(value, EPSILON, 1.0 - EPSILON)
        return tf.math.log(clipped) - tf.math.log1p(-clipped)
    return tf.math.log(value + EPSILON)


def _activate(logits: tf.Tensor, num_class: int) -> tf.Tensor:
    """Sigmoid for one class, softmax over the last axis for several."""
    return tf.nn.sigmoid(logits) if num_class == 1 else tf.nn.softmax(logits, axis=-1)


def _per_row(values: tf.Tensor, num_class: int, reduce=tf.reduce_mean) -> tf.Tensor:
    return values if num_class == 1 else reduce(values, axis=-1)


def row_losses(loss: params_lib.Pointwise, student: tf.Tensor, teacher: tf.Tensor,
               num_class: int) -> tf.Tensor:
    """One unweighted kd loss per row.

    Args:
        loss: the block's pointwise parameters.
        student: ``[B]`` (one class) or ``[B, C]`` student outputs.
        teacher: the soft labels, same shape and dtype.
        num_class: 1 or ``C``.

    Returns:
        ``[B]``: for several classes the mean over classes (CE, BCE, L2, as EasyRec's
        element-wise losses average them) or the sum (KL).
    """
    loss_type = loss.loss_type
    if loss_type == pipeline_pb2.L2_LOSS:
        return _per_row(tf.square(student - teacher), num_class)

    use_logit = num_class == 1 or loss_type == pipeline_pb2.BINARY_CROSS_ENTROPY_LOSS
    student = to_logits(student, loss.pred_is_logits, use_logit)
    teacher = to_logits(teacher, loss.label_is_logits, use_logit)
    if loss.temperature > 0:
        student = student / loss.temperature
        teacher = teacher / loss.temperature

    if loss_type == pipeline_pb2.BINARY_CROSS_ENTROPY_LOSS:
        values = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.nn.sigmoid(teacher),
                                                         logits=student)
        return _per_row(values, num_class)
    target, prob = _activate(teacher, num_class), _activate(student, num_class)
    if loss_type == pipeline_pb2.CROSS_ENTROPY_LOSS:
        values = (-target * tf.math.log(prob + EPSILON)
                  - (1.0 - target) * tf.math.log(1.0 - prob + EPSILON))
        return _per_row(values, num_class)
    # KL_DIVERGENCE_LOSS: the only other pointwise type.
    if num_class == 1:
        target = tf.stack([1.0 - target, target], axis=-1)
        prob = tf.stack([1.0 - prob, prob], axis=-1)
    target = tf.clip_by_value(target, EPSILON, 1.0)
    prob = tf.clip_by_value(prob, EPSILON, 1.0)
    return tf.reduce_sum(target * tf.math.log(target / prob), axis=-1)
