"""Tests for recdistill.metrics: values worked out by hand or taken from EasyRec's own tests."""

import math

import numpy as np
import pytest

from recdistill import metrics

# EasyRec's metrics_test.py: two users, 5 and 4 rows.
EASYREC_LABELS = [1, 0, 1, 1, 0, 1, 0, 0, 1]
EASYREC_PROBS = [0.9, 0.8, 0.7, 0.6, 0.5, 0.9, 0.8, 0.7, 0.6]
EASYREC_UIDS = [1, 1, 1, 1, 1, 2, 2, 2, 2]


def test_auc_counts_correctly_ordered_pairs():
    # positives 0.35, 0.8; negatives 0.1, 0.4: pairs (0.35>0.1) (0.35<0.4) (0.8>0.1) (0.8>0.4).
    assert metrics.auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)


def test_auc_of_one_class_names_the_problem():
    with pytest.raises(ValueError, match="positive and negative"):
        metrics.auc([1, 1, 1], [0.1, 0.2, 0.3])


def test_labels_other_than_zero_and_one_are_rejected_with_their_rows():
    with pytest.raises(ValueError, match=r"got \[2\] at rows \[1\]"):
        metrics.auc([0, 2, 1], [0.1, 0.2, 0.3])


@pytest.mark.parametrize("reduction, expected", [
    ("mean", 0.5833333), ("mean_by_sample_num", 0.5925926), ("mean_by_positive_num", 0.6)])
def test_gauc_matches_easyrec_reductions(reduction, expected):
    # User 1: 6 pairs, 4 right -> 2/3; user 2: 4 pairs, 2 right -> 1/2 (EasyRec's expectations).
    result = metrics.gauc(EASYREC_LABELS, EASYREC_PROBS, EASYREC_UIDS, reduction)
    assert result["value"] == pytest.approx(expected, abs=1e-6)
    assert result["users"] == 2


def test_gauc_skips_users_with_one_class_and_accepts_string_ids():
    labels = [1, 0, 1, 1, 0, 0]
    probs = [0.9, 0.1, 0.2, 0.3, 0.4, 0.5]
    users = ["a", "a", "b", "b", "c", "c"]  # only "a" has both classes, AUC 1.0
    result = metrics.gauc(labels, probs, users)
    assert result == {"value": 1.0, "users": 1, "users_total": 3}


def test_gauc_without_any_qualifying_user_is_none_not_zero():
    assert metrics.gauc([1, 0], [0.3, 0.2], ["a", "b"])["value"] is None


def test_gauc_rejects_unknown_reduction():
    with pytest.raises(ValueError, match="mean_by_sample_num"):
        metrics.gauc([1, 0], [0.3, 0.2], [1, 1], reduction="median")


def test_logloss_and_calibration_match_their_formulas():
    y = np.array([1, 0, 0, 1, 0])
    p = np.array([0.8, 0.3, 0.1, 0.6, 0.5])
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert metrics.logloss(y, p) == pytest.approx(expected)
    assert metrics.calibration(y, p) == pytest.approx(0.46 / 0.4)


def test_logloss_rejects_logits():
    with pytest.raises(ValueError, match="probabilities in"):
        metrics.logloss([0, 1], [-2.0, 3.0])


def test_roc_points_are_downsampled_but_keep_both_ends_and_the_area():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    s = rng.random(2000) + 0.3 * y
    roc = metrics.roc_points(y, s, max_points=200)
    assert 100 < len(roc["fpr"]) <= 200
    assert len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"])
    assert (roc["fpr"][0], roc["tpr"][0]) == (0.0, 0.0)
    assert (roc["fpr"][-1], roc["tpr"][-1]) == (1.0, 1.0)
    assert np.all(np.diff(roc["fpr"]) >= 0)
    assert all(math.isfinite(t) for t in roc["thresholds"])
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(metrics.auc(y, s), abs=0.01)


