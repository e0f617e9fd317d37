"""The thin proto -> parameters step: a ``KD`` block read once into plain frozen dataclasses.

The loss arithmetic (:mod:`recdistill.kd.pointwise`, :mod:`~recdistill.kd.pairwise`,
:mod:`~recdistill.kd.listwise`) takes these parameters and tensors and never reads a config
message. Which loss types kd supports, and how each groups rows, is declared once in
``pipeline.proto`` (the ``kd`` option on ``LossType`` values); :func:`kd_grouping` and
:data:`KD_LOSS_TYPES` read it. This module imports nothing from recdistill but the protos and
no TensorFlow, so config validation may share it.
"""

import dataclasses
import pydoc
from typing import Callable, NamedTuple, Optional, Union

from recdistill.protos import pipeline_pb2

POINTWISE = pipeline_pb2.KD_POINTWISE
PAIRWISE = pipeline_pb2.KD_PAIRWISE
LISTWISE = pipeline_pb2.KD_LISTWISE


def kd_grouping(loss_type: int) -> int:
    """How kd uses ``loss_type``: ``KD_POINTWISE``, ``KD_PAIRWISE``, ``KD_LISTWISE`` or 0."""
    value = pipeline_pb2.LossType.DESCRIPTOR.values_by_number[loss_type]
    return value.GetOptions().Extensions[pipeline_pb2.kd]


KD_LOSS_TYPES = tuple(
    value.name for value in pipeline_pb2.LossType.DESCRIPTOR.values
    if value.GetOptions().Extensions[pipeline_pb2.kd]
)
"""Names of the loss types a kd block may use, in enum order (declared in pipeline.proto)."""


def param_field(loss_type: int) -> Optional[str]:
    """The ``KD.loss_param`` field a pairwise/listwise type reads; None for pointwise types."""
    if kd_grouping(loss_type) in (PAIRWISE, LISTWISE):
        return pipeline_pb2.LossType.Name(loss_type).lower()
    return None


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


# ---------------------------------------------------------------- per-type parameters
@dataclasses.dataclass(frozen=True)
class Pointwise:
    """CROSS_ENTROPY_LOSS, BINARY_CROSS_ENTROPY_LOSS, KL_DIVERGENCE_LOSS or L2_LOSS."""

    loss_type: int
    temperature: float = 1.0
    pred_is_logits: bool = True
    label_is_logits: bool = True


@dataclasses.dataclass(frozen=True)
class PairwiseHinge:
    """PAIRWISE_HINGE_LOSS (EasyRec's PairwiseHingeLoss defaults)."""

    temperature: float = 1.0
    margin: float = 1.0
    ohem_ratio: float = 1.0
    label_is_logits: bool = True
    use_label_margin: bool = True
    use_exponent: bool = False


@dataclasses.dataclass(frozen=True)
class PairwiseLogistic:
    """PAIRWISE_LOGISTIC_LOSS; ``hinge_margin`` None when the config leaves it unset."""

    temperature: float = 1.0
    hinge_margin: Optional[float] = None
    ohem_ratio: float = 1.0
    use_label_margin: bool = False


@dataclasses.dataclass(frozen=True)
class PairwiseFocal:
    """PAIRWISE_FOCAL_LOSS; ``alpha`` and ``hinge_margin`` None when unset."""

    gamma: float = 2.0
    alpha: Optional[float] = None
    hinge_margin: Optional[float] = None
    ohem_ratio: float = 1.0
    temperature: float = 1.0


@dataclasses.dataclass(frozen=True)
class ListwiseRank:
    """LISTWISE_RANK_LOSS; ``transform_fn`` is the resolved callable (None: identity)."""

    temperature: float = 1.0
    transform_fn: Optional[Callable] = None
    label_is_logits: bool = False
    scale_logits: bool = False


@dataclasses.dataclass(frozen=True)
class ListwiseDistill:
    """LISTWISE_DISTILL_LOSS: the soft label is the teacher's rank position (1 = top)."""

    temperature: float = 1.0
    transform_fn: Optional[Callable] = None
    label_clip_max_value: float = 512.0
    scale_logits: bool = False


