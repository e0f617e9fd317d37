"""Evaluation: score the eval table with the candidate student and its comparison models.

:func:`evaluate` runs the candidate (``student``) and, when given, the ``teacher``, the current
``champion`` (the last pushed model, see ``recdistill.push.champion_from``) and a ``baseline``
(e.g. the student trained without kd) over the same rows, computes every metric, decides the
blessing, and writes ``metrics.json`` and ``report.html`` into ``out_dir`` in one atomic step.
It returns an :class:`EvalResult` holding everything a KFP component copies into its
``Metrics``, ``ClassificationMetrics`` and ``HTML`` artifacts, so the component body is one call.

metrics.json layout::

    {"label_field": "clk", "prediction": "probs", "teacher_prediction": "probs",
     "uid_field": "user_id" | null,
     "gauc_reduction": "mean", "examples": 2000, "top_k": 10, "created_at": "...Z",
     "models": {"student": {"uri", "auc", "gauc", "gauc_users", "logloss", "calibration",
                            "mean_prediction", "positive_rate", "examples"},
                "teacher": {...}, "champion": {...}, "baseline": {...}},
     "teacher_student": {"spearman", "kendall", "spearman_per_user", "kendall_per_user",
                         "users", "topk_overlap": {"k", "mean", "users"}} | null,
     "kd_gain": {"auc", "gauc", "logloss_reduction"} | null,   # student vs baseline
     "thresholds": {...}, "blessing": {"blessed", "reasons", "checks"}, "blessed": bool}

All IO goes through ``recdistill.data``; this module never imports kfp.
"""

import dataclasses
import datetime
import json
import logging
from typing import Mapping

import numpy as np

from recdistill import blessing as blessing_lib
from recdistill import config as config_lib
from recdistill import exported
from recdistill import metrics as metrics_lib
from recdistill import report as report_lib
from recdistill.data import filesystems, tables

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
BLESSED_KEY = "blessed"

STUDENT = blessing_lib.CANDIDATE
TEACHER = "teacher"
CHAMPION = blessing_lib.CHAMPION
BASELINE = blessing_lib.BASELINE

#: Rows per ``serving_default`` call; large batches keep the per-call overhead negligible.
PREDICT_BATCH_SIZE = 65536
#: Probability threshold of the confusion matrix sent to KFP.
CONFUSION_THRESHOLD = 0.5
DEFAULT_TOP_K = 10


@dataclasses.dataclass
class EvalResult:
    """What :func:`evaluate` computed and wrote.

    Attributes:
      blessed: the verdict (also ``metrics["blessed"]``).
      reasons: one line per reason for the verdict (``metrics["blessing"]["reasons"]``).
      metrics: the full metrics.json content (layout in the module docstring).
      scalars: flat ``name -> float`` for ``Metrics.log_metric``: ``<model>_<metric>`` for
        auc/gauc/logloss/calibration of every evaluated model, ``kd_gain_auc``,
        ``kd_gain_gauc``, ``kd_gain_logloss_reduction``, ``teacher_student_spearman``,
        ``teacher_student_kendall``, ``teacher_student_spearman_per_user``,
        ``teacher_student_kendall_per_user``, ``teacher_student_topk_overlap`` and
        ``blessed`` (1.0 or 0.0); metrics that could not be computed are left out.
      roc: the student's ROC curve, at most 200 points: ``{"fpr", "tpr", "thresholds"}``
        (``ClassificationMetrics.log_roc_curve(fpr, tpr, thresholds)``).
      confusion_matrix: the student's at probability 0.5: ``{"categories": ["0", "1"],
        "matrix": [[tn, fp], [fn, tp]], "threshold"}``
        (``ClassificationMetrics.log_confusion_matrix(categories, matrix)``).
      out_dir: where the files were written.
      metrics_uri: ``<out_dir>/metrics.json``.
      report_uri: ``<out_dir>/report.html`` (copy it into the ``HTML`` artifact).
    """

    blessed: bool
    reasons: list
    metrics: dict
    scalars: dict
    roc: dict
    confusion_matrix: dict
    out_dir: str
    metrics_uri: str
    report_uri: str