def test_confusion_matrix_at_half():
    result = metrics.confusion_matrix([1, 0, 0, 1, 1], [0.7, 0.6, 0.2, 0.4, 0.5])
    # tn: row 2; fp: row 1; fn: row 3; tp: rows 0, 4 (0.5 counts as positive).
    assert result["matrix"] == [[1, 1], [1, 2]]
    assert result["categories"] == ["0", "1"]


def test_calibration_curve_bins_by_predicted_probability():
    curve = metrics.calibration_curve([0, 1, 1, 1], [0.05, 0.15, 0.95, 0.9], n_bins=2)
    assert curve["mean_predicted"] == pytest.approx([0.1, 0.925])
    assert curve["fraction_positive"] == pytest.approx([0.5, 1.0])


def test_rank_agreement_overall_by_hand():
    # One swapped pair out of 6: tau = (5 - 1) / 6; rho = 1 - 6 * 2 / (4 * 15).
    result = metrics.rank_agreement([1, 2, 3, 4], [1, 3, 2, 4])
    assert result["kendall"] == pytest.approx(4 / 6)
    assert result["spearman"] == pytest.approx(0.8)
    assert result["spearman_per_user"] is None


def test_rank_agreement_per_user_averages_users_and_skips_constant_ones():
    a = [1, 2, 3, 1, 2, 3, 5, 5]
    b = [1, 2, 3, 3, 2, 1, 1, 2]  # user x agrees, user y reversed, user z constant in a
    result = metrics.rank_agreement(a, b, ["x", "x", "x", "y", "y", "y", "z", "z"])
    assert result["spearman_per_user"] == pytest.approx(0.0)
    assert result["kendall_per_user"] == pytest.approx(0.0)
    assert result["users"] == 2


def test_topk_overlap_counts_shared_top_rows_per_user():
    users = ["u"] * 4 + ["v"] * 4 + ["w"] * 2
    a = [4, 3, 2, 1, 4, 3, 2, 1, 1, 2]
    b = [4, 3, 2, 1, 1, 2, 3, 4, 2, 1]  # u: same top 2; v: disjoint top 2; w: too few rows
    result = metrics.topk_overlap(a, b, users, k=2)
    assert result == {"k": 2, "mean": 0.5, "users": 2}


def test_classification_metrics_bundle_without_user_ids():
    result = metrics.classification_metrics([0, 1, 1, 0], [0.2, 0.9, 0.6, 0.4])
    assert result["auc"] == 1.0
    assert result["gauc"] is None
    assert result["positive_rate"] == 0.5
    assert result["mean_prediction"] == pytest.approx(0.525)
    assert result["examples"] == 4


# ------------------------------------------- the vectorised metrics against per-user loops
# Slow references, kept only here: one scikit-learn / SciPy call per user, as the library did
# before it was vectorised.


def reference_groups(ids):
    ids = np.asarray(ids)
    return [np.flatnonzero(ids == u) for u in np.unique(ids)]


def reference_gauc(y, s, ids, reduction):
    from sklearn.metrics import roc_auc_score

    aucs, weights = [], []
    for rows in reference_groups(ids):
        if 0 < y[rows].sum() < rows.shape[0]:
            aucs.append(roc_auc_score(y[rows], s[rows]))
            weights.append({"mean": 1, "mean_by_sample_num": rows.shape[0],
                            "mean_by_positive_num": y[rows].sum()}[reduction])
    return np.average(aucs, weights=weights), len(aucs)


def reference_correlations(a, b, ids):
    from scipy import stats

    values = []
    for rows in reference_groups(ids):
        if rows.shape[0] >= 2 and np.ptp(a[rows]) > 0 and np.ptp(b[rows]) > 0:
            values.append((stats.spearmanr(a[rows], b[rows]).statistic,
                           stats.kendalltau(a[rows], b[rows]).statistic))
    return np.array(values)


