"""Offline metrics of binary click models: AUC, GAUC, logloss, calibration, teacher agreement.

Every function takes plain 1-D arrays (labels 0/1, scores or probabilities, user ids) and
returns floats or small dicts of JSON-ready values, so evaluation, the report and the KFP
components share one set of numbers. AUCs come from scikit-learn and rank correlations from
SciPy; nothing here re-implements them.

GAUC follows EasyRec (``easy_rec/python/core/metrics.py``): the AUC of each user that has both
a positive and a negative example, averaged over those users with weights given by
``reduction`` (``mean``: 1 per user, ``mean_by_sample_num``: the user's example count,
``mean_by_positive_num``: the user's positive count). Where EasyRec returns 0.0 when no user
qualifies, this module returns None so a missing value is not mistaken for a bad model.

This module must not import TensorFlow, kfp or anything else from recdistill.
"""

import logging

import numpy as np

logger = logging.getLogger(__name__)

REDUCTIONS = ("mean", "mean_by_sample_num", "mean_by_positive_num")
#: How many points of a ROC curve the KFP ClassificationMetrics artifact takes at most.
MAX_ROC_POINTS = 200


def _labels(labels) -> np.ndarray:
    """Returns ``labels`` as an int array, raising ValueError unless every value is 0 or 1."""
    values = np.asarray(labels).reshape(-1)
    bad = ~np.isin(values, (0, 1))
    if bad.any():
        raise ValueError(f"labels must be 0 or 1, got {values[bad][:5].tolist()} at rows "
                         f"{np.flatnonzero(bad)[:5].tolist()}. Binarise the label field first.")
    return values.astype(np.int64)


def _scores(scores, n: int, name: str = "scores") -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if values.shape[0] != n:
        raise ValueError(f"{name} has {values.shape[0]} values but there are {n} labels.")
    if not np.isfinite(values).all():
        rows = np.flatnonzero(~np.isfinite(values))[:5].tolist()
        raise ValueError(f"{name} has non-finite values at rows {rows}. Check the model.")
    return values


def _has_both_classes(labels: np.ndarray) -> bool:
    return 0 < labels.sum() < labels.shape[0]