@dataclasses.dataclass(frozen=True)
class _Target:
    label_field: str
    prediction: str  # the probability output read from the student, champion and baseline
    teacher_prediction: str  # the teacher's output for the same target (kd teacher_pred_name)
    uid_field: str | None
    reduction: str


def _target(cfg) -> _Target:
    """Which label and prediction to evaluate, and how GAUC groups rows, from the config.

    The first task tower's label (output ``probs_<tower_name>``) when the model has towers,
    else the first label field that is not a kd soft label (output ``probs``). The teacher is
    read through the first kd block's ``teacher_pred_name`` when set (a multi-task teacher
    distilled into a single-task student), else like the student.
    """
    if cfg.model_config.task_towers:
        tower = cfg.model_config.task_towers[0]
        label, prediction = tower.label_name, f"probs_{tower.tower_name}"
    else:
        hard = config_lib.hard_label_fields(cfg)
        if not hard:
            raise ValueError("data_config.label_fields has no hard label (every label field is "
                             f"a kd soft_label_name: {sorted(config_lib.soft_label_fields(cfg))})."
                             " Add the click label.")
        label, prediction = hard[0], "probs"
    kd = cfg.model_config.kd
    teacher_prediction = kd[0].teacher_pred_name if kd and kd[0].teacher_pred_name else prediction
    uid_field, reduction = None, "mean"
    for metric in cfg.eval_config.metrics_set:
        if metric.WhichOneof("metric") == "gauc":
            uid_field, reduction = metric.gauc.uid_field, metric.gauc.reduction
            if not uid_field:
                raise ValueError("eval_config.metrics_set.gauc.uid_field is empty. Set it to the "
                                 "user-id input field, e.g. uid_field: 'user_id'.")
            if reduction not in metrics_lib.REDUCTIONS:
                raise ValueError(f"eval_config.metrics_set.gauc.reduction must be one of "
                                 f"{list(metrics_lib.REDUCTIONS)}, got {reduction!r}.")
    return _Target(label, prediction, teacher_prediction, uid_field, reduction)


def _output_names(prediction: str) -> tuple:
    """``prediction`` and its twin (``probs_x`` <-> ``logits_x``), the probability first."""
    for kind, twin in (("probs", "logits"), ("logits", "probs")):
        if prediction.startswith(kind):
            pair = (prediction, twin + prediction[len(kind):])
            return pair if kind == "probs" else pair[::-1]
    return (prediction,)


def _probabilities(model: exported.ExportedModel, columns: Mapping, prediction: str,
                   role: str) -> np.ndarray:
    """Runs ``model`` over the table in batches; returns its probabilities as float64 [n].

    Reads the probability output when the model has it, else the sigmoid of its logits.
    """
    names = _output_names(prediction)
    name = next((n for n in names if n in model.outputs), None)
    if name is None:
        raise ValueError(f"{model.uri} ({role}): serving_default has outputs {model.outputs} but "
                         f"none of {list(names)}. Evaluate a model trained for this config's "
                         "label (or set kd.teacher_pred_name for a teacher with other heads).")
    rows = len(next(iter(columns.values())))
    chunks = []
    for start in range(0, rows, PREDICT_BATCH_SIZE):
        batch = {key: values[start:start + PREDICT_BATCH_SIZE] for key, values in columns.items()}
        chunks.append(np.asarray(model.predict(batch)[name], dtype=np.float64))
    values = np.concatenate(chunks) if chunks else np.zeros(0)
    if values.ndim > 1 and values.shape[1:] != (1,):
        raise ValueError(f"{model.uri} ({role}): output {name!r} has shape {values.shape}; "
                         "evaluation needs one probability per row.")
    values = values.reshape(-1)
    if name.startswith("logits"):
        values = 1.0 / (1.0 + np.exp(-values))
    logger.info("scored %d rows with the %s (%s, output %s)", rows, role, model.uri, name)
    return values