@dataclasses.dataclass(frozen=True)
class ListwiseCalibrated:
    """LISTWISE_CALIBRATED_DISTILL_LOSS (recdistill's CLID loss)."""

    temperature: float = 1.0
    pred_is_logits: bool = True
    label_is_logits: bool = True


LossParams = Union[Pointwise, PairwiseHinge, PairwiseLogistic, PairwiseFocal, ListwiseRank,
                   ListwiseDistill, ListwiseCalibrated]


@dataclasses.dataclass(frozen=True)
class TaskSpace:
    """Rows whose ``indicator`` column equals ``value`` weigh ``in_weight``, others
    ``out_weight``."""

    indicator: str
    value: str
    in_weight: float = 1.0
    out_weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class KdParams:
    """Everything one kd block needs, read from its ``KD`` message once.

    Attributes:
        name: the loss name (:func:`kd_loss_name`).
        pred_name: the student prediction.
        soft_label_name: the teacher's soft-label column.
        loss: the per-type parameters.
        loss_weight: the block's scalar weight.
        session_name: the input column grouping rows into sessions ('' = the whole batch).
        task_space: per-row weights from a task-space indicator, or None.
        sample_weight_name: an input column of per-row weights ('' = none).
        scale_by_temperature_squared: multiply the loss by ``T^2`` (T = :func:`temperature`).
    """

    name: str
    pred_name: str
    soft_label_name: str
    loss: LossParams
    loss_weight: float = 1.0
    session_name: str = ""
    task_space: Optional[TaskSpace] = None
    sample_weight_name: str = ""
    scale_by_temperature_squared: bool = False

    @property
    def grouping(self) -> int:
        """``KD_POINTWISE``, ``KD_PAIRWISE`` or ``KD_LISTWISE``."""
        if isinstance(self.loss, Pointwise):
            return POINTWISE
        if isinstance(self.loss, (PairwiseHinge, PairwiseLogistic, PairwiseFocal)):
            return PAIRWISE
        return LISTWISE

    @property
    def temperature(self) -> float:
        """The temperature that softens this loss (0 or 1: none)."""
        return self.loss.temperature

    @property
    def feature_names(self) -> list:
        """The input columns this block reads besides predictions and labels."""
        names = [self.session_name, self.sample_weight_name,
                 self.task_space.indicator if self.task_space else ""]
        return [name for name in names if name]


def resolve_transform_fn(field: str, path: str) -> Callable:
    """Resolves a ``transform_fn`` dotted path (``tf.`` means ``tensorflow.``) to a callable.

    Raises:
        ValueError: the path names nothing callable, or is a lambda (EasyRec evaluates lambda
            text; recdistill does not run code from a config).
    """
    path = path.strip()
    if "lambda" in path:
        raise ValueError(
            f"{field} {path!r} is a lambda; recdistill does not evaluate code from a config. "
            "Put the function in an importable module and give its dotted path, e.g. "
            "'tf.math.log1p'.")
    parts = path.split(".")
    if parts[0] == "tf":
        parts[0] = "tensorflow"
    try:
        target = pydoc.locate(".".join(parts))
    except pydoc.ErrorDuringImport as error:
        raise ValueError(f"{field} {path!r} could not be imported: {error}. "
                         "Give the dotted path of an importable function.") from error
    if not callable(target):
        raise ValueError(f"{field} {path!r} does not name a callable. Give the dotted path of a "
                         "function of one tensor, e.g. 'tf.math.log1p'.")
    return target


