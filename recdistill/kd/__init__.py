"""Knowledge-distillation losses: the ``kd`` blocks of a config turned into TF scalars.

The package owns the kd loss arithmetic and its combination with the hard-label losses
(:class:`KdTask`). It imports nothing from recdistill except ``recdistill.protos`` and never
imports kfp; models, the trainer and the evaluator call it with plain dicts of tensors.
Modules: :mod:`~recdistill.kd.params` (the proto -> parameters step and kd's rules; no
TensorFlow, so config validation shares it), :mod:`~recdistill.kd.pointwise`,
:mod:`~recdistill.kd.pairwise`, :mod:`~recdistill.kd.listwise` (pure functions of tensors and
parameters), :mod:`~recdistill.kd.weighting` (per-row weights, reductions),
:mod:`~recdistill.kd.losses` (:func:`build_kd_losses`) and :mod:`~recdistill.kd.task`
(:class:`KdTask`). The names below are imported lazily, so ``recdistill.kd.params`` loads
without TensorFlow.

Semantics follow Alibaba EasyRec's ``build_kd_loss``
(``easy_rec/python/builders/loss_builder.py``) so that EasyRec configs keep their meaning.
Every block has per-row weights ``w_b = loss_weight * task_b * sample_b``: ``task_b`` is
``in_task_space_weight`` where the input column ``task_space_indicator_name`` equals
``task_space_indicator_value`` and ``out_task_space_weight`` elsewhere (1 when unset),
``sample_b`` the ``sample_weight_name`` column (1 when unset). Row losses ``l_b`` reduce as
``sum(w_b l_b) / count(w_b != 0)`` (TF1's ``SUM_BY_NONZERO_WEIGHTS``), which is
``loss_weight * mean(l)`` without per-row columns.

Pointwise types, for student prediction ``s`` (``pred_name``), teacher soft label ``t``
(``soft_label_name``), temperature ``T`` and ``eps = 1e-7``; ``C`` is the number of classes,
1 when the prediction has rank 1 or a last dimension of 1 (binary), else its last dimension:

1. Probabilities become logits where ``pred_is_logits`` / ``label_is_logits`` is false:
   ``logit(p) = log(p) - log(1 - p)`` with ``p`` clipped to ``[eps, 1 - eps]`` for
   BINARY_CROSS_ENTROPY_LOSS (every column) and for one-class CROSS_ENTROPY_LOSS and
   KL_DIVERGENCE_LOSS; ``log(p + eps)`` for several classes (softmax does not see the shift).
2. Both sides are divided by ``T`` when ``T > 0`` (``T = 0`` means no division). L2_LOSS
   skips steps 1 and 2: it compares raw values.
3. The row loss (the mean over classes unless said otherwise), with ``act`` = sigmoid for one
   class and softmax for several:

   - CROSS_ENTROPY_LOSS: ``y = act(t)``, ``p = act(s)``,
     ``-y log(p + eps) - (1 - y) log(1 - p + eps)`` (EasyRec's ``tf.losses.log_loss``;
     for several classes the element-wise log loss, not ``-sum(y log p)`` per row).
   - BINARY_CROSS_ENTROPY_LOSS: ``y = sigmoid(t)``, ``sigmoid_xent(labels=y, logits=s)``
     element-wise, whatever ``C`` is.
   - KL_DIVERGENCE_LOSS: ``y = act(t)``, ``p = act(s)``; one class becomes the two-class
     distributions ``[1 - y, y]`` and ``[1 - p, p]``; both are clipped to ``[eps, 1]`` (as
     Keras' KLD does) and ``sum_classes(y log(y / p))``.
   - L2_LOSS: ``(s - t)^2``.

Pairwise types (PAIRWISE_HINGE_LOSS, PAIRWISE_LOGISTIC_LOSS, PAIRWISE_FOCAL_LOSS) compare
the student's logit gaps on the pairs the teacher orders, within each session of the
``loss_param``'s ``session_name`` column (the whole batch without one): formulas in
:mod:`recdistill.kd.pairwise`. Listwise types (LISTWISE_RANK_LOSS, LISTWISE_DISTILL_LOSS
and recdistill's LISTWISE_CALIBRATED_DISTILL_LOSS) compare distributions over each session:
formulas in :mod:`recdistill.kd.listwise`. Those read their temperature from the
``loss_param`` block; the block's own ``temperature``, ``pred_is_logits`` and
``label_is_logits`` apply to pointwise types (and the last two to the calibrated one), as in
EasyRec.

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
- (d) PAIRWISE_HINGE_LOSS with ``use_exponent`` maps the student's logits through the sigmoid;
  EasyRec replaces them with ``sigmoid(sigmoid(labels))``, so the student gets no gradient.
- (e) Per-row weights (task space, sample weight) reduce every type as above. EasyRec's BCE
  and KL return a ``[B]`` vector instead of a scalar, and its listwise losses log an error and
  drop the weights (``loss_weight`` included).
- (f) Hard-example mining that keeps no positive pair gives 0, not EasyRec's NaN.
- (g) A pairwise block without ``session_name`` ranks the whole batch (EasyRec fails looking
  up an empty column name); a listwise block needs one (checked when the config loads).
- (h) ``transform_fn`` takes a dotted path (``tf.math.log1p``) but not lambda text, which
  EasyRec evaluates.

Extensions beyond EasyRec: ``scale_by_temperature_squared`` multiplies a temperature-softened
loss (every type but L2 with ``T > 0``) by ``T^2``, as Hinton et al. (2015), "Distilling the
Knowledge in a Neural Network", recommend so that the gradient scale does not shrink as ``T``
grows; ``sample_weight_name``; LISTWISE_CALIBRATED_DISTILL_LOSS. ``teacher_pred_name`` is read
by the soft-label job, not here.

Example::

    block = pipeline_pb2.KD(pred_name="logits", soft_label_name="kd_soft",
                            loss_type=pipeline_pb2.PAIRWISE_HINGE_LOSS)
    block.pairwise_hinge_loss.session_name = "user_id"
    losses = build_kd_losses([block], {"logits": student_logits}, {"kd_soft": teacher_logits},
                             features={"user_id": user_ids})
    losses["kd_loss_logits_kd_soft"]  # scalar tf.Tensor
"""

import importlib

from recdistill.kd.params import KD_LOSS_TYPES, KdParams, block_params, kd_loss_name

_LAZY = {
    "build_kd_losses": "recdistill.kd.losses",
    "KdTask": "recdistill.kd.task",
    "HardTarget": "recdistill.kd.task",
    "LOSS_KEY": "recdistill.kd.task",
    "REGULARIZATION_KEY": "recdistill.kd.task",
    "HARD_LOSS_PREFIX": "recdistill.kd.task",
    "EPSILON": "recdistill.kd.pointwise",
}

__all__ = ["KD_LOSS_TYPES", "KdParams", "block_params", "kd_loss_name", *_LAZY]


def __getattr__(name):
    """Imports the TensorFlow half of the package on first use (PEP 562)."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