def _groups(user_ids) -> list:
    """Splits row indices by user id.

    Args:
      user_ids: 1-D array of ids (ints or strings).

    Returns:
      One int array of row indices per distinct id, in order of first sorted id.
    """
    ids = np.asarray(user_ids).reshape(-1)
    _, inverse = np.unique(ids, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    return np.split(order, bounds)


def auc(labels, scores) -> float:
    """ROC AUC (scikit-learn's ``roc_auc_score``).

    Raises:
      ValueError: the labels hold only one class, so AUC is undefined.
    """
    from sklearn.metrics import roc_auc_score

    y = _labels(labels)
    if not _has_both_classes(y):
        raise ValueError(f"AUC needs positive and negative labels; all {y.shape[0]} labels "
                         f"are {int(y[0]) if y.size else 'missing'}. Use a larger eval table.")
    return float(roc_auc_score(y, _scores(scores, y.shape[0])))


def gauc(labels, scores, user_ids, reduction: str = "mean") -> dict:
    """Group AUC as EasyRec computes it: per-user AUC averaged over users with both classes.

    Args:
      labels: 0/1 labels.
      scores: predicted scores (any monotone score; probabilities or logits).
      user_ids: the group of each row.
      reduction: ``mean``, ``mean_by_sample_num`` or ``mean_by_positive_num``.

    Returns:
      ``{"value": float | None, "users": users that counted, "users_total": all users}``.

    Raises:
      ValueError: an unknown reduction, or arrays of different lengths.
    """
    from sklearn.metrics import roc_auc_score

    if reduction not in REDUCTIONS:
        raise ValueError(f"gauc reduction must be one of {list(REDUCTIONS)}, got {reduction!r}.")
    y = _labels(labels)
    s = _scores(scores, y.shape[0])
    ids = np.asarray(user_ids).reshape(-1)
    if ids.shape[0] != y.shape[0]:
        raise ValueError(f"user ids have {ids.shape[0]} values but there are {y.shape[0]} labels.")
    aucs, weights = [], []
    rows_by_user = _groups(ids)
    for rows in rows_by_user:
        user_labels = y[rows]
        if not _has_both_classes(user_labels):
            continue
        aucs.append(roc_auc_score(user_labels, s[rows]))
        weights.append({"mean": 1, "mean_by_sample_num": rows.shape[0],
                        "mean_by_positive_num": int(user_labels.sum())}[reduction])
    value = float(np.average(aucs, weights=weights)) if aucs else None
    return {"value": value, "users": len(aucs), "users_total": len(rows_by_user)}


def logloss(labels, probs) -> float:
    """Mean binary cross-entropy of probabilities (scikit-learn's ``log_loss``)."""
    from sklearn.metrics import log_loss

    y = _labels(labels)
    p = _scores(probs, y.shape[0], "probabilities")
    if (p < 0).any() or (p > 1).any():
        raise ValueError("logloss needs probabilities in [0, 1], got values in "
                         f"[{p.min():.4g}, {p.max():.4g}]. Pass the model's probs output.")
    return float(log_loss(y, p, labels=[0, 1]))


def calibration(labels, probs) -> float | None:
    """Mean predicted probability divided by the positive rate (1.0 is calibrated).

    Returns None when the table has no positives.
    """
    y = _labels(labels)
    p = _scores(probs, y.shape[0], "probabilities")
    positive_rate = y.mean() if y.size else 0.0
    return float(p.mean() / positive_rate) if positive_rate > 0 else None


def calibration_curve(labels, probs, n_bins: int = 10) -> dict:
    """Reliability diagram points (scikit-learn's ``calibration_curve``, uniform bins).

    Returns:
      ``{"mean_predicted": [...], "fraction_positive": [...]}`` for the non-empty bins.
    """
    from sklearn.calibration import calibration_curve as sk_calibration_curve

    y = _labels(labels)
    fraction, predicted = sk_calibration_curve(y, _scores(probs, y.shape[0], "probabilities"),
                                               n_bins=n_bins, strategy="uniform")
    return {"mean_predicted": predicted.tolist(), "fraction_positive": fraction.tolist()}


def roc_points(labels, scores, max_points: int = MAX_ROC_POINTS) -> dict:
    """The ROC curve, downsampled to at most ``max_points`` points for the KFP UI.

    Points are taken evenly along scikit-learn's curve, always keeping the first (0, 0) and the
    last (1, 1). The first threshold, infinite in scikit-learn, is written as 1.0 above the
    highest score so the lists are JSON-safe.

    Returns:
      ``{"fpr": [...], "tpr": [...], "thresholds": [...]}``, equal lengths, fpr ascending.
    """
    from sklearn.metrics import roc_curve

    if max_points < 2:
        raise ValueError(f"max_points must be >= 2, got {max_points}.")
    y = _labels(labels)
    s = _scores(scores, y.shape[0])
    fpr, tpr, thresholds = roc_curve(y, s)
    if fpr.shape[0] > max_points:
        keep = np.unique(np.linspace(0, fpr.shape[0] - 1, max_points).round().astype(int))
        fpr, tpr, thresholds = fpr[keep], tpr[keep], thresholds[keep]
    thresholds = np.where(np.isfinite(thresholds), thresholds, s.max() + 1.0)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thresholds.tolist()}


def confusion_matrix(labels, probs, threshold: float = 0.5) -> dict:
    """Confusion matrix of ``probs >= threshold`` against the labels.

    Returns:
      ``{"categories": ["0", "1"], "matrix": [[tn, fp], [fn, tp]], "threshold": threshold}``,
      rows are true classes, the shape KFP's ``log_confusion_matrix`` takes.
    """
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    y = _labels(labels)
    predicted = (_scores(probs, y.shape[0], "probabilities") >= threshold).astype(np.int64)
    matrix = sk_confusion_matrix(y, predicted, labels=[0, 1])
    return {"categories": ["0", "1"], "matrix": matrix.tolist(), "threshold": threshold}