def block_params(index: int, block: pipeline_pb2.KD) -> KdParams:
    """Reads one ``KD`` message into :class:`KdParams` (the only place kd reads the proto).

    Args:
        index: the block's position, for error messages (``kd[<index>]``).
        block: a ``KD`` message.

    Raises:
        ValueError: the block breaks a rule of :func:`block_problems` (one line per problem,
            naming the field, the value and the fix).
    """
    problems = block_problems(block)
    if problems:
        raise ValueError("\n".join(f"kd[{index}].{p.field} {p.problem}, got {p.got}. {p.fix}."
                                   for p in problems))
    grouping, wanted = kd_grouping(block.loss_type), param_field(block.loss_type)
    session_name, loss = "", None
    if grouping == POINTWISE:
        loss = Pointwise(block.loss_type, block.temperature, block.pred_is_logits,
                         block.label_is_logits)
    else:
        param = getattr(block, wanted)  # the default message when the block leaves it out
        session_name = param.session_name
        loss = _ranking_params(f"kd[{index}].{wanted}", block, param)
    task_space = None
    if block.HasField("task_space_indicator_name") and block.HasField("task_space_indicator_value"):
        task_space = TaskSpace(block.task_space_indicator_name, block.task_space_indicator_value,
                               block.in_task_space_weight, block.out_task_space_weight)
    return KdParams(
        name=kd_loss_name(block), pred_name=block.pred_name,
        soft_label_name=block.soft_label_name, loss=loss, loss_weight=block.loss_weight,
        session_name=session_name, task_space=task_space,
        sample_weight_name=block.sample_weight_name,
        scale_by_temperature_squared=block.scale_by_temperature_squared)


def _optional(param, name: str) -> Optional[float]:
    return getattr(param, name) if param.HasField(name) else None


def _transform(field: str, param) -> Optional[Callable]:
    if not param.transform_fn.strip():
        return None
    return resolve_transform_fn(f"{field}.transform_fn", param.transform_fn)


def _ranking_params(field: str, block: pipeline_pb2.KD, param) -> LossParams:
    """The pairwise/listwise parameters of one ``loss_param`` block (defaults when unset)."""
    loss_type = block.loss_type
    if loss_type == pipeline_pb2.PAIRWISE_HINGE_LOSS:
        return PairwiseHinge(param.temperature, param.margin, param.ohem_ratio,
                             param.label_is_logits, param.use_label_margin, param.use_exponent)
    if loss_type == pipeline_pb2.PAIRWISE_LOGISTIC_LOSS:
        return PairwiseLogistic(param.temperature, _optional(param, "hinge_margin"),
                                param.ohem_ratio, param.use_label_margin)
    if loss_type == pipeline_pb2.PAIRWISE_FOCAL_LOSS:
        return PairwiseFocal(param.gamma, _optional(param, "alpha"),
                             _optional(param, "hinge_margin"), param.ohem_ratio,
                             param.temperature)
    if loss_type == pipeline_pb2.LISTWISE_RANK_LOSS:
        return ListwiseRank(param.temperature, _transform(field, param), param.label_is_logits,
                            param.scale_logits)
    if loss_type == pipeline_pb2.LISTWISE_DISTILL_LOSS:
        return ListwiseDistill(param.temperature, _transform(field, param),
                               param.label_clip_max_value, param.scale_logits)
    if loss_type == pipeline_pb2.LISTWISE_CALIBRATED_DISTILL_LOSS:
        return ListwiseCalibrated(param.temperature, block.pred_is_logits, block.label_is_logits)
    raise ValueError(f"{field}: loss type {pipeline_pb2.LossType.Name(loss_type)} is marked for "
                     "kd in pipeline.proto but recdistill.kd.params has no parameters for it.")


# ---------------------------------------------------------------- rules
class Problem(NamedTuple):
    """One kd setting the losses cannot honour: the field (relative to the block), what is
    wrong, the value as a config spells it, and the fix."""

    field: str
    problem: str
    got: str
    fix: str


def _spell(value) -> str:
    if value is None or value == "":
        return "nothing"
    if isinstance(value, float):
        text = f"{value:.7g}"
        return text if any(c in text for c in ".eina") else text + ".0"
    return repr(value) if isinstance(value, str) else str(value)


