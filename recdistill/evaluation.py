"""Evaluation: score the eval table with the candidate student and its comparison models.

:func:`evaluate` runs the candidate (``student``) and, when given, the ``teacher``, the current
``champion`` (the last pushed model, see ``recdistill.push.champion_from``) and a ``baseline``
(e.g. the student trained without kd) over the same rows, computes every metric, decides the
blessing, and writes ``metrics.json`` and ``report.html`` into ``out_dir`` in one atomic step.
It returns an :class:`EvalResult` holding everything a KFP component copies into its
``Metrics``, ``ClassificationMetrics`` and ``HTML`` artifacts, so the component body is one call.

metrics.json layout::

    {"label_field": "clk", "prediction": "probs", "teacher_prediction": "probs",
     "uid_field": "user_id" | null, "session_field": "user_id" | null,
     "gauc_reduction": "mean", "examples": 2000, "top_k": 10, "top_m": 10, "created_at": "...Z",
     "model_digest": "sha256:...",   # the student's, recdistill.exported.model_digest
     "models": {"student": {"uri", "digest", "auc", "gauc", "gauc_users", "logloss",
                            "calibration", "mean_prediction", "positive_rate", "examples",
                            "teacher_topk_recall", "teacher_ndcg"},
                "teacher": {...}, "champion": {...}, "baseline": {...}},
     "teacher_student": {"spearman", "kendall", "spearman_per_user", "kendall_per_user",
                         "users", "topk_overlap": {"k", "mean", "users"}} | null,
     "teacher_consistency": {"session_field", "k", "m", "recall", "recall_sessions", "ndcg",
                             "ndcg_sessions"} | null,   # the student's, per session
     "kd_gain": {"auc", "gauc", "logloss_reduction"} | null,   # student vs baseline
     "thresholds": {...}, "blessing": {"blessed", "reasons", "checks"}, "blessed": bool,
     "selection": {...} | null}   # the kd sweep's selection.json (recdistill.selection)

``teacher_topk_recall`` / ``teacher_ndcg`` (every model but the teacher, when a teacher and a
session field are known; else None) are ``recdistill.metrics.teacher_consistency``: the share
of the teacher's top-k of a session in the model's top m, and NDCG@k of the model's order with
the teacher's probabilities as gains. They sit in each model's metrics so that thresholds
(``min_teacher_topk_recall``, ``min_teacher_ndcg``) check them like AUC.

Scale: the eval table is streamed in batches of ``PREDICT_BATCH_SIZE`` rows; only the label
(1 byte), a group index per user/session and each model's probability (4 bytes) are kept per
row, and the per-user metrics run over chunks of users (``recdistill.metrics``).

All IO goes through ``recdistill.data``; this module never imports kfp.
"""

import dataclasses
import datetime
import logging
from typing import Mapping

import numpy as np
import pyarrow as pa

from recdistill import blessing as blessing_lib
from recdistill import config as config_lib
from recdistill import exported
from recdistill import metrics as metrics_lib
from recdistill import outputs
from recdistill import report as report_lib
from recdistill import user_key
from recdistill.data import filesystems, json_files, tables

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
#: What proves a folder is an earlier evaluation output, so ``--out`` may replace it.
_OUTPUT_MARKERS = (METRICS_FILE,)
REPORT_FILE = "report.html"
BLESSED_KEY = "blessed"
#: metrics.json key naming the evaluated student (``recdistill.exported.model_digest``).
MODEL_DIGEST_KEY = "model_digest"

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
        ``teacher_student_kendall_per_user``, ``teacher_student_topk_overlap``,
        ``<model>_teacher_topk_recall``, ``<model>_teacher_ndcg`` and ``blessed`` (1.0 or
        0.0); metrics that could not be computed are left out.
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
    session_field: str | None  # groups rows for the consistency metrics


