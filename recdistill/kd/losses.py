"""build_kd_losses: each kd block's parameters, tensors and weights turned into one scalar.

Looks up each block's prediction, soft label and input columns, aligns their shapes, builds
the per-row weights and calls the block's pure loss function (pointwise, pairwise or
listwise); the arithmetic lives in those modules.
"""

from typing import Iterable, Mapping, Optional, Union

import tensorflow as tf

from recdistill.kd import listwise, pairwise, pointwise, weighting
from recdistill.kd import params as params_lib
from recdistill.protos import pipeline_pb2

PAIRWISE_LOSSES = {
    params_lib.PairwiseHinge: pairwise.hinge_loss,
    params_lib.PairwiseLogistic: pairwise.logistic_loss,
    params_lib.PairwiseFocal: pairwise.focal_loss,
}
LISTWISE_LOSSES = {
    params_lib.ListwiseRank: listwise.rank_loss,
    params_lib.ListwiseDistill: listwise.distill_loss,
    params_lib.ListwiseCalibrated: listwise.calibrated_distill_loss,
}

Block = Union[pipeline_pb2.KD, params_lib.KdParams]


def as_params(kd_blocks: Iterable[Block]) -> list:
    """Reads every block into :class:`~recdistill.kd.params.KdParams` (kept if already read).

    Raises:
        ValueError: a block breaks a kd rule, or two blocks share a loss name.
    """
    result = []
    for index, block in enumerate(kd_blocks):
        if not isinstance(block, params_lib.KdParams):
            block = params_lib.block_params(index, block)
        if block.name in [earlier.name for earlier in result]:
            raise ValueError(f"kd[{index}] loss name {block.name!r} is already used by an "
                             "earlier kd block. Set a distinct loss_name on one of them.")
        result.append(block)
    return result


def build_kd_losses(
    kd_blocks: Iterable[Block],
    predictions: Mapping[str, tf.Tensor],
    labels: Mapping[str, tf.Tensor],
    features: Optional[Mapping[str, tf.Tensor]] = None,
    logit_scales: Optional[Mapping[str, tuple]] = None,
) -> dict:
    """Builds one weighted scalar loss per kd block (formulas: the :mod:`recdistill.kd` docstring).

    Args:
        kd_blocks: ``KD`` messages (e.g. ``config.model_config.kd``) or their
            :class:`~recdistill.kd.params.KdParams`.
        predictions: student outputs by name, shape ``[B]``, ``[B, 1]`` or ``[B, C]``.
        labels: label columns by name, including each block's soft label; any float dtype,
            ``[B]`` and ``[B, 1]`` are accepted and cast/reshaped to the prediction.
        features: input columns by name, each ``[B]`` or ``[B, 1]``: the session,
            task-space indicator and sample-weight columns the blocks name.
        logit_scales: ``{loss name: (w, b)}`` variables of blocks with ``scale_logits``
            (:class:`~recdistill.kd.task.KdTask` owns them).

    Returns:
        ``{loss_name: scalar tf.Tensor}`` in block order, each already weighted (and
        multiplied by ``T^2`` where ``scale_by_temperature_squared`` asks).

    Raises:
        ValueError: a block names an unknown prediction, soft label or column (the message
            lists the available names), breaks a kd rule, a soft label's shape does not fit
            its prediction, a pairwise/listwise block's prediction is not one-class, or two
            blocks share a name.
    """
    losses = {}
    for index, block in enumerate(as_params(kd_blocks)):
        student = prediction(f"kd[{index}].pred_name", block.pred_name, predictions)
        teacher = label(f"kd[{index}].soft_label_name", block.soft_label_name, labels)
        student, teacher, num_class = _aligned(index, block, student, teacher)
        weights = weighting.row_weights(index, block, _rows(student), features)
        if block.grouping == params_lib.POINTWISE:
            loss = weighting.nonzero_mean(
                pointwise.row_losses(block.loss, student, teacher, num_class), weights)
        else:
            loss = _ranking_loss(index, block, student, teacher, num_class, weights, features,
                                 (logit_scales or {}).get(block.name))
        temperature = block.temperature
        if block.scale_by_temperature_squared and temperature > 0:
            loss = loss * (temperature * temperature)
        losses[block.name] = loss
    return losses


def _rows(student: tf.Tensor) -> tf.Tensor:
    """A ``[B]`` tensor of the student's dtype."""
    return student if student.shape.rank == 1 else student[:, 0]


def _ranking_loss(index, block, student, teacher, num_class, weights, features, scale):
    """A pairwise or listwise block's loss on one-class ``[B]`` tensors."""
    if num_class != 1:
        raise ValueError(
            f"kd[{index}].pred_name {block.pred_name!r} has {num_class} classes; "
            f"{type(block.loss).__name__} ranks one score per row. Point it at a [B] or [B, 1] "
            "output such as 'logits'.")
    segments = count = None
    if block.session_name:
        column = weighting.feature(f"kd[{index}] session_name", block.session_name, features)
        _, segments = tf.unique(column, out_idx=tf.int32)
        count = tf.reduce_max(segments) + 1
    if block.grouping == params_lib.PAIRWISE:
        return PAIRWISE_LOSSES[type(block.loss)](block.loss, student, teacher, segments, weights)
    if getattr(block.loss, "scale_logits", False) and scale is None:
        raise ValueError(
            f"kd[{index}] sets scale_logits, whose scale variables KdTask owns; compute this "
            "loss through recdistill.kd.KdTask or pass logit_scales={name: (w, b)}.")
    return LISTWISE_LOSSES[type(block.loss)](block.loss, student, teacher, segments, count,
                                             weights, scale)


def check_prediction_name(field: str, name: str, names: Iterable[str]) -> None:
    """Raises a ValueError listing every prediction name when ``name`` is not among them."""
    names = list(names)
    if name not in names:
        raise ValueError(
            f"{field} {name!r} is not a prediction of the model; available predictions: "
            f"{', '.join(sorted(names))}. Set {field.rsplit('.', 1)[-1]} to one of them."
        )


def prediction(field: str, name: str, predictions: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Looks up a prediction as float32 (float64 kept), listing every name when it is absent.

    Half-precision outputs are widened because ``eps = 1e-7`` underflows in float16.
    """
    check_prediction_name(field, name, predictions)
    value = tf.convert_to_tensor(predictions[name])
    return value if value.dtype == tf.float64 else tf.cast(value, tf.float32)



def label(field: str, name: str, labels: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Looks up a label column, listing every available label when it is absent."""
    if name not in labels:
        raise ValueError(
            f"{field} {name!r} is not among the labels; available labels: "
            f"{', '.join(sorted(labels))}. Add it to data_config.label_fields or fix the name."
        )
    return tf.convert_to_tensor(labels[name])



def num_classes(field: str, value: tf.Tensor) -> int:
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


def _aligned(index: int, block: params_lib.KdParams, student: tf.Tensor, teacher: tf.Tensor):
    """Casts the soft label to the prediction's dtype and gives both the same shape.

    Returns:
        ``(student, teacher, num_class)``; binary tensors are flattened to ``[B]``.
    """
    num_class = num_classes(f"kd[{index}].pred_name {block.pred_name!r}", student)
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
