"""Offline metrics of binary click models: AUC, GAUC, logloss, calibration, teacher agreement
and the student's consistency with the teacher's ranking.

Every function takes plain 1-D arrays (labels 0/1, scores or probabilities, user or session
ids) and returns floats or small dicts of JSON-ready values, so evaluation, the report and the
KFP components share one set of numbers.

Scale. Evaluation tables reach 10^7 rows and 10^6 users, so nothing here makes a call per user:
rows are grouped once (:func:`group_rows`, a hash of the ids plus one stable sort), and every
per-user metric is one sort of the scores within groups plus segment reductions
(``np.bincount`` over group indices). The per-group work runs over chunks of whole groups of
at most :data:`CHUNK_ROWS` rows, so its temporaries stay bounded; the inputs themselves (a few
bytes per row) are the only memory that grows with the table. Global metrics work on sorted
copies of the scores and chunked sums. The values equal scikit-learn's and SciPy's (the tests
compare them with a per-user loop over those libraries), with one documented exception: the
global (all rows together) Spearman and Kendall of more than :data:`GLOBAL_RANK_MAX_ROWS` rows
are SciPy's on a seeded uniform sample of that many rows (standard error below 1e-3); the
per-user ones are always exact. Per-user Kendall tau-b counts discordant pairs with a
vectorised merge sort (:func:`_discordant_pairs`), log2(largest group) passes over the rows.

GAUC follows EasyRec (``easy_rec/python/core/metrics.py``): the AUC of each user that has both
a positive and a negative example, averaged over those users with weights given by
``reduction`` (``mean``: 1 per user, ``mean_by_sample_num``: the user's example count,
``mean_by_positive_num``: the user's positive count). Where EasyRec returns 0.0 when no user
qualifies, this module returns None so a missing value is not mistaken for a bad model.

Ties: AUCs count a tied positive/negative pair as half (as scikit-learn); rank correlations use
average ranks (as SciPy); top-k sets break ties by row order, the same way for both models.

This module must not import TensorFlow, kfp or anything else from recdistill.
"""

import dataclasses
import logging

import numpy as np

logger = logging.getLogger(__name__)

REDUCTIONS = ("mean", "mean_by_sample_num", "mean_by_positive_num")
#: How many points of a ROC curve the KFP ClassificationMetrics artifact takes at most.
MAX_ROC_POINTS = 200
#: Rows per chunk of whole groups (and per chunk of global sums): bounds the temporaries.
CHUNK_ROWS = 1 << 20
#: Global rank correlations are exact up to this many rows, else taken on a seeded sample this big.
GLOBAL_RANK_MAX_ROWS = 1_000_000
#: Clipping of probabilities in logloss, as scikit-learn does for float64 input.
_EPS = np.finfo(np.float64).eps


def _labels(labels) -> np.ndarray:
    """Returns ``labels`` as an int8 array, raising ValueError unless every value is 0 or 1."""
    values = np.asarray(labels).reshape(-1)
    bad = (values != 0) & (values != 1)
    if bad.any():
        raise ValueError(f"labels must be 0 or 1, got {values[bad][:5].tolist()} at rows "
                         f"{np.flatnonzero(bad)[:5].tolist()}. Binarise the label field first.")
    return values.astype(np.int8)


def _scores(scores, n: int, name: str = "scores") -> np.ndarray:
    """Returns ``scores`` as float32 (when given so, to keep big tables small) or float64."""
    values = np.asarray(scores).reshape(-1)
    if values.dtype != np.float32:
        values = values.astype(np.float64)
    if values.shape[0] != n:
        raise ValueError(f"{name} has {values.shape[0]} values but there are {n} labels.")
    if not np.isfinite(values).all():
        rows = np.flatnonzero(~np.isfinite(values))[:5].tolist()
        raise ValueError(f"{name} has non-finite values at rows {rows}. Check the model.")
    return values


def _has_both_classes(labels: np.ndarray) -> bool:
    return 0 < int(labels.sum(dtype=np.int64)) < labels.shape[0]