def _target(cfg, session_field: str | None = None) -> _Target:
    """Which label and prediction to evaluate, and how GAUC groups rows, from the config.

    The first task tower's label (output ``probs_<tower_name>``) when the model has towers,
    else the first label field that is not a kd soft label (output ``probs``). The teacher is
    read through the first kd block's ``teacher_pred_name`` when set (a multi-task teacher
    distilled into a single-task student), else like the student. Sessions (for the
    consistency metrics) are ``session_field`` when given, else a kd block's
    ``session_name``, else GAUC's ``uid_field``.
    """
    if cfg.model_config.task_towers:
        tower = cfg.model_config.task_towers[0]
        label = tower.label_name
        prediction = outputs.output_name(outputs.PROBS, f"_{tower.tower_name}")
    else:
        hard = config_lib.hard_label_fields(cfg)
        if not hard:
            raise ValueError("data_config.label_fields has no hard label (every label field is "
                             f"a kd soft_label_name: {sorted(config_lib.soft_label_fields(cfg))})."
                             " Add the click label.")
        label, prediction = hard[0], outputs.PROBS
    kd = cfg.model_config.kd
    teacher_prediction = kd[0].teacher_pred_name if kd and kd[0].teacher_pred_name else prediction
    uid_field, reduction = None, "mean"
    gauc = user_key.gauc_metric(cfg)
    if gauc is not None:
        uid_field, reduction = user_key.user_field(cfg), gauc.reduction
        if reduction not in metrics_lib.REDUCTIONS:
            raise ValueError(f"eval_config.metrics_set.gauc.reduction must be one of "
                             f"{list(metrics_lib.REDUCTIONS)}, got {reduction!r}.")
    session = session_field or user_key.kd_session_name(cfg) or uid_field
    return _Target(label, prediction, teacher_prediction, uid_field, reduction, session)


@dataclasses.dataclass
class _Scored:
    """What evaluation keeps of the eval table: a few bytes per row."""

    labels: np.ndarray  # int8 0/1
    users: metrics_lib.Groups | None
    sessions: metrics_lib.Groups | None
    probs: dict  # role -> float32 probabilities


class _Scorer:
    """Runs one model over batches of the eval table, keeping its probabilities as float32.

    Reads the probability output when the model has it, else the sigmoid of its logits.
    """

    def __init__(self, model: exported.ExportedModel, prediction: str, role: str,
                 data_uri: str):
        names = outputs.probability_first(prediction)
        self.name = next((n for n in names if n in model.outputs), None)
        if self.name is None:
            raise ValueError(f"{model.uri} ({role}): serving_default has outputs "
                             f"{model.outputs} but none of {list(names)}. Evaluate a model "
                             "trained for this config's label (or set kd.teacher_pred_name for "
                             "a teacher with other heads).")
        self.model, self.role, self.data_uri = model, role, data_uri
        self.chunks = []

    def score(self, columns: Mapping, first_row: int) -> None:
        values = np.asarray(self.model.predict(columns)[self.name], dtype=np.float64)
        if values.ndim > 1 and values.shape[1:] != (1,):
            raise ValueError(f"{self.model.uri} ({self.role}): output {self.name!r} has shape "
                             f"{values.shape}; evaluation needs one probability per row.")
        values = values.reshape(-1)
        bad = ~np.isfinite(values)
        if bad.any():
            rows = (np.flatnonzero(bad)[:5] + first_row).tolist()
            raise ValueError(f"{self.model.uri} ({self.role}): output {self.name!r} is "
                             f"{values[bad][0]} for rows {rows} (0-based) of {self.data_uri}. "
                             "The model itself is broken (was it trained on NaN features or "
                             "with a diverging loss?); retrain it or evaluate another model.")
        if outputs.is_logits(self.name):
            values = 1.0 / (1.0 + np.exp(-values))
        self.chunks.append(values.astype(np.float32))

    def probabilities(self) -> np.ndarray:
        values = np.concatenate(self.chunks)
        self.chunks = []
        logger.info("scored %d rows with the %s (%s, output %s)", values.shape[0], self.role,
                    self.model.uri, self.name)
        return values