def classification_metrics(labels, probs, user_ids=None, reduction: str = "mean") -> dict:
    """All single-model metrics: auc, gauc (when user ids are given), logloss, calibration.

    Returns:
      ``{"auc", "gauc", "gauc_users", "logloss", "calibration", "mean_prediction",
      "positive_rate", "examples"}``; ``gauc``/``gauc_users`` are None without user ids.
    """
    y = _labels(labels)
    p = _scores(probs, y.shape[0], "probabilities")
    grouped = gauc(y, p, user_ids, reduction) if user_ids is not None else None
    return {
        "auc": auc(y, p),
        "gauc": grouped["value"] if grouped else None,
        "gauc_users": grouped["users"] if grouped else None,
        "logloss": logloss(y, p),
        "calibration": calibration(y, p),
        "mean_prediction": float(p.mean()),
        "positive_rate": float(y.mean()),
        "examples": int(y.shape[0]),
    }


def _correlations(a: np.ndarray, b: np.ndarray) -> tuple:
    """(Spearman rho, Kendall tau-b) of two score arrays; NaN where a side is constant."""
    from scipy import stats

    if a.shape[0] < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")
    return float(stats.spearmanr(a, b).statistic), float(stats.kendalltau(a, b).statistic)


def rank_agreement(scores_a, scores_b, user_ids=None) -> dict:
    """How similarly two models rank the same rows (SciPy's Spearman rho and Kendall tau-b).

    Overall correlations rank all rows together; per-user ones rank each user's rows and are
    averaged over users with at least two rows and non-constant scores from both models,
    which is what matters for a recommender that ranks items per user.

    Returns:
      ``{"spearman", "kendall", "spearman_per_user", "kendall_per_user", "users"}``; the
      per-user values are None without user ids or when no user qualifies.
    """
    a = _scores(scores_a, np.asarray(scores_a).reshape(-1).shape[0], "first scores")
    b = _scores(scores_b, a.shape[0], "second scores")
    spearman, kendall = _correlations(a, b)
    result = {"spearman": None if np.isnan(spearman) else spearman,
              "kendall": None if np.isnan(kendall) else kendall,
              "spearman_per_user": None, "kendall_per_user": None, "users": 0}
    if user_ids is None:
        return result
    per_user = np.array([_correlations(a[rows], b[rows]) for rows in _groups(user_ids)])
    per_user = per_user[~np.isnan(per_user).any(axis=1)] if per_user.size else per_user
    if per_user.shape[0]:
        result.update(spearman_per_user=float(per_user[:, 0].mean()),
                      kendall_per_user=float(per_user[:, 1].mean()), users=int(per_user.shape[0]))
    return result


def topk_overlap(scores_a, scores_b, user_ids, k: int = 10) -> dict:
    """Mean share of each user's top-k rows that both models put in their top k.

    Only users with more than ``k`` rows count (with fewer, the overlap is 1 by construction).
    Ties are broken by row order, the same way for both models.

    Returns:
      ``{"k": k, "mean": float | None, "users": users that counted}``.
    """
    if k < 1:
        raise ValueError(f"top-k overlap needs k >= 1, got {k}.")
    a = _scores(scores_a, np.asarray(scores_a).reshape(-1).shape[0], "first scores")
    b = _scores(scores_b, a.shape[0], "second scores")
    overlaps = []
    for rows in _groups(user_ids):
        if rows.shape[0] <= k:
            continue
        top_a = rows[np.argsort(-a[rows], kind="stable")[:k]]
        top_b = rows[np.argsort(-b[rows], kind="stable")[:k]]
        overlaps.append(np.intersect1d(top_a, top_b).shape[0] / k)
    return {"k": k, "mean": float(np.mean(overlaps)) if overlaps else None, "users": len(overlaps)}