def reference_top(a, b, ids, k, m):
    """Per user with more than m rows: |top-k of a by row order ties ∩ top-m of b| / k."""
    shares = []
    for rows in reference_groups(ids):
        if rows.shape[0] > m:
            top_a = rows[np.argsort(-a[rows], kind="stable")[:k]]
            top_b = rows[np.argsort(-b[rows], kind="stable")[:m]]
            shares.append(np.intersect1d(top_a, top_b).shape[0] / k)
    return shares


def reference_ndcg(s, t, ids, k):
    values = []
    for rows in reference_groups(ids):
        gains = t[rows]
        ideal = np.sort(gains)[::-1][:k]
        discounts = 1 / np.log2(np.arange(2, ideal.shape[0] + 2))
        if rows.shape[0] < 2 or (ideal * discounts).sum() <= 0:
            continue
        got = gains[np.argsort(-s[rows], kind="stable")][:k]
        values.append((got * discounts).sum() / (ideal * discounts).sum())
    return values


@pytest.fixture(scope="module", params=[0, 1, 2])
def random_table(request):
    """Users of 1 to 40 rows (many single-row and one-class users), scores with many ties."""
    rng = np.random.default_rng(request.param)
    sizes = rng.choice([1, 1, 2, 3, 5, 12, 40], size=60)
    ids = np.repeat(rng.permutation(1000)[:60], sizes)
    shuffle = rng.permutation(ids.shape[0])
    ids = ids[shuffle]
    n = ids.shape[0]
    y = (rng.random(n) < rng.choice([0.0, 0.3, 1.0], size=n)).astype(int)
    a = rng.integers(0, 6, n) / 5.0  # six values: lots of ties
    b = np.where(rng.random(n) < 0.5, a, rng.integers(0, 4, n) / 3.0)
    return y, a, b, ids


@pytest.mark.parametrize("reduction", metrics.REDUCTIONS)
def test_vectorised_gauc_equals_per_user_sklearn(random_table, reduction):
    y, a, _, ids = random_table
    expected, users = reference_gauc(y, a, ids, reduction)
    got = metrics.gauc(y, a, ids, reduction)
    assert got["value"] == pytest.approx(expected, abs=1e-12)
    assert got["users"] == users and got["users_total"] == np.unique(ids).shape[0]


def test_vectorised_correlations_equal_per_user_scipy(random_table):
    from scipy import stats

    _, a, b, ids = random_table
    expected = reference_correlations(a, b, ids)
    got = metrics.rank_agreement(a, b, ids)
    assert got["users"] == expected.shape[0] > 10
    assert got["spearman_per_user"] == pytest.approx(expected[:, 0].mean(), abs=1e-12)
    assert got["kendall_per_user"] == pytest.approx(expected[:, 1].mean(), abs=1e-12)
    assert got["spearman"] == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert got["kendall"] == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-12)


def test_per_user_kendall_of_one_big_user_with_ties_counts_every_discordant_pair():
    # 300 rows and 8 levels of the merge: tau-b by scipy on the same rows.
    from scipy import stats

    rng = np.random.default_rng(7)
    a, b = rng.integers(0, 30, 300), rng.integers(0, 30, 300)
    got = metrics.rank_agreement(a, b, np.zeros(300))
    assert got["kendall_per_user"] == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-12)


def test_vectorised_topk_overlap_equals_per_user_loop(random_table):
    _, a, b, ids = random_table
    for k in (1, 3, 10):
        expected = reference_top(a, b, ids, k, k)
        got = metrics.topk_overlap(a, b, ids, k)
        assert got["users"] == len(expected)
        assert got["mean"] == pytest.approx(np.mean(expected), abs=1e-12)


def test_teacher_consistency_equals_per_session_loop(random_table):
    _, s, t, ids = random_table
    got = metrics.teacher_consistency(s, t, ids, k=3, m=5)
    recall = reference_top(t, s, ids, 3, 5)
    ndcg = reference_ndcg(s, t, ids, 3)
    assert got["recall_sessions"] == len(recall) and got["ndcg_sessions"] == len(ndcg)
    assert got["recall"] == pytest.approx(np.mean(recall), abs=1e-12)
    assert got["ndcg"] == pytest.approx(np.mean(ndcg), abs=1e-12)