def _read_columns(data_uri: str, cfg, target: _Target, models: Mapping) -> dict:
    """Reads the label, uid and every model input from the eval table as numpy columns."""
    declared = [f.input_name for f in cfg.data_config.input_fields]
    for field, why in ((target.label_field, "the label"), (target.uid_field, "the GAUC uid_field")):
        if field and field not in declared:
            raise ValueError(f"{why} {field!r} is not in data_config.input_fields "
                             f"({', '.join(declared)}). Declare it, or fix the config.")
    needed = {target.label_field} | {target.uid_field} - {None}
    for model in models.values():
        needed |= set(model.inputs) & set(declared)
    table = tables.read_table(data_uri, cfg.data_config, fields=sorted(needed))
    for field in needed:
        if field not in table.column_names:
            raise ValueError(f"{data_uri}: the eval table has no column {field!r} (columns: "
                             f"{', '.join(table.column_names)}). Point --data at the eval table "
                             "the config describes.")
    if table.num_rows == 0:
        raise ValueError(f"{data_uri}: the eval table is empty. Check the path and the export.")
    columns = {name: table.column(name).to_numpy(zero_copy_only=False)
               for name in table.column_names}
    for model in models.values():
        model.check_columns(columns)
    logger.info("read %d rows (%s) from %s", table.num_rows, ", ".join(sorted(columns)), data_uri)
    return columns


def _gain(student: Mapping, baseline: Mapping) -> dict:
    def diff(a, b):
        return None if a is None or b is None else a - b

    return {"auc": diff(student["auc"], baseline["auc"]),
            "gauc": diff(student["gauc"], baseline["gauc"]),
            "logloss_reduction": diff(baseline["logloss"], student["logloss"])}


def _scalars(result: Mapping) -> dict:
    """Flattens metrics.json into the numbers a KFP Metrics artifact logs."""
    scalars = {}
    for role, values in result["models"].items():
        for key in ("auc", "gauc", "logloss", "calibration"):
            scalars[f"{role}_{key}"] = values[key]
    for key, value in (result["kd_gain"] or {}).items():
        scalars[f"kd_gain_{key}"] = value
    agreement = result["teacher_student"]
    if agreement:
        for key in ("spearman", "kendall", "spearman_per_user", "kendall_per_user"):
            scalars[f"teacher_student_{key}"] = agreement[key]
        scalars["teacher_student_topk_overlap"] = agreement["topk_overlap"]["mean"]
    scalars[BLESSED_KEY] = 1.0 if result[BLESSED_KEY] else 0.0
    return {k: float(v) for k, v in scalars.items() if v is not None}


