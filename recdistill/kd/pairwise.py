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
gets no gradient). Pairs are dense ``[G, L, L]`` grids of the sessions padded to the longest
(:func:`pair_grid`), so a batch of ``S`` sessions costs ``S * max(n_k)^2`` pair slots (at most
``B^2``), with no gathers over pairs.
"""

from typing import Optional

import tensorflow as tf

from recdistill.kd import params as params_lib
from recdistill.kd import weighting

EXP_CLIP = 88.0
"""Largest exponent of the exponential hinge (exp(88) is near float32's maximum)."""

FOCAL_EPSILON = 1e-7


def _grid(values: list, segments: Optional[tf.Tensor]) -> list:
    """Lays ``[B]`` row values out as ``[G, L]`` groups for pairwise broadcasting.

    One group per session, padded to the longest (``L``), when that holds at most ``B^2``
    slots; otherwise (a few long sessions among many short ones) one group of the whole batch
    whose same-session test comes from the key. So a batch of sessions of ``n_k`` rows costs
    ``min(S * max(n_k)^2, B^2)`` pair slots, never more than EasyRec's ``B x B``.

    Args:
        values: ``[B]`` tensors (one dtype each).
        segments: ``[B]`` int32 session ids in ``[0, S)``, or None for one session.

    Returns:
        the values as ``[G, L]`` tensors, then ``key`` (``[G, L]`` int32): slots pair only
        with slots of the same key; each padding slot has a key of its own (negative).
    """
    size = tf.size(values[0])
    if segments is None:
        segments = tf.zeros([size], tf.int32)
    counts = tf.math.bincount(segments, dtype=tf.int32)
    count, longest = tf.size(counts), tf.reduce_max(counts)
    fits = (tf.cast(count, tf.int64) * tf.cast(longest, tf.int64) ** 2
            <= tf.cast(size, tf.int64) ** 2)

    def by_session():
        order = tf.argsort(segments, stable=True)
        ordered = tf.gather(segments, order)
        position = tf.range(size) - tf.gather(tf.cumsum(counts, exclusive=True), ordered)
        index, shape = tf.stack([ordered, position], axis=1), tf.stack([count, longest])
        grids = [tf.scatter_nd(index, tf.gather(value, order), shape) for value in values]
        slots = tf.reshape(tf.range(count * longest), shape)
        real = tf.scatter_nd(index, tf.ones([size], tf.bool), shape)
        return grids + [tf.where(real, 0, -1 - slots)]

    def whole_batch():
        return [value[None, :] for value in values] + [segments[None, :]]

    return tf.cond(fits, by_session, whole_batch)


def _outer(grid: tf.Tensor, op) -> tf.Tensor:
    """``op(grid[g, i], grid[g, j])`` for every pair of slots: ``[G, L, L]``."""
    return op(grid[:, :, None], grid[:, None, :])


def pair_grid(student: tf.Tensor, teacher: tf.Tensor, weights: tf.Tensor,
              segments: Optional[tf.Tensor]):
    """The pairs of one session with ``teacher[i] > teacher[j]``, as ``[G, L, L]`` grids.

    Returns:
        ``(student, teacher, pair_weights, mask)``: the ``[G, L]`` student and teacher grids
        (:func:`gap` gives their pair differences), ``w_i`` where ``mask`` (the pair exists)
        and 0 elsewhere, and ``mask``.
    """
    student, teacher, weights, key = _grid([student, teacher, weights], segments)
    mask = _outer(key, tf.equal) & _outer(teacher, tf.greater)
    return student, teacher, tf.cast(mask, weights.dtype) * weights[:, :, None], mask


def gap(grid: tf.Tensor) -> tf.Tensor:
    """``grid[g, i] - grid[g, j]`` for every pair of slots: ``[G, L, L]``."""
    return _outer(grid, tf.subtract)


def _reduce(losses: tf.Tensor, pair_weights: tf.Tensor, mask: tf.Tensor,
            ohem_ratio: float) -> tf.Tensor:
    """The batch loss over the masked pairs (see :func:`weighting.hard_example_mean`)."""
    return weighting.hard_example_mean(tf.reshape(losses, [-1]), tf.reshape(pair_weights, [-1]),
                                       ohem_ratio, tf.reduce_sum(tf.cast(mask, tf.int32)))


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
    student, teacher, pair_weights, mask = pair_grid(student, teacher, weights, segments)
    margin = gap(teacher) if loss.use_label_margin else loss.margin
    diff = margin - gap(student)
    if loss.use_exponent:
        losses = tf.nn.relu(tf.exp(tf.clip_by_value(diff, -EXP_CLIP, EXP_CLIP)) - 1.0)
    else:
        losses = tf.nn.relu(diff)
    return _reduce(losses, pair_weights, mask, loss.ohem_ratio)


def logistic_loss(loss: params_lib.PairwiseLogistic, student: tf.Tensor, teacher: tf.Tensor,
                  segments: Optional[tf.Tensor], weights: tf.Tensor) -> tf.Tensor:
    """PAIRWISE_LOGISTIC_LOSS (RankNet) of ``[B]`` student logits against teacher labels."""
    student = _softened(student, loss.temperature)
    if loss.use_label_margin:
        teacher = _softened(teacher, loss.temperature)
    student, teacher, pair_weights, mask = pair_grid(student, teacher, weights, segments)
    margin = gap(teacher) if loss.use_label_margin else (loss.hinge_margin or 0.0)
    diff = gap(student) - margin
    losses = tf.nn.relu(-diff) + tf.math.log1p(tf.exp(-tf.abs(diff)))
    return _reduce(losses, pair_weights, mask, loss.ohem_ratio)


def focal_loss(loss: params_lib.PairwiseFocal, student: tf.Tensor, teacher: tf.Tensor,
               segments: Optional[tf.Tensor], weights: tf.Tensor) -> tf.Tensor:
    """PAIRWISE_FOCAL_LOSS of ``[B]`` student logits against teacher labels."""
    student = _softened(student, loss.temperature)
    student, _, pair_weights, mask = pair_grid(student, teacher, weights, segments)
    diff = gap(student)
    if loss.hinge_margin is not None:
        mask &= diff < loss.hinge_margin
        pair_weights *= tf.cast(mask, pair_weights.dtype)
    prob = tf.clip_by_value(tf.nn.sigmoid(diff), FOCAL_EPSILON, 1.0 - FOCAL_EPSILON)
    focal = tf.pow(1.0 - prob, loss.gamma)
    if loss.alpha is not None:
        focal *= loss.alpha
    losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(diff), logits=diff)
    return _reduce(losses, focal * pair_weights, mask, loss.ohem_ratio)