def test_teacher_consistency_by_hand():
    # One session of 4: teacher order r3 > r2 > r1 > r0; student order r0 > r3 > r2 > r1.
    teacher = [0.1, 0.2, 0.3, 0.4]
    student = [0.9, 0.1, 0.2, 0.5]
    got = metrics.teacher_consistency(student, teacher, [7, 7, 7, 7], k=2, m=3)
    # Teacher top-2 {r3, r2}; student top-3 {r0, r3, r2}: recall 1.0.
    assert got["recall"] == 1.0 and got["recall_sessions"] == 1
    dcg = 0.1 / np.log2(2) + 0.4 / np.log2(3)
    ideal = 0.4 / np.log2(2) + 0.3 / np.log2(3)
    assert got["ndcg"] == pytest.approx(dcg / ideal)
    with pytest.raises(ValueError, match="not its logits"):
        metrics.teacher_consistency(student, [-1.0, 0.2, 0.3, 0.4], [7] * 4, k=2)
    with pytest.raises(ValueError, match="1 <= k <= m"):
        metrics.teacher_consistency(student, teacher, [7] * 4, k=3, m=2)


def test_vectorised_global_metrics_equal_sklearn(random_table):
    from sklearn import calibration as sk_calibration
    from sklearn import metrics as sk_metrics

    y, a, _, _ = random_table
    p = np.clip(a, 0.01, 0.99)
    assert metrics.auc(y, a) == pytest.approx(sk_metrics.roc_auc_score(y, a), abs=1e-12)
    assert metrics.logloss(y, p) == pytest.approx(sk_metrics.log_loss(y, p), abs=1e-12)
    fraction, predicted = sk_calibration.calibration_curve(y, p, n_bins=7)
    curve = metrics.calibration_curve(y, p, n_bins=7)
    assert curve["fraction_positive"] == pytest.approx(fraction.tolist(), abs=1e-12)
    assert curve["mean_predicted"] == pytest.approx(predicted.tolist(), abs=1e-12)
    assert metrics.confusion_matrix(y, p, 0.4)["matrix"] == sk_metrics.confusion_matrix(
        y, p >= 0.4).tolist()


def test_groups_are_shared_across_metrics_and_chunks(random_table, monkeypatch):
    # Tiny chunks: many chunks of whole groups give the same numbers as one chunk.
    y, a, b, ids = random_table
    groups = metrics.group_rows(ids)
    whole = (metrics.gauc(y, a, groups), metrics.rank_agreement(a, b, groups),
             metrics.teacher_consistency(a, b, groups, k=2, m=4))
    monkeypatch.setattr(metrics, "CHUNK_ROWS", 7)
    monkeypatch.setattr(metrics._chunks, "__defaults__", (7,))
    chunked = (metrics.gauc(y, a, groups), metrics.rank_agreement(a, b, groups),
               metrics.teacher_consistency(a, b, groups, k=2, m=4))
    assert chunked[0]["value"] == pytest.approx(whole[0]["value"], abs=1e-12)
    assert chunked[1]["kendall_per_user"] == pytest.approx(whole[1]["kendall_per_user"], abs=1e-12)
    assert chunked[2] == pytest.approx(whole[2])


def test_global_kendall_beyond_the_cap_uses_a_seeded_sample(monkeypatch):
    from scipy import stats

    rng = np.random.default_rng(3)
    a = rng.random(2000)
    b = a + rng.random(2000)
    monkeypatch.setattr(metrics, "GLOBAL_RANK_MAX_ROWS", 500)
    sampled = metrics.rank_agreement(a, b)["kendall"]
    assert sampled == metrics.rank_agreement(a, b)["kendall"]  # seeded
    assert sampled == pytest.approx(stats.kendalltau(a, b).statistic, abs=0.05)
    assert sampled != stats.kendalltau(a, b).statistic