def _data_config(data_uri: str, cfg):
    """The data_config to read the eval table with: the config without kd (the raw table), or
    the full one when the table is a header-less CSV that also carries the soft-label columns
    (what an EasyRec user evaluates on); either way only the needed columns are read."""
    plain = config_lib.without_kd(cfg).data_config
    full = cfg.data_config
    if (len(full.input_fields) == len(plain.input_fields) or full.with_header
            or full.input_type != full.CSVInput):
        return plain
    first = filesystems.expand(data_uri)[0]
    with filesystems.open_input(first) as f:
        head = f.read(1 << 16).decode("utf-8", errors="replace")
    line = next((text for text in head.splitlines() if text.strip()), "")
    if line.count(full.separator or ",") + 1 == len(full.input_fields):
        logger.info("%s carries the kd soft-label columns; evaluation ignores them", first)
        return full
    return plain


def _check_labels(values: np.ndarray, field: str, data_uri: str, first_row: int) -> np.ndarray:
    bad = (values != 0) & (values != 1)
    if bad.any():
        rows = (np.flatnonzero(bad)[:5] + first_row).tolist()
        raise ValueError(f"{data_uri}: label {field!r} must be 0 or 1, got "
                         f"{values[bad][:5].tolist()} at rows {rows} (0-based). Binarise the "
                         "label field first.")
    return values.astype(np.int8)


def _score_table(data_uri: str, cfg, target: _Target, models: Mapping) -> _Scored:
    """Streams the eval table once: checks it, runs every model on each batch and keeps the
    label, the user/session ids (as pyarrow arrays, grouped at the end) and the probabilities."""
    data_config = _data_config(data_uri, cfg)
    declared = [f.input_name for f in data_config.input_fields]
    for field, why in ((target.label_field, "the label"), (target.uid_field, "the GAUC uid_field"),
                       (target.session_field, "the session field")):
        if field and field not in declared:
            raise ValueError(f"{why} {field!r} is not in data_config.input_fields "
                             f"({', '.join(declared)}). Declare it, or fix the config.")
    groups = {target.uid_field, target.session_field} - {None}
    needed = {target.label_field} | groups
    for model in models.values():
        needed |= set(model.inputs) & set(declared)
    scorers = {role: _Scorer(model, target.teacher_prediction if role == TEACHER
                             else target.prediction, role, data_uri)
               for role, model in models.items()}
    labels, ids, rows = [], {field: [] for field in groups}, 0
    for batch in tables.iter_batches(data_uri, data_config, batch_size=PREDICT_BATCH_SIZE,
                                     fields=sorted(needed)):
        missing = sorted(needed - set(batch.schema.names))
        if missing:
            raise ValueError(f"{data_uri}: the eval table has no column {missing} (columns: "
                             f"{', '.join(batch.schema.names)}). Point --data at the eval "
                             "table the config describes.")
        columns = {name: batch.column(name).to_numpy(zero_copy_only=False)
                   for name in batch.schema.names}
        if rows == 0:
            for model in models.values():
                model.check_columns(columns)
        labels.append(_check_labels(columns[target.label_field], target.label_field, data_uri,
                                    rows))
        for field in groups:
            ids[field].append(batch.column(field))
        for scorer in scorers.values():
            scorer.score(columns, rows)
        rows += batch.num_rows
    if rows == 0:
        raise ValueError(f"{data_uri}: the eval table is empty. Check the path and the export.")
    grouped = {field: metrics_lib.group_rows(pa.chunked_array(chunks))
               for field, chunks in ids.items()}
    logger.info("read %d rows (%s) from %s", rows, ", ".join(sorted(needed)), data_uri)
    return _Scored(labels=np.concatenate(labels),
                   users=grouped.get(target.uid_field), sessions=grouped.get(target.session_field),
                   probs={role: scorer.probabilities() for role, scorer in scorers.items()})