def _spans(n: int, size: int = CHUNK_ROWS):
    """Yields ``slice``s covering ``range(n)`` in steps of ``size``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


# ---------------------------------------------------------------- grouping


@dataclasses.dataclass(frozen=True)
class Groups:
    """Rows grouped by id, computed once by :func:`group_rows` and shared by the metrics.

    Attributes:
      order: row indices sorted by group; a group's rows keep their table order.
      starts: offset in ``order`` of each group's first row.
      sizes: rows per group.
    """

    order: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray

    def __len__(self) -> int:
        return self.sizes.shape[0]


def group_rows(ids) -> Groups:
    """Groups row indices by id, hashing the ids (pyarrow) rather than sorting them.

    Args:
      ids: one id per row (ints or strings): a sequence, numpy array or pyarrow (chunked)
        array, or a :class:`Groups` (returned as is).
    """
    if isinstance(ids, Groups):
        return ids
    import pyarrow as pa

    if not isinstance(ids, (pa.Array, pa.ChunkedArray)):
        ids = pa.array(np.asarray(ids).reshape(-1))
    encoded = ids.dictionary_encode()
    chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
    codes = (np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
             if chunks else np.zeros(0, np.int32))
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    return Groups(order=order, starts=np.cumsum(sizes) - sizes, sizes=sizes)


def _rows_checked(groups: Groups, n: int, what: str = "user ids") -> Groups:
    if groups.order.shape[0] != n:
        raise ValueError(f"{what} have {groups.order.shape[0]} values but there are {n} labels.")
    return groups


@dataclasses.dataclass(frozen=True)
class _Chunk:
    """Whole groups ``first..last-1``: their rows (table indices, grouped) and local layout."""

    first: int
    rows: np.ndarray
    group: np.ndarray  # local group index of each row, non-decreasing
    starts: np.ndarray  # local offset of each group's first row
    sizes: np.ndarray


def _chunks(groups: Groups, max_rows: int = CHUNK_ROWS):
    """Yields :class:`_Chunk`s of whole groups, about ``max_rows`` rows each (a bigger group
    is a chunk of its own)."""
    ends = groups.starts + groups.sizes
    first = 0
    while first < len(groups):
        last = max(int(np.searchsorted(ends, groups.starts[first] + max_rows, side="right")),
                   first + 1)
        sizes = groups.sizes[first:last]
        yield _Chunk(first=first, rows=groups.order[groups.starts[first]:ends[last - 1]],
                     group=np.repeat(np.arange(last - first), sizes),
                     starts=np.cumsum(sizes) - sizes, sizes=sizes)
        first = last


def _per_group(groups: Groups, compute, columns: int) -> np.ndarray:
    """Runs ``compute(chunk) -> [groups in chunk, columns]`` over every chunk; stacks results."""
    out = np.full((len(groups), columns), np.nan)
    for chunk in _chunks(groups):
        out[chunk.first:chunk.first + len(chunk.sizes)] = compute(chunk)
    return out


def _sum(chunk: _Chunk, weights) -> np.ndarray:
    return np.bincount(chunk.group, weights=weights, minlength=len(chunk.sizes))


def _dense_ranks(values: np.ndarray) -> tuple:
    """(0-based dense rank of each value among the chunk's values, number of distinct values)."""
    order = np.argsort(values)
    new = np.ones(order.shape[0], bool)
    ordered = values[order]
    new[1:] = ordered[1:] != ordered[:-1]
    dense = np.empty(order.shape[0], np.int64)
    dense[order] = np.cumsum(new) - 1
    return dense, int(new.sum())


def _runs(chunk: _Chunk, values: np.ndarray) -> tuple:
    """Average ranks of ``values`` (chunk rows' order) within each group, 1-based.

    One integer sort by (group, dense rank of the value) instead of a two-key lexsort.

    Returns:
      ``(ranks, distinct, tie_pairs)``: the ranks, and per group the number of distinct
      values and of tied pairs (sum of c(c-1)/2 over runs of c equal values).
    """
    dense, distinct_values = _dense_ranks(values)
    key = chunk.group * distinct_values + dense
    index = np.argsort(key)
    return _tie_runs(chunk, key[index], index)


def _tie_runs(chunk: _Chunk, keys: np.ndarray, index: np.ndarray) -> tuple:
    """Average ranks within groups from rows sorted by group then value (``index``, whose
    sorted ``keys`` are equal exactly for equal values of a group); see :func:`_runs`."""
    n = index.shape[0]
    new = np.ones(n, bool)
    new[1:] = keys[1:] != keys[:-1]
    run_start = np.flatnonzero(new)
    run_len = np.diff(np.append(run_start, n))
    run_group = chunk.group[index[run_start]]
    first_rank = run_start - chunk.starts[run_group]
    ranks = np.empty(n)
    ranks[index] = np.repeat(first_rank + (run_len + 1) / 2.0, run_len)
    distinct = np.bincount(run_group, minlength=len(chunk.sizes))
    tie_pairs = np.bincount(run_group, weights=run_len * (run_len - 1) / 2.0,
                            minlength=len(chunk.sizes))
    return ranks, distinct, tie_pairs


def _descending_positions(chunk: _Chunk, values: np.ndarray) -> np.ndarray:
    """0-based position of each row when its group is sorted by ``values`` descending; ties
    keep table order (the chunk's rows are in table order within a group)."""
    dense, distinct_values = _dense_ranks(values)
    n = values.shape[0]
    key = chunk.group * distinct_values + (distinct_values - 1 - dense)
    if len(chunk.sizes) * distinct_values * n < 2 ** 62:  # row number breaks ties
        index = np.argsort(key * n + np.arange(n))
    else:
        index = np.argsort(key, kind="stable")
    positions = np.empty(n, np.int64)
    positions[index] = np.arange(n) - chunk.starts[chunk.group[index]]
    return positions


def _discordant_pairs(chunk: _Chunk, rank_a: np.ndarray, rank_b: np.ndarray) -> tuple:
    """Per group, the pairs ordered one way by ``a`` and the other way by ``b`` (ties in either
    are not discordant), counted as inversions by a vectorised bottom-up merge sort, and the
    pairs tied in both.

    Rows are sorted by (group, a, b); an inversion is then a pair i < j with b_i > b_j. Level
    ``w`` (1, 2, 4, ...) counts the inversions between the left and right block of each pair of
    adjacent ``w``-blocks in a group, with one stable sort of all rows by (block pair, b, side):
    each inversion is counted once, at the level where its rows first share a block pair. The
    arrays stay in the previous level's order, so the sort merges presorted runs.

    Args:
      rank_a, rank_b: average ranks within groups (:func:`_runs`), so twice them are integers.

    Returns:
      ``(discordant, joint_tie_pairs)`` per group.
    """
    a2, b2 = (2 * rank_a).astype(np.int64), (2 * rank_b).astype(np.int64)
    span = 2 * int(chunk.sizes.max()) + 2  # > every doubled rank
    keys = (2 * chunk.starts[chunk.group] + a2) * span + b2  # group, then a, then b
    index = np.argsort(keys)
    keys = keys[index]
    _, _, joint_ties = _tie_runs(chunk, keys, index)
    group = chunk.group[index]
    position = np.arange(index.shape[0]) - chunk.starts[group]
    value = b2[index]
    del keys, index, a2, b2
    counts = np.zeros(len(chunk.sizes))
    width = 1
    keep = chunk.sizes[group] > width
    group, position, value = group[keep], position[keep], value[keep]
    while group.shape[0]:
        pair_start = chunk.starts[group] + position // (2 * width) * (2 * width)
        right = (position // width) & 1
        order = np.argsort((pair_start * span + value) * 2 + right, kind="stable")
        group, position, value = group[order], position[order], value[order]
        pair_start, right = pair_start[order], right[order]
        seen_left = np.cumsum(1 - right)
        new = np.ones(order.shape[0], bool)
        new[1:] = pair_start[1:] != pair_start[:-1]
        seg_start = np.flatnonzero(new)
        seg_len = np.diff(np.append(seg_start, order.shape[0]))
        seg_end = np.repeat(seen_left[seg_start + seg_len - 1], seg_len)
        # A right row's discordant partners: the left rows of its pair sorted after it.
        counts += np.bincount(group, weights=right * (seg_end - seen_left),
                              minlength=len(chunk.sizes))
        width *= 2
        keep = chunk.sizes[group] > width
        group, position, value = group[keep], position[keep], value[keep]
    return counts, joint_ties


# ---------------------------------------------------------------- single-model metrics


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney AUC: share of (positive, negative) pairs ordered right, ties half."""
    negatives = np.sort(s[y == 0])
    positives = s[y == 1]
    twice_right = 0
    for span in _spans(positives.shape[0]):
        chunk = positives[span]
        twice_right += int(np.searchsorted(negatives, chunk, "left").sum(dtype=np.int64)
                           + np.searchsorted(negatives, chunk, "right").sum(dtype=np.int64))
    return twice_right / 2.0 / (positives.shape[0] * negatives.shape[0])


def auc(labels, scores) -> float:
    """ROC AUC (equal to scikit-learn's ``roc_auc_score``).

    Raises:
      ValueError: the labels hold only one class, so AUC is undefined.
    """
    y = _labels(labels)
    if not _has_both_classes(y):
        raise ValueError(f"AUC needs positive and negative labels; all {y.shape[0]} labels "
                         f"are {int(y[0]) if y.size else 'missing'}. Use a larger eval table.")
    return _auc(y, _scores(scores, y.shape[0]))


def gauc(labels, scores, user_ids, reduction: str = "mean") -> dict:
    """Group AUC as EasyRec computes it: per-user AUC averaged over users with both classes.

    Args:
      labels: 0/1 labels.
      scores: predicted scores (any monotone score; probabilities or logits).
      user_ids: the group of each row, or a :class:`Groups` of them.
      reduction: ``mean``, ``mean_by_sample_num`` or ``mean_by_positive_num``.

    Returns:
      ``{"value": float | None, "users": users that counted, "users_total": all users}``.

    Raises:
      ValueError: an unknown reduction, or arrays of different lengths.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"gauc reduction must be one of {list(REDUCTIONS)}, got {reduction!r}.")
    y = _labels(labels)
    s = _scores(scores, y.shape[0])
    groups = _rows_checked(group_rows(user_ids), y.shape[0])

    def compute(chunk):
        ranks, _, _ = _runs(chunk, s[chunk.rows])
        labels_here = y[chunk.rows].astype(np.float64)
        positives = _sum(chunk, labels_here)
        negatives = chunk.sizes - positives
        rank_sum = _sum(chunk, ranks * labels_here)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)
        return np.stack([value, positives], axis=1)

    per_user = _per_group(groups, compute, 2)
    positives = per_user[:, 1]
    counted = (positives > 0) & (positives < groups.sizes)
    weights = {"mean": np.ones(len(groups)), "mean_by_sample_num": groups.sizes,
               "mean_by_positive_num": positives}[reduction][counted]
    value = float(np.average(per_user[counted, 0], weights=weights)) if counted.any() else None
    return {"value": value, "users": int(counted.sum()), "users_total": len(groups)}


def logloss(labels, probs) -> float:
    """Mean binary cross-entropy of probabilities, clipped to [eps, 1 - eps] as scikit-learn's
    ``log_loss`` does."""
    y = _labels(labels)
    p = _probabilities(probs, y.shape[0])
    total = 0.0
    for span in _spans(y.shape[0]):
        q = np.clip(p[span].astype(np.float64), _EPS, 1 - _EPS)
        total -= float(np.where(y[span] == 1, np.log(q), np.log1p(-q)).sum())
    return total / y.shape[0]


def _probabilities(probs, n: int) -> np.ndarray:
    p = _scores(probs, n, "probabilities")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError("metrics need probabilities in [0, 1], got values in "
                         f"[{p.min():.4g}, {p.max():.4g}]. Pass the model's probs output.")
    return p


def calibration(labels, probs) -> float | None:
    """Mean predicted probability divided by the positive rate (1.0 is calibrated).

    Returns None when the table has no positives.
    """
    y = _labels(labels)
    p = _scores(probs, y.shape[0], "probabilities")
    positive_rate = y.mean(dtype=np.float64) if y.size else 0.0
    return float(p.mean(dtype=np.float64) / positive_rate) if positive_rate > 0 else None


def calibration_curve(labels, probs, n_bins: int = 10) -> dict:
    """Reliability diagram points (as scikit-learn's ``calibration_curve``, uniform bins).

    Returns:
      ``{"mean_predicted": [...], "fraction_positive": [...]}`` for the non-empty bins.
    """
    y = _labels(labels)
    p = _probabilities(probs, y.shape[0])
    inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    sums, positives, totals = np.zeros(n_bins), np.zeros(n_bins), np.zeros(n_bins)
    for span in _spans(y.shape[0]):
        bins = np.searchsorted(inner_edges, p[span].astype(np.float64))
        sums += np.bincount(bins, weights=p[span], minlength=n_bins)
        positives += np.bincount(bins, weights=y[span], minlength=n_bins)
        totals += np.bincount(bins, minlength=n_bins)
    filled = totals > 0
    return {"mean_predicted": (sums[filled] / totals[filled]).tolist(),
            "fraction_positive": (positives[filled] / totals[filled]).tolist()}


def roc_points(labels, scores, max_points: int = MAX_ROC_POINTS) -> dict:
    """The ROC curve at no more than ``max_points`` points, for the KFP UI and the report.

    Thresholds are every distinct score when there are few, else scores at evenly spaced
    quantiles (always the lowest and highest); the first point is (0, 0) at a threshold of
    1.0 above the highest score, so the lists are JSON-safe.

    Returns:
      ``{"fpr": [...], "tpr": [...], "thresholds": [...]}``, equal lengths, fpr ascending.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2, got {max_points}.")
    y = _labels(labels)
    s = _scores(scores, y.shape[0])
    ordered = np.sort(s)
    if ordered.size == 0:
        raise ValueError("roc_points needs at least one row.")
    picks = np.unique(np.linspace(0, ordered.shape[0] - 1, max_points - 1).round().astype(int))
    thresholds = np.unique(ordered[picks])[::-1]
    del ordered
    positives, negatives = np.sort(s[y == 1]), np.sort(s[y == 0])

    def rate_at_or_above(sorted_scores):
        if sorted_scores.size == 0:
            return np.zeros(thresholds.shape[0])
        above = sorted_scores.shape[0] - np.searchsorted(sorted_scores, thresholds, "left")
        return above / sorted_scores.shape[0]

    return {"fpr": [0.0] + rate_at_or_above(negatives).tolist(),
            "tpr": [0.0] + rate_at_or_above(positives).tolist(),
            "thresholds": [float(thresholds[0]) + 1.0] + thresholds.astype(float).tolist()}


def confusion_matrix(labels, probs, threshold: float = 0.5) -> dict:
    """Confusion matrix of ``probs >= threshold`` against the labels.

    Returns:
      ``{"categories": ["0", "1"], "matrix": [[tn, fp], [fn, tp]], "threshold": threshold}``,
      rows are true classes, the shape KFP's ``log_confusion_matrix`` takes.
    """
    y = _labels(labels)
    p = _scores(probs, y.shape[0], "probabilities")
    cells = np.zeros(4, np.int64)
    for span in _spans(y.shape[0]):
        cells += np.bincount(2 * y[span].astype(np.int64) + (p[span] >= threshold), minlength=4)
    return {"categories": ["0", "1"], "matrix": cells.reshape(2, 2).tolist(),
            "threshold": threshold}


def classification_metrics(labels, probs, user_ids=None, reduction: str = "mean") -> dict:
    """All single-model metrics: auc, gauc (when user ids are given), logloss, calibration.

    Args:
      user_ids: the user of each row or a :class:`Groups` (pass one Groups for several models).

    Returns:
      ``{"auc", "gauc", "gauc_users", "logloss", "calibration", "mean_prediction",
      "positive_rate", "examples"}``; ``gauc``/``gauc_users`` are None without user ids.
    """
    y = _labels(labels)
    p = _probabilities(probs, y.shape[0])
    grouped = gauc(y, p, user_ids, reduction) if user_ids is not None else None
    return {
        "auc": auc(y, p),
        "gauc": grouped["value"] if grouped else None,
        "gauc_users": grouped["users"] if grouped else None,
        "logloss": logloss(y, p),
        "calibration": calibration(y, p),
        "mean_prediction": float(p.mean(dtype=np.float64)),
        "positive_rate": float(y.mean(dtype=np.float64)),
        "examples": int(y.shape[0]),
    }


# ---------------------------------------------------------------- two-model agreement


def _global_correlations(a: np.ndarray, b: np.ndarray) -> tuple:
    """(Spearman rho, Kendall tau-b) over all rows (SciPy), on a seeded uniform sample of
    GLOBAL_RANK_MAX_ROWS rows beyond that many."""
    from scipy import stats

    if a.shape[0] > GLOBAL_RANK_MAX_ROWS:
        sample = np.sort(np.random.default_rng(0).choice(a.shape[0], GLOBAL_RANK_MAX_ROWS,
                                                         replace=False))
        a, b = a[sample], b[sample]
        logger.info("global rank correlations on a sample of %d rows", GLOBAL_RANK_MAX_ROWS)
    return float(stats.spearmanr(a, b).statistic), float(stats.kendalltau(a, b).statistic)


def _per_user_correlations(a: np.ndarray, b: np.ndarray, groups: Groups) -> np.ndarray:
    """[users, 2]: each user's Spearman rho and Kendall tau-b (NaN for users with fewer than
    two rows or constant scores from either model), as SciPy defines them."""

    def compute(chunk):
        a_here, b_here = a[chunk.rows], b[chunk.rows]
        rank_a, distinct_a, ties_a = _runs(chunk, a_here)
        rank_b, distinct_b, ties_b = _runs(chunk, b_here)
        centre = (chunk.sizes[chunk.group] + 1) / 2.0
        da, db = rank_a - centre, rank_b - centre
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = _sum(chunk, da * db) / np.sqrt(_sum(chunk, da * da) * _sum(chunk, db * db))
        pairs = chunk.sizes * (chunk.sizes - 1) / 2.0
        discordant, joint_ties = _discordant_pairs(chunk, rank_a, rank_b)
        with np.errstate(divide="ignore", invalid="ignore"):
            tau = ((pairs - ties_a - ties_b + joint_ties - 2 * discordant)
                   / np.sqrt(pairs - ties_a) / np.sqrt(pairs - ties_b))
        counted = (distinct_a > 1) & (distinct_b > 1)
        return np.stack([np.where(counted, rho, np.nan), np.where(counted, tau, np.nan)], 1)

    return _per_group(groups, compute, 2)


def _two_scores(scores_a, scores_b) -> tuple:
    a = _scores(scores_a, np.asarray(scores_a).reshape(-1).shape[0], "first scores")
    return a, _scores(scores_b, a.shape[0], "second scores")


def rank_agreement(scores_a, scores_b, user_ids=None) -> dict:
    """How similarly two models rank the same rows (Spearman rho and Kendall tau-b, as SciPy).

    Overall correlations rank all rows together; per-user ones rank each user's rows and are
    averaged over users with at least two rows and non-constant scores from both models,
    which is what matters for a recommender that ranks items per user.

    Args:
      user_ids: the user of each row, a :class:`Groups`, or None.

    Returns:
      ``{"spearman", "kendall", "spearman_per_user", "kendall_per_user", "users"}``; the
      per-user values are None without user ids or when no user qualifies.
    """
    a, b = _two_scores(scores_a, scores_b)
    constant = a.shape[0] < 2 or np.ptp(a) == 0 or np.ptp(b) == 0
    spearman, kendall = (None, None) if constant else _global_correlations(a, b)
    result = {"spearman": spearman, "kendall": kendall,
              "spearman_per_user": None, "kendall_per_user": None, "users": 0}
    if user_ids is None:
        return result
    per_user = _per_user_correlations(a, b, _rows_checked(group_rows(user_ids), a.shape[0]))
    per_user = per_user[~np.isnan(per_user).any(axis=1)]
    if per_user.shape[0]:
        result.update(spearman_per_user=float(per_user[:, 0].mean()),
                      kendall_per_user=float(per_user[:, 1].mean()), users=int(per_user.shape[0]))
    return result


def _top_hits(reference: np.ndarray, other: np.ndarray, groups: Groups, k: int,
              m: int) -> np.ndarray:
    """[groups]: rows in both the reference's top k and the other model's top m of the group."""

    def compute(chunk):
        in_reference = _descending_positions(chunk, reference[chunk.rows]) < k
        in_other = _descending_positions(chunk, other[chunk.rows]) < m
        return _sum(chunk, in_reference & in_other)[:, None]

    return _per_group(groups, compute, 1)[:, 0]


def topk_overlap(scores_a, scores_b, user_ids, k: int = 10) -> dict:
    """Mean share of each user's top-k rows that both models put in their top k.

    Only users with more than ``k`` rows count (with fewer, the overlap is 1 by construction).
    Ties are broken by row order, the same way for both models.

    Args:
      user_ids: the user of each row, or a :class:`Groups`.

    Returns:
      ``{"k": k, "mean": float | None, "users": users that counted}``.
    """
    if k < 1:
        raise ValueError(f"top-k overlap needs k >= 1, got {k}.")
    a, b = _two_scores(scores_a, scores_b)
    groups = _rows_checked(group_rows(user_ids), a.shape[0])
    counted = groups.sizes > k
    hits = _top_hits(a, b, groups, k, k)[counted]
    return {"k": k, "mean": float((hits / k).mean()) if hits.size else None,
            "users": int(counted.sum())}


def teacher_consistency(student, teacher, session_ids, k: int = 10, m: int | None = None) -> dict:
    """How closely the student ranks each session the way the teacher (the ranker) does.

    * ``recall``: the share of the teacher's top-k rows of a session that the student puts in
      its top m (m >= k, the pre-ranker passing m candidates to the ranker), averaged over
      sessions of more than m rows (smaller ones are 1 by construction).
    * ``ndcg``: NDCG@k of the student's order with the teacher's scores as gains,
      ``sum_{i<k} t_(i) / log2(i + 2)`` over the student's top k divided by the same sum over
      the teacher's own top k, averaged over sessions of at least two rows and a positive
      ideal DCG.

    Ties in either model's scores are broken by row order.

    Args:
      student: the student's scores.
      teacher: the teacher's probabilities (gains, so they must be >= 0).
      session_ids: the session of each row, or a :class:`Groups`.
      k: the teacher's top k.
      m: the student's top m; default k.

    Returns:
      ``{"k", "m", "recall", "recall_sessions", "ndcg", "ndcg_sessions"}``; a mean is None
      when no session counts.
    """
    m = k if m is None else m
    if k < 1 or m < k:
        raise ValueError(f"teacher consistency needs 1 <= k <= m, got k={k}, m={m}.")
    s, t = _two_scores(student, teacher)
    if t.size and t.min() < 0:
        raise ValueError(f"teacher scores are NDCG gains and must be >= 0, got {t.min():.4g}. "
                         "Pass the teacher's probabilities, not its logits.")
    groups = _rows_checked(group_rows(session_ids), s.shape[0], "session ids")

    def compute(chunk):
        gains = t[chunk.rows].astype(np.float64)
        student_position = _descending_positions(chunk, s[chunk.rows])
        teacher_position = _descending_positions(chunk, gains)
        discount = 1.0 / np.log2(np.minimum(student_position, k) + 2.0)
        dcg = _sum(chunk, np.where(student_position < k, gains * discount, 0.0))
        discount = 1.0 / np.log2(np.minimum(teacher_position, k) + 2.0)
        ideal = _sum(chunk, np.where(teacher_position < k, gains * discount, 0.0))
        hits = _sum(chunk, (teacher_position < k) & (student_position < m))
        return np.stack([hits, dcg, ideal], axis=1)

    per_session = _per_group(groups, compute, 3)
    recall = per_session[groups.sizes > m, 0] / k
    ranked = (groups.sizes >= 2) & (per_session[:, 2] > 0)
    ndcg = per_session[ranked, 1] / per_session[ranked, 2]
    return {"k": k, "m": m,
            "recall": float(recall.mean()) if recall.size else None,
            "recall_sessions": int(recall.size),
            "ndcg": float(ndcg.mean()) if ndcg.size else None,
            "ndcg_sessions": int(ndcg.size)}