def evaluate(model_uri: str, data_uri: str, config, *, teacher_uri: str | None = None,
             champion_uri: str | None = None, baseline_uri: str | None = None,
             thresholds=None, out_dir: str, top_k: int = DEFAULT_TOP_K) -> EvalResult:
    """Scores the eval table with the candidate and its comparison models, and blesses or not.

    Args:
      model_uri: the candidate student (model_dir, export folder or pushed version; local/gs://).
      data_uri: the raw eval table (file, folder or glob; no soft-label columns), read with
        ``config.data_config`` minus the kd soft-label fields.
      config: the student's EasyRecConfig, or a path/text for ``load_config``. It names the
        label (first task tower's label_name, else the first non-soft label field) and, via
        ``eval_config.metrics_set { gauc { uid_field reduction } }``, the user-id field for GAUC
        and the per-user agreement metrics.
      teacher_uri: the teacher; adds rank agreement and top-k overlap with the student.
      champion_uri: the last pushed model; enables the ``max_*_drop`` thresholds.
      baseline_uri: the student trained without kd; adds ``kd_gain`` and the ``min_*_gain``
        thresholds.
      thresholds: a thresholds file (YAML/JSON, see ``recdistill.blessing``), a mapping, or None
        (None: the result is not blessed, and says so).
      out_dir: where metrics.json and report.html go (local or gs://), written atomically.
      top_k: k of the per-user top-k overlap between student and teacher.

    Returns:
      The EvalResult; its fields are what a KFP component logs.

    Raises:
      FileNotFoundError: a model or the thresholds file is missing.
      ValueError: a model lacks serving_default or the prediction, the table lacks the label,
        the uid field or a model input, or the config/thresholds are invalid.
    """
    cfg = config if hasattr(config, "data_config") else config_lib.load_config(config)
    target = _target(cfg)
    threshold_values = blessing_lib.load_thresholds(thresholds)
    uris = {STUDENT: model_uri, TEACHER: teacher_uri, CHAMPION: champion_uri,
            BASELINE: baseline_uri}
    models = {role: exported.load_exported(uri)
              for role, uri in uris.items() if uri}
    # The eval table is the raw one (soft labels are only generated for training), so it is
    # read with the schema of the config without kd; evaluation never needs soft labels.
    columns = _read_columns(data_uri, config_lib.without_kd(cfg), target, models)
    labels = columns[target.label_field]
    user_ids = columns[target.uid_field] if target.uid_field else None
    probs = {role: _probabilities(model, columns, target.teacher_prediction
                                  if role == TEACHER else target.prediction, role)
             for role, model in models.items()}

    per_model = {}
    for role, p in probs.items():
        per_model[role] = {"uri": models[role].uri,
                           **metrics_lib.classification_metrics(labels, p, user_ids,
                                                                target.reduction)}
    agreement = None
    if TEACHER in probs:
        agreement = metrics_lib.rank_agreement(probs[STUDENT], probs[TEACHER], user_ids)
        agreement["topk_overlap"] = (metrics_lib.topk_overlap(probs[STUDENT], probs[TEACHER],
                                                              user_ids, top_k)
                                     if user_ids is not None
                                     else {"k": top_k, "mean": None, "users": 0})
    verdict = blessing_lib.bless(per_model, threshold_values)
    result = {
        "label_field": target.label_field, "prediction": target.prediction,
        "teacher_prediction": target.teacher_prediction,
        "uid_field": target.uid_field, "gauc_reduction": target.reduction,
        "examples": int(labels.shape[0]), "top_k": top_k,
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "data_uri": data_uri, "models": per_model, "teacher_student": agreement,
        # Names the exact model scored: push only trusts a verdict on the model it pushes.
        "model_digest": exported.model_digest(models[STUDENT].local_path),
        "kd_gain": (_gain(per_model[STUDENT], per_model[BASELINE])
                    if BASELINE in per_model else None),
        "thresholds": threshold_values, "blessing": verdict.to_dict(),
        BLESSED_KEY: verdict.blessed,
    }
    page = report_lib.render_report(labels, probs, result)
    with filesystems.atomic_dir(out_dir) as staging:
        with filesystems.open_output(filesystems.join(staging, METRICS_FILE)) as f:
            f.write(json.dumps(result, indent=2, sort_keys=True).encode())
        with filesystems.open_output(filesystems.join(staging, REPORT_FILE)) as f:
            f.write(page.encode())
    logger.info("wrote %s and %s to %s: blessed=%s", METRICS_FILE, REPORT_FILE, out_dir,
                verdict.blessed)
    return EvalResult(
        blessed=verdict.blessed, reasons=list(verdict.reasons), metrics=result,
        scalars=_scalars(result),
        roc=metrics_lib.roc_points(labels, probs[STUDENT]),
        confusion_matrix=metrics_lib.confusion_matrix(labels, probs[STUDENT], CONFUSION_THRESHOLD),
        out_dir=out_dir, metrics_uri=filesystems.join(out_dir, METRICS_FILE),
        report_uri=filesystems.join(out_dir, REPORT_FILE))


def read_evaluation(evaluation_dir: str) -> dict:
    """Reads ``metrics.json`` written by :func:`evaluate`.

    Raises:
      FileNotFoundError: no metrics.json in ``evaluation_dir``.
      ValueError: it is not JSON or has no boolean ``blessed``.
    """
    uri = filesystems.join(evaluation_dir, METRICS_FILE)
    if not filesystems.exists(uri):
        raise FileNotFoundError(f"{uri}: no evaluation here. Run `recdistill evaluate --out "
                                f"{evaluation_dir}` first, or pass the folder it wrote.")
    with filesystems.open_input(uri) as f:
        try:
            result = json.loads(f.read())
        except json.JSONDecodeError as e:
            raise ValueError(f"{uri}: not valid JSON ({e}). Re-run the evaluation.") from e
    if not isinstance(result, dict) or not isinstance(result.get(BLESSED_KEY), bool):
        raise ValueError(f"{uri}: has no boolean {BLESSED_KEY!r} key. Re-run the evaluation "
                         "with this version of recdistill.")
    return result