def compare_models(data_uri: str, config, uris: Mapping[str, str]) -> dict:
    """Every model's metrics on one table, streamed once (as :func:`evaluate` computes them).

    Args:
      data_uri: the table (with the label and, for GAUC, the uid field).
      config: the loaded config naming the label and GAUC's uid_field.
      uris: candidate name -> model (model_dir or export); names other than ``teacher``.

    Returns:
      name -> ``{"uri", "digest", "auc", "gauc", "gauc_users", "logloss", ...}``
      (``recdistill.metrics.classification_metrics``).
    """
    target = _target(config)
    models = {name: exported.load_exported(uri) for name, uri in uris.items()}
    scored = _score_table(data_uri, config, target, models)
    return {name: {"uri": models[name].uri,
                   "digest": exported.model_digest(models[name].local_path),
                   **metrics_lib.classification_metrics(scored.labels, p, scored.users,
                                                        target.reduction)}
            for name, p in scored.probs.items()}


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
        for key in ("auc", "gauc", "logloss", "calibration", "teacher_topk_recall",
                    "teacher_ndcg"):
            scalars[f"{role}_{key}"] = values.get(key)
    for key, value in (result["kd_gain"] or {}).items():
        scalars[f"kd_gain_{key}"] = value
    agreement = result["teacher_student"]
    if agreement:
        for key in ("spearman", "kendall", "spearman_per_user", "kendall_per_user"):
            scalars[f"teacher_student_{key}"] = agreement[key]
        scalars["teacher_student_topk_overlap"] = agreement["topk_overlap"]["mean"]
    scalars[BLESSED_KEY] = 1.0 if result[BLESSED_KEY] else 0.0
    return {k: float(v) for k, v in scalars.items() if v is not None}


def _consistency(probs: Mapping, sessions, top_k: int, top_m: int) -> dict:
    """role -> ``metrics.teacher_consistency`` of every model but the teacher."""
    return {role: metrics_lib.teacher_consistency(p, probs[TEACHER], sessions, top_k, top_m)
            for role, p in probs.items() if role != TEACHER}


