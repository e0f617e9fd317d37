"""Pairwise kd: the student should order each pair of rows as the teacher does.

A pair ``(i, j)`` is two rows of the same session (of the batch when the block has no
``session_name``) with teacher soft labels ``y_i > y_j`` (ties make no pair). With student
logits ``s`` divided by the temperature ``T`` and ``ds = s_i - s_j``, ``dy = y_i - y_j``:

- PAIRWISE_HINGE_LOSS: ``relu(m - ds)``, ``m = dy`` (``use_label_margin``) or ``margin``;
  ``use_exponent`` maps ``s`` and ``y`` through a sigmoid first and uses ``relu(exp(m - ds) - 1)``
  (the argument clipped to +-88). ``y`` is divided by ``T`` too when ``label_is_logits``.
- PAIRWISE_LOGISTIC_LOSS (RankNet): ``log(1 + exp(-(ds - m)))``, ``m = dy`` (then ``y`` is
  divided by ``T`` too), ``hinge_margin``, or 0.
- PAIRWISE_FOCAL_LOSS: the binary focal loss (Lin et al. 2017) of ``ds`` against label 1:
  ``f = (1 - p)^gamma * alpha`` with ``p = clip(sigmoid(ds), eps, 1 - eps)``, loss
  ``f * log(1 + exp(-ds))``, normalised by the pairs whose focal weight is non-zero; pairs with
  ``ds >= hinge_margin`` are dropped when it is set.

A pair weighs ``w_i``, the per-row weight of its higher-labelled row; the batch loss is
:func:`recdistill.kd.weighting.hard_example_mean` (``ohem_ratio`` keeps the hardest pairs).
These follow EasyRec's ``easy_rec/python/loss/pairwise_loss.py`` except that
``use_exponent`` maps the student's own logits (EasyRec maps the labels twice, so the student
gets no gradient). Pairs are enumerated per session with ragged ranges, so a batch of ``B``
rows in sessions of ``n_k`` rows costs ``sum(n_k^2)``, not ``B^2``.
"""

from typing import Optional, Tuple

import tensorflow as tf

from recdistill.kd import params as params_lib
from recdistill.kd import weighting

EXP_CLIP = 88.0
"""Largest exponent of the exponential hinge (exp(88) is near float32's maximum)."""

FOCAL_EPSILON = 1e-7


def candidate_pairs(size: tf.Tensor, segments: Optional[tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor]:
    """Every ordered pair ``(i, j)`` of rows in one segment (``i == j`` included).

    Args:
        size: the batch size ``B`` (scalar int32 tensor).
        segments: ``[B]`` int32 segment ids in ``[0, S)``, or None for one segment.

    Returns:
        ``(i, j)``, two int32 vectors of row indices.
    """
    rows = tf.range(size)
    if segments is None:
        return tf.repeat(rows, size), tf.tile(rows, [size])
    order = tf.argsort(segments, stable=True)
    counts = tf.math.bincount(segments, dtype=tf.int32)
    starts = tf.cumsum(counts, exclusive=True)
    sorted_segments = tf.gather(segments, order)
    row_start, row_count = tf.gather(starts, sorted_segments), tf.gather(counts, sorted_segments)
    partners = tf.ragged.range(row_start, row_start + row_count).flat_values
    return tf.gather(order, tf.repeat(rows, row_count)), tf.gather(order, partners)


def ordered_pairs(labels: tf.Tensor, segments: Optional[tf.Tensor]):
    """The pairs ``(i, j)`` of one segment with ``labels[i] > labels[j]``."""
    i, j = candidate_pairs(tf.size(labels), segments)
    keep = tf.gather(labels, i) > tf.gather(labels, j)
    return tf.boolean_mask(i, keep), tf.boolean_mask(j, keep)


def _difference(values: tf.Tensor, i: tf.Tensor, j: tf.Tensor) -> tf.Tensor:
    return tf.gather(values, i) - tf.gather(values, j)


def _softened(value: tf.Tensor, temperature: float) -> tf.Tensor:
    return value / temperature if temperature != 1.0 else value


def hinge_loss(loss: params_lib.PairwiseHinge, student: tf.Tensor, teacher: tf.Tensor,
               segments: Optional[tf.Tensor], weights: tf.Tensor) -> tf.Tensor:
    """PAIRWISE_HINGE_LOSS of ``[B]`` student logits against ``[B]`` teacher labels."""
    student = _softened(student, loss.temperature)
    if loss.label_is_logits:
        teacher = _softened(teacher, loss.temperature)
    if loss.use_exponent:
        teacher, student = tf.nn.sigmoid(teacher), tf.nn.sigmoid(student)
    i, j = ordered_pairs(teacher, segments)
    student_gap = _difference(student, i, j)
    margin = _difference(teacher, i, j) if loss.use_label_margin else loss.margin
    diff = margin - student_gap
    if loss.use_exponent:
        losses = tf.nn.relu(tf.exp(tf.clip_by_value(diff, -EXP_CLIP, EXP_CLIP)) - 1.0)
    else:
        losses = tf.nn.relu(diff)
    return weighting.hard_example_mean(losses, tf.gather(weights, i), loss.ohem_ratio)


def logistic_loss(loss: params_lib.PairwiseLogistic, student: tf.Tensor, teacher: tf.Tensor,
                  segments: Optional[tf.Tensor], weights: tf.Tensor) -> tf.Tensor:
    """PAIRWISE_LOGISTIC_LOSS (RankNet) of ``[B]`` student logits against teacher labels."""
    student = _softened(student, loss.temperature)
    if loss.use_label_margin:
        teacher = _softened(teacher, loss.temperature)
    i, j = ordered_pairs(teacher, segments)
    gap = _difference(student, i, j)
    if loss.use_label_margin:
        gap -= _difference(teacher, i, j)
    elif loss.hinge_margin is not None:
        gap -= loss.hinge_margin
    losses = tf.nn.relu(-gap) + tf.math.log1p(tf.exp(-tf.abs(gap)))
    return weighting.hard_example_mean(losses, tf.gather(weights, i), loss.ohem_ratio)


def focal_loss(loss: params_lib.PairwiseFocal, student: tf.Tensor, teacher: tf.Tensor,
               segments: Optional[tf.Tensor], weights: tf.Tensor) -> tf.Tensor:
    """PAIRWISE_FOCAL_LOSS of ``[B]`` student logits against teacher labels."""
    student = _softened(student, loss.temperature)
    i, j = ordered_pairs(teacher, segments)
    gap = _difference(student, i, j)
    pair_weights = tf.gather(weights, i)
    if loss.hinge_margin is not None:
        inside = gap < loss.hinge_margin
        gap, pair_weights = tf.boolean_mask(gap, inside), tf.boolean_mask(pair_weights, inside)
    prob = tf.clip_by_value(tf.nn.sigmoid(gap), FOCAL_EPSILON, 1.0 - FOCAL_EPSILON)
    focal = tf.pow(1.0 - prob, loss.gamma)
    if loss.alpha is not None:
        focal *= loss.alpha
    losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(gap), logits=gap)
    return weighting.hard_example_mean(losses, focal * pair_weights, loss.ohem_ratio)