def block_problems(block: pipeline_pb2.KD, input_names: Optional[list] = None) -> list:
    """Every rule a kd block breaks, as :class:`Problem` s (empty when the block is usable).

    The one home of kd's rules: config validation reports them at load time with file and
    line, :func:`recdistill.kd.build_kd_losses` raises on them for blocks built in code.
    Prediction and label names are checked where they are known.

    Args:
        block: a ``KD`` message.
        input_names: the config's input columns; when given, every column the block reads
            (session, task-space indicator, sample weight) must be one of them.
    """
    problems = []
    grouping = kd_grouping(block.loss_type)
    type_name = pipeline_pb2.LossType.Name(block.loss_type)
    if not grouping:
        return [Problem("loss_type", f"must be one of {', '.join(KD_LOSS_TYPES)}", type_name,
                        "Use CROSS_ENTROPY_LOSS for EasyRec's default")]
    if grouping == POINTWISE and block.temperature < 0:
        problems.append(Problem("temperature", "must be >= 0", _spell(block.temperature),
                                "Use 1.0 (or 0) for no softening"))
    if block.loss_weight < 0:
        problems.append(Problem("loss_weight", "must be >= 0", _spell(block.loss_weight),
                                "Use 1.0 for an equal weight, 0 to switch the block off"))
    if block.in_task_space_weight < 0 or block.out_task_space_weight < 0:
        problems.append(Problem("in_task_space_weight", "and out_task_space_weight must be >= 0",
                                f"{_spell(block.in_task_space_weight)} and "
                                f"{_spell(block.out_task_space_weight)}",
                                "Use 0 to drop rows from the loss"))
    if block.HasField("task_space_indicator_name") != block.HasField("task_space_indicator_value"):
        problems.append(Problem("task_space_indicator_value", "and task_space_indicator_name "
                                "must be set together", _spell(block.task_space_indicator_value),
                                "Set both (or neither; EasyRec ignores one alone)"))
    wanted, given = param_field(block.loss_type), block.WhichOneof("loss_param")
    if given is not None and given != wanted:
        fix = f"Use {wanted} {{ ... }}" if wanted else "Remove it: this loss type has none"
        problems.append(Problem(given, f"does not belong to loss_type {type_name}", "a block",
                                fix))
    if grouping == POINTWISE:
        if block.scale_by_temperature_squared and block.loss_type == pipeline_pb2.L2_LOSS:
            problems.append(Problem("scale_by_temperature_squared", "is set but L2_LOSS ignores "
                                    "the temperature", "true",
                                    "Remove it or change loss_weight instead"))
    else:
        problems += _ranking_problems(block, grouping, type_name, wanted)
    columns = [("sample_weight_name", block.sample_weight_name),
               ("task_space_indicator_name", block.task_space_indicator_name)]
    if wanted:
        columns.append((f"{wanted}.session_name", getattr(block, wanted).session_name))
    for field, column in columns:
        if input_names is not None and column and column not in input_names:
            problems.append(Problem(field, "must name a data_config input field", _spell(column),
                                    f"Valid: {', '.join(input_names)}; add it to input_fields"))
    return problems


def _ranking_problems(block: pipeline_pb2.KD, grouping: int, type_name: str,
                      wanted: str) -> list:
    """The rules of a pairwise/listwise block's ``loss_param``."""
    problems = []
    param = getattr(block, wanted)
    if param.temperature <= 0:
        problems.append(Problem(f"{wanted}.temperature", "must be > 0 (the logits are divided "
                                "by it)", _spell(param.temperature), "Use 1.0 for no softening"))
    ohem = getattr(param, "ohem_ratio", 1.0)
    if not 0 < ohem <= 1:
        problems.append(Problem(f"{wanted}.ohem_ratio", "must be in (0, 1]", _spell(ohem),
                                "Use 1.0 to keep every pair"))
    if getattr(param, "gamma", 0.0) < 0:
        problems.append(Problem(f"{wanted}.gamma", "must be >= 0", _spell(param.gamma),
                                "Use 2.0, the focal loss default"))
    if getattr(param, "label_clip_max_value", 1.0) < 1:
        problems.append(Problem(f"{wanted}.label_clip_max_value", "must be >= 1 (labels are "
                                "rank positions clipped to [1, max])",
                                _spell(param.label_clip_max_value), "Use 512.0, the default"))
    if grouping == LISTWISE and not param.session_name:
        problems.append(Problem(f"{wanted}.session_name", f"is required for {type_name}",
                                "nothing", "Name the input column that groups rows into lists, "
                                "e.g. session_name: 'user_id'"))
    if getattr(param, "transform_fn", "").strip():
        try:
            resolve_transform_fn(f"{wanted}.transform_fn", param.transform_fn)
        except ValueError as error:
            problems.append(Problem(f"{wanted}.transform_fn", "does not resolve",
                                    _spell(param.transform_fn), str(error)))
    return problems
