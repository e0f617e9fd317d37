"""Blessing: whether a candidate model's metrics are good enough to push.

A model is blessed only against explicit thresholds. Like TFX's Evaluator, no thresholds means
*not blessed*, and the result says so rather than blessing silently. Thresholds compared with
the champion (the last pushed model) or a baseline (e.g. the student trained without kd) are
reported as ``skipped`` when that model was not evaluated, as on a first run; a model whose
checks all pass or are skipped is blessed, again as TFX does when no baseline exists.

Thresholds file (YAML, so plain JSON works too; every key optional, unknown keys rejected)::

    # Absolute bounds on the candidate.
    min_auc: 0.70
    min_gauc: 0.60
    max_logloss: 0.55
    # Against the champion: candidate may lose at most this much (champion - candidate).
    max_auc_drop: 0.005
    max_gauc_drop: 0.01
    # Against the baseline: candidate must gain at least this much (candidate - baseline).
    min_auc_gain: 0.0
    min_gauc_gain: 0.0
    # Consistency with the teacher's ranking, per session (needs a teacher and sessions):
    # share of the teacher's top-k in the candidate's top-m, and NDCG@k with teacher gains.
    min_teacher_topk_recall: 0.6
    min_teacher_ndcg: 0.9

This module imports nothing from recdistill but the file layer (lazily, to read ``gs://``).
"""

import dataclasses
import logging
import math
import re
from typing import Mapping, NamedTuple

logger = logging.getLogger(__name__)

CANDIDATE = "student"
CHAMPION = "champion"
BASELINE = "baseline"

PASSED = "passed"
FAILED = "failed"
SKIPPED = "skipped"


class _Rule(NamedTuple):
    metric: str
    reference: str | None  # None: an absolute bound; else the model compared with
    bound: str  # "min": observed >= threshold; "max": observed <= threshold


#: Every threshold key. Observed values: absolute -> the candidate's metric; champion ->
#: champion minus candidate (a drop); baseline -> candidate minus baseline (a gain).
RULES = {
    "min_auc": _Rule("auc", None, "min"),
    "min_gauc": _Rule("gauc", None, "min"),
    "max_logloss": _Rule("logloss", None, "max"),
    "max_auc_drop": _Rule("auc", CHAMPION, "max"),
    "max_gauc_drop": _Rule("gauc", CHAMPION, "max"),
    "min_auc_gain": _Rule("auc", BASELINE, "min"),
    "min_gauc_gain": _Rule("gauc", BASELINE, "min"),
    "min_teacher_topk_recall": _Rule("teacher_topk_recall", None, "min"),
    "min_teacher_ndcg": _Rule("teacher_ndcg", None, "min"),
}

#: How to get a metric that was not computed, for the failed check's message.
_HOW_TO_COMPUTE = {
    "gauc": "set eval_config.metrics_set { gauc { uid_field: ... } }",
    "teacher_topk_recall": "evaluate with a teacher and a session field (the gauc uid_field or "
                           "a kd session_name)",
}
_HOW_TO_COMPUTE["teacher_ndcg"] = _HOW_TO_COMPUTE["teacher_topk_recall"]

#: Inline thresholds rather than a file name: JSON, or YAML starting with ``key: ``.
_INLINE = re.compile(r"^\s*(\{|[A-Za-z_]+\s*:\s)")
#: ``key:value`` without the space YAML needs (a URI has ``://`` and is not taken for one).
_NO_SPACE = re.compile(r"^\s*([A-Za-z_]+)\s*:(?!//)(\S.*)$", re.DOTALL)

NO_THRESHOLDS = ("no thresholds configured, so the model is not blessed (recdistill never "
                 "blesses silently). Pass a thresholds file, e.g. 'min_auc: 0.7'.")


@dataclasses.dataclass
class Check:
    """One threshold checked against the metrics.

    Attributes:
      name: the threshold key, e.g. ``max_auc_drop``.
      threshold: the configured value.
      observed: the compared quantity (metric, drop or gain); None when skipped or missing.
      status: ``passed``, ``failed`` or ``skipped``.
      message: one readable line saying what was compared.
    """

    name: str
    threshold: float
    observed: float | None
    status: str
    message: str


@dataclasses.dataclass
class BlessingResult:
    """The verdict: ``blessed`` plus the reasons and every check behind it."""

    blessed: bool
    reasons: list
    checks: list

    def to_dict(self) -> dict:
        return {"blessed": self.blessed, "reasons": list(self.reasons),
                "checks": [dataclasses.asdict(c) for c in self.checks]}


