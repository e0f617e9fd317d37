"""Per-row kd weights and the two reductions every kd loss ends with.

A kd block's row weight is ``loss_weight * task_space_weight * sample_weight`` (the last two
only when the block names their columns). Losses reduce like TF1's ``tf.losses`` default
(``SUM_BY_NONZERO_WEIGHTS``, which EasyRec's losses use): ``sum(w * l) / count(w != 0)``, so a
constant weight ``w`` gives ``w * mean(l)`` and zero-weight rows neither add loss nor count.
"""

from typing import Mapping, Optional

import tensorflow as tf

from recdistill.kd import params as params_lib


def feature(field: str, name: str, features: Optional[Mapping[str, tf.Tensor]]) -> tf.Tensor:
    """Looks up an input column for a kd block as a ``[B]`` tensor, listing those present."""
    features = features or {}
    if name not in features:
        raise ValueError(
            f"{field} {name!r} is not among the features given to kd (available: "
            f"{', '.join(sorted(features)) or 'none'}). The trainer must pass this input "
            "column in build_kd_losses(..., features=...) / KdTask(..., features=...).")
    return tf.reshape(tf.convert_to_tensor(features[name]), [-1])


def row_weights(index: int, block: params_lib.KdParams, batch_like: tf.Tensor,
                features: Optional[Mapping[str, tf.Tensor]]) -> tf.Tensor:
    """The ``[B]`` weights of one block's rows, in ``batch_like``'s dtype.

    Args:
        index: the block's position, for error messages.
        block: the block's parameters.
        batch_like: a ``[B]`` tensor giving the batch size and dtype.
        features: input columns by name (task-space indicator, sample weight).

    Raises:
        ValueError: a named column is missing, or the indicator value does not parse as the
            column's type.
    """
    weights = tf.fill(tf.shape(batch_like), tf.constant(block.loss_weight, batch_like.dtype))
    space = block.task_space
    if space is not None:
        column = feature(f"kd[{index}].task_space_indicator_name", space.indicator, features)
        inside = tf.cast(tf.equal(column, _typed(index, space.value, column)), batch_like.dtype)
        weights *= space.in_weight * inside + space.out_weight * (1.0 - inside)
    if block.sample_weight_name:
        column = feature(f"kd[{index}].sample_weight_name", block.sample_weight_name, features)
        weights *= tf.cast(column, batch_like.dtype)
    return weights


def _typed(index: int, value: str, column: tf.Tensor):
    """The indicator value as the column's type (EasyRec compares the config string)."""
    if column.dtype == tf.string:
        return value
    try:
        number = float(value) if column.dtype.is_floating else int(value)
    except ValueError:
        raise ValueError(
            f"kd[{index}].task_space_indicator_value {value!r} is not a {column.dtype.name} "
            "like its column. Give a value of the column's type.") from None
    return tf.constant(number, column.dtype)


def nonzero_mean(losses: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """``sum(w * l) / count(w != 0)`` (0 when every weight is 0 or there are no rows)."""
    total = tf.reduce_sum(losses * weights)
    present = tf.reduce_sum(tf.cast(tf.not_equal(weights, 0), losses.dtype))
    return tf.math.divide_no_nan(total, present)


def hard_example_mean(losses: tf.Tensor, weights: tf.Tensor, ohem_ratio: float,
                      count: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Online hard example mining: the mean of the positive ``w * l`` among the largest
    ``round(n * ohem_ratio)`` (round half to even, as ``tf.math.rint``); all when the ratio
    is 1. EasyRec returns NaN when no kept loss is positive; this returns 0.

    Args:
        losses: non-negative losses.
        weights: their non-negative weights, 0 for entries that are padding.
        ohem_ratio: the share kept, in (0, 1].
        count: ``n``, the number of real entries (default: all of them).
    """
    if ohem_ratio == 1.0:
        return nonzero_mean(losses, weights)
    weighted = losses * weights
    count = tf.size(weighted) if count is None else count
    k = tf.cast(tf.math.rint(tf.cast(count, tf.float32) * ohem_ratio), tf.int32)
    top = tf.math.top_k(weighted, k).values
    positive = tf.cast(top > 0, top.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(top * positive), tf.reduce_sum(positive))
