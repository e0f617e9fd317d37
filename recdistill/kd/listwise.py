"""Listwise kd: the student's distribution over each session's rows against the teacher's.

For a session ``S`` (rows sharing the block's ``session_name`` column), student logits ``s``
(times ``|w|`` plus ``b`` when ``scale_logits``, then divided by the temperature ``T``) and
per-row weights ``w_i``, each loss is ``L_S = -sum_{i in S} w_i q_i log p_i`` and the batch loss
is ``sum_S L_S`` over the number of sessions holding a non-zero weight:

- LISTWISE_RANK_LOSS: ``p = softmax_S(s)``; ``y`` = soft label (divided by ``T`` when
  ``label_is_logits``), then ``transform_fn(y)``; ``q = softmax_S(y)`` when
  ``label_is_logits``, else ``q = y`` as it is.
- LISTWISE_DISTILL_LOSS: the soft label is the teacher's rank position ``r`` (1 = top):
  ``y = transform_fn(clip(r, 1, M))`` or ``log(1 + M) - log(clip(r, 1, M))`` with
  ``M = label_clip_max_value``; ``q = y / sum_S y``; ``p = softmax_S(s)``.
- LISTWISE_CALIBRATED_DISTILL_LOSS (recdistill's CLID; Gui et al., "Calibration-compatible
  Listwise Distillation of Privileged Features for CTR Prediction", WSDM 2024): with
  ``sigma`` the sigmoid and teacher/student logits divided by ``T`` (probabilities become
  logits first), ``q = sigma(t) / sum_S sigma(t)``, ``p = sigma(s) / sum_S sigma(s)``. Only each
  row's share of its session's click probability is distilled, so ranking is learnt while the
  pointwise hard-label loss keeps the student's probabilities calibrated.

With weights 1 the first two equal EasyRec's ``easy_rec/python/loss/listwise_loss.py`` (which
loops over sessions with ``tf.map_fn``; here segment ops do every session at once).
"""

from typing import Callable, Optional, Tuple

import tensorflow as tf

from recdistill.kd import params as params_lib
from recdistill.kd import pointwise

Scale = Optional[Tuple[tf.Variable, tf.Variable]]


def segment_log_softmax(values: tf.Tensor, segments: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
    """``log softmax`` of ``values`` within each of ``count`` segments, per row."""
    peak = tf.stop_gradient(tf.math.unsorted_segment_max(values, segments, count))
    shifted = values - tf.gather(peak, segments)
    total = tf.math.unsorted_segment_sum(tf.exp(shifted), segments, count)
    return shifted - tf.gather(tf.math.log(total), segments)


def _session_mean(row_losses: tf.Tensor, weights: tf.Tensor, segments: tf.Tensor,
                  count: tf.Tensor) -> tf.Tensor:
    """``sum_S sum_{i in S} w_i l_i`` over the sessions with a non-zero weight."""
    per_session = tf.math.unsorted_segment_sum(row_losses * weights, segments, count)
    weighted = tf.math.unsorted_segment_max(tf.cast(tf.not_equal(weights, 0), weights.dtype),
                                            segments, count)
    return tf.math.divide_no_nan(tf.reduce_sum(per_session),
                                 tf.reduce_sum(tf.maximum(weighted, 0.0)))


def _scaled(student: tf.Tensor, scale: Scale, temperature: float) -> tf.Tensor:
    if scale is not None:
        weight, bias = scale
        student = student * tf.cast(tf.abs(weight), student.dtype) + tf.cast(bias, student.dtype)
    return student / temperature if temperature != 1.0 else student


def _apply(transform_fn: Optional[Callable], values: tf.Tensor) -> tf.Tensor:
    return values if transform_fn is None else tf.cast(transform_fn(values), values.dtype)


def rank_loss(loss: params_lib.ListwiseRank, student: tf.Tensor, teacher: tf.Tensor,
              segments: tf.Tensor, count: tf.Tensor, weights: tf.Tensor,
              scale: Scale = None) -> tf.Tensor:
    """LISTWISE_RANK_LOSS of ``[B]`` student logits against ``[B]`` teacher labels."""
    student = _scaled(student, scale, loss.temperature)
    if loss.label_is_logits and loss.temperature != 1.0:
        teacher = teacher / loss.temperature
    teacher = _apply(loss.transform_fn, teacher)
    if loss.label_is_logits:
        teacher = tf.exp(segment_log_softmax(teacher, segments, count))
    row_losses = -teacher * segment_log_softmax(student, segments, count)
    return _session_mean(row_losses, weights, segments, count)


def distill_loss(loss: params_lib.ListwiseDistill, student: tf.Tensor, teacher: tf.Tensor,
                 segments: tf.Tensor, count: tf.Tensor, weights: tf.Tensor,
                 scale: Scale = None) -> tf.Tensor:
    """LISTWISE_DISTILL_LOSS of ``[B]`` student logits against teacher rank positions."""
    limit = loss.label_clip_max_value
    positions = tf.clip_by_value(teacher, 1.0, limit)
    if loss.transform_fn is None:
        relevance = tf.math.log1p(tf.constant(limit, teacher.dtype)) - tf.math.log(positions)
    else:
        relevance = _apply(loss.transform_fn, positions)
    share = relevance / tf.gather(tf.math.unsorted_segment_sum(relevance, segments, count),
                                  segments)
    student = _scaled(student, scale, loss.temperature)
    row_losses = -share * segment_log_softmax(student, segments, count)
    return _session_mean(row_losses, weights, segments, count)


def calibrated_distill_loss(loss: params_lib.ListwiseCalibrated, student: tf.Tensor,
                            teacher: tf.Tensor, segments: tf.Tensor, count: tf.Tensor,
                            weights: tf.Tensor, scale: Scale = None) -> tf.Tensor:
    """LISTWISE_CALIBRATED_DISTILL_LOSS (CLID) of ``[B]`` student and teacher outputs."""
    del scale  # CLID has no scale_logits parameter.

    def log_share(values, is_logits):
        logits = pointwise.to_logits(values, is_logits, use_logit=True)
        logits = logits / loss.temperature if loss.temperature != 1.0 else logits
        return segment_log_softmax(tf.math.log_sigmoid(logits), segments, count)

    target = tf.exp(log_share(teacher, loss.label_is_logits))
    row_losses = -target * log_share(student, loss.pred_is_logits)
    return _session_mean(row_losses, weights, segments, count)
