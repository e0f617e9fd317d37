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