def evaluate(model_uri: str, data_uri: str, config, *, teacher_uri: str | None = None,
             champion_uri: str | None = None, baseline_uri: str | None = None,
             thresholds=None, out_dir: str, top_k: int = DEFAULT_TOP_K,
             top_m: int | None = None, session_field: str | None = None,
             selection: Mapping | None = None) -> EvalResult:
    """Scores the eval table with the candidate and its comparison models, and blesses or not.

    Args:
      model_uri: the candidate student (model_dir, export folder or pushed version; local/gs://).
      data_uri: the eval table (file, folder or glob), read with ``config.data_config`` minus
        the kd soft-label fields; soft-label columns in it, if any, are ignored.
      config: the student's loaded EasyRecConfig (``recdistill.config.load_config``). It names
        the label (first task tower's label_name, else the first non-soft label field) and, via
        ``eval_config.metrics_set { gauc { uid_field reduction } }``, the user-id field for GAUC
        and the per-user agreement metrics.
      teacher_uri: the teacher; adds rank agreement, top-k overlap and per-session consistency
        with every other model.
      champion_uri: the last pushed model; enables the ``max_*_drop`` thresholds.
      baseline_uri: the student trained without kd; adds ``kd_gain`` and the ``min_*_gain``
        thresholds.
      thresholds: a thresholds file (YAML/JSON, see ``recdistill.blessing``), a mapping, or None
        (None: the result is not blessed, and says so).
      out_dir: where metrics.json and report.html go (local or gs://), written atomically. An
        existing folder is replaced only if it is an earlier evaluation output.
      top_k: k of the per-user top-k overlap and of the teacher's top k in the consistency
        metrics.
      top_m: the student's top m in the teacher top-k recall (default ``top_k``).
      session_field: the column grouping rows into sessions for the consistency metrics;
        default a kd block's ``session_name``, else GAUC's ``uid_field``.
      selection: the kd sweep's selection.json (``recdistill.selection``) that chose the
        candidate: kept in metrics.json and shown in the report with every variant.

    Returns:
      The EvalResult; its fields are what a KFP component logs.

    Raises:
      TypeError: ``config`` is not a loaded config.
      FileNotFoundError: a model or the thresholds file is missing.
      FileExistsError: ``out_dir`` exists and is not an earlier evaluation output.
      ValueError: a model lacks serving_default or the prediction or predicts NaN, the table
        lacks the label, the uid field or a model input, or the config/thresholds are invalid.
    """
    if not hasattr(config, "data_config"):
        raise TypeError(f"evaluate takes a loaded config, got {type(config).__name__} "
                        f"{str(config)[:80]!r}. Call recdistill.config.load_config on it first.")
    target = _target(config, session_field)
    top_m = top_k if top_m is None else top_m
    threshold_values = blessing_lib.load_thresholds(thresholds)
    filesystems.check_replaceable(out_dir, _OUTPUT_MARKERS)
    uris = {STUDENT: model_uri, TEACHER: teacher_uri, CHAMPION: champion_uri,
            BASELINE: baseline_uri}
    models = {role: exported.load_exported(uri) for role, uri in uris.items() if uri}
    digests = {role: exported.model_digest(model.local_path) for role, model in models.items()}
    scored = _score_table(data_uri, config, target, models)
    labels, probs = scored.labels, scored.probs

    per_model = {role: {"uri": models[role].uri, "digest": digests[role],
                        **metrics_lib.classification_metrics(labels, p, scored.users,
                                                             target.reduction)}
                 for role, p in probs.items()}
    agreement, consistency = None, None
    if TEACHER in probs:
        agreement = metrics_lib.rank_agreement(probs[STUDENT], probs[TEACHER], scored.users)
        agreement["topk_overlap"] = (metrics_lib.topk_overlap(probs[STUDENT], probs[TEACHER],
                                                              scored.users, top_k)
                                     if scored.users is not None
                                     else {"k": top_k, "mean": None, "users": 0})
    by_role = (_consistency(probs, scored.sessions, top_k, top_m)
               if TEACHER in probs and scored.sessions is not None else {})
    for role, values in per_model.items():
        values["teacher_topk_recall"] = by_role[role]["recall"] if role in by_role else None
        values["teacher_ndcg"] = by_role[role]["ndcg"] if role in by_role else None
    if STUDENT in by_role:
        consistency = {"session_field": target.session_field, **by_role[STUDENT]}
    verdict = blessing_lib.bless(per_model, threshold_values)
    result = {
        "label_field": target.label_field, "prediction": target.prediction,
        "teacher_prediction": target.teacher_prediction,
        "uid_field": target.uid_field, "session_field": target.session_field,
        "gauc_reduction": target.reduction,
        "examples": int(labels.shape[0]), "top_k": top_k, "top_m": top_m,
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "data_uri": data_uri, MODEL_DIGEST_KEY: digests[STUDENT], "models": per_model,
        "teacher_student": agreement, "teacher_consistency": consistency,
        "kd_gain": (_gain(per_model[STUDENT], per_model[BASELINE])
                    if BASELINE in per_model else None),
        "thresholds": threshold_values, "blessing": verdict.to_dict(),
        BLESSED_KEY: verdict.blessed, "selection": dict(selection) if selection else None,
    }
    page = report_lib.render_report(labels, probs, result)
    with filesystems.atomic_dir(out_dir, replaces=_OUTPUT_MARKERS) as staging:
        json_files.write_json(filesystems.join(staging, METRICS_FILE), result)
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
    result = json_files.read_json(uri)
    if not isinstance(result, dict) or not isinstance(result.get(BLESSED_KEY), bool):
        raise ValueError(f"{uri}: has no boolean {BLESSED_KEY!r} key. Re-run the evaluation "
                         "with this version of recdistill.")
    return result