def parse_thresholds(values: Mapping | None, source: str = "thresholds") -> dict:
    """Validates a thresholds mapping; returns ``{key: float}`` (empty for None).

    Raises:
      ValueError: not a mapping, an unknown key (the message lists the valid ones) or a value
        that is not a finite number.
    """
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ValueError(f"{source}: thresholds must be a mapping of key: number, got "
                         f"{type(values).__name__}. Example: 'min_auc: 0.7'.")
    problems, parsed = [], {}
    for key, value in values.items():
        if key not in RULES:
            problems.append(f"{source}: unknown threshold {key!r}; valid: {', '.join(RULES)}.")
            continue
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if number is None or not math.isfinite(number):
            problems.append(f"{source}: {key} must be a finite number, got {value!r}.")
            continue
        parsed[key] = float(number)
    if problems:
        raise ValueError("\n".join(problems))
    return parsed


def load_thresholds(source) -> dict:
    """Reads thresholds from a YAML/JSON file (local or gs://), inline JSON, a mapping or None.

    Args:
      source: a file URI; inline JSON or YAML text (starts with ``{`` or with ``key:``, e.g. a
        pipeline parameter ``'min_auc: 0.7'``); a mapping; or None.

    Returns:
      ``{key: float}``; empty when ``source`` is None or the file is empty.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: the text is not YAML/JSON, or fails :func:`parse_thresholds`.
    """
    if source is None or isinstance(source, Mapping):
        return parse_thresholds(source)
    import yaml

    if _INLINE.match(source):
        name, text = "inline thresholds", source
    else:
        from recdistill.data import filesystems

        spaceless = _NO_SPACE.match(source)
        if spaceless and not filesystems.exists(source):
            key, value = spaceless.group(1), spaceless.group(2).strip()
            raise ValueError(f"thresholds {source!r}: inline YAML needs a space after ':'. "
                             f"Write '{key}: {value}' or JSON '{{\"{key}\": {value}}}'.")
        if not filesystems.exists(source):
            raise FileNotFoundError(f"{source}: thresholds file not found. Pass an existing YAML "
                                    "or JSON file (see recdistill.blessing for the format).")
        with filesystems.open_input(source) as f:
            name, text = source, f.read().decode()
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"{name}: not valid YAML/JSON: {e}") from e
    return parse_thresholds(values, name)


def _missing(name: str, metric: str, who: str, threshold: float) -> Check:
    how = _HOW_TO_COMPUTE.get(metric)
    return Check(name, threshold, None, FAILED,
                 f"{name}: {metric} of the {who} was not computed" + (f" ({how})." if how
                                                                       else "."))


def _check(name: str, threshold: float, metrics_by_model: Mapping) -> Check:
    rule = RULES[name]
    candidate = metrics_by_model[CANDIDATE].get(rule.metric)
    if candidate is None:
        return _missing(name, rule.metric, CANDIDATE, threshold)
    if rule.reference is None:
        observed, what = candidate, rule.metric
    elif rule.reference not in metrics_by_model:
        return Check(name, threshold, None, SKIPPED,
                     f"{name}: skipped, no {rule.reference} model was evaluated.")
    else:
        reference = metrics_by_model[rule.reference].get(rule.metric)
        if reference is None:
            return _missing(name, rule.metric, rule.reference, threshold)
        if rule.reference == CHAMPION:
            observed, what = reference - candidate, f"{rule.metric} drop vs champion"
        else:
            observed, what = candidate - reference, f"{rule.metric} gain vs baseline"
    ok = observed >= threshold if rule.bound == "min" else observed <= threshold
    sign = ">=" if rule.bound == "min" else "<="
    return Check(name, threshold, observed, PASSED if ok else FAILED,
                 f"{name}: {what} {observed:.6g} {'' if ok else 'not '}{sign} {threshold:.6g}.")


def bless(metrics_by_model: Mapping, thresholds: Mapping | None) -> BlessingResult:
    """Checks the candidate's metrics against ``thresholds``.

    Args:
      metrics_by_model: role -> metric dict (``auc``, ``gauc``, ``logloss`` ...); must hold
        ``student`` (the candidate) and may hold ``champion`` and ``baseline``.
      thresholds: a validated mapping (see :func:`load_thresholds`); None or empty means no
        thresholds, so not blessed.

    Returns:
      A BlessingResult whose ``reasons`` explain the verdict in one line each.
    """
    if CANDIDATE not in metrics_by_model:
        raise ValueError(f"bless needs the {CANDIDATE!r} model's metrics, got "
                         f"{sorted(metrics_by_model)}.")
    if not thresholds:
        logger.warning(NO_THRESHOLDS)
        return BlessingResult(blessed=False, reasons=[NO_THRESHOLDS], checks=[])
    checks = [_check(name, value, metrics_by_model) for name, value in thresholds.items()]
    failed = [c.message for c in checks if c.status == FAILED]
    skipped = [c.message for c in checks if c.status == SKIPPED]
    passed = sum(c.status == PASSED for c in checks)
    if failed:
        reasons = failed
    else:
        reasons = [f"{passed} of {len(checks)} checks passed, none failed."] + skipped
    result = BlessingResult(blessed=not failed, reasons=reasons, checks=checks)
    logger.info("blessed=%s: %s", result.blessed, " ".join(result.reasons))
    return result
