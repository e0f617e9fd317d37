"""stats.json summaries: exact counts/mean/min/max, sampled quantiles and AUC, bounded size."""

import numpy as np
import pytest

from recdistill.soft_labels import stats

SOURCES = {"kd_soft": {"teacher_output": "logits"}}


def _pairwise_auc(scores, labels) -> float:
    """AUC by counting ordered (positive, negative) pairs, ties counting one half."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def _chunks(seed=0, sizes=(40, 25, 35)):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=sum(sizes))
    labels = (rng.random(sum(sizes)) < 1 / (1 + np.exp(-2 * scores))).astype(np.int32)
    bounds = np.cumsum((0,) + sizes)
    return scores, labels, [(scores[a:b], labels[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _summarise(chunks, sample_size, rejected=()):
    total = stats.SoftLabelSummary()
    for i, (s, y) in enumerate(chunks):
        bad = list(rejected) if i == 0 else []
        total = total.merge(stats.SoftLabelSummary.of_chunk(
            {"kd_soft": s}, {"clk": y}, rows_read=len(s) + len(bad), rejected=bad, seed=(0, i),
            sample_size=sample_size), sample_size)
    return total


def test_merged_summary_is_exact_below_the_sample_size():
    scores, labels, chunks = _chunks()
    got = _summarise(chunks, sample_size=1000, rejected=["f.csv: row 3: bad"]).to_dict(
        SOURCES, ["clk"])
    assert got["rows_read"] == 101 and got["rows_written"] == 100 and got["rows_rejected"] == 1
    assert got["bad_rows_fraction"] == pytest.approx(1 / 101)
    assert got["rejected_examples"] == ["f.csv: row 3: bad"]
    assert got["shards_written"] == 3 and got["sample_rows"] == 100
    soft = got["soft_labels"]["kd_soft"]
    assert soft["teacher_output"] == "logits"
    assert soft["mean"] == pytest.approx(scores.mean())
    assert soft["min"] == scores.min() and soft["max"] == scores.max()
    assert soft["quantiles"]["0.5"] == pytest.approx(np.median(scores))
    assert soft["quantiles"]["0.99"] == pytest.approx(np.quantile(scores, 0.99))
    assert soft["teacher_auc"]["clk"] == pytest.approx(_pairwise_auc(scores, labels))
    assert soft["teacher_auc"]["clk"] > 0.6  # scores drive the labels


def test_sample_stays_bounded_and_uniform_while_counts_stay_exact():
    scores, labels, chunks = _chunks(1, sizes=(3000, 1000, 2000))
    total = _summarise(chunks, sample_size=500)
    assert len(total.sample_keys) == 500 and len(total.sample["kd_soft"]) == 500
    # The sample is a subset of the rows, with each row's label still beside its score.
    index = {v: i for i, v in enumerate(scores)}
    rows = np.array([index[v] for v in total.sample["kd_soft"]])
    np.testing.assert_array_equal(total.sample["clk"], labels[rows])
    # Uniform: about a sixth of it comes from the 1000-row chunk (rows 3000..3999).
    assert 50 < ((rows >= 3000) & (rows < 4000)).sum() < 120
    got = total.to_dict(SOURCES, ["clk"])
    assert got["rows_written"] == 6000 and got["sample_rows"] == 500
    assert got["soft_labels"]["kd_soft"]["mean"] == pytest.approx(scores.mean())
    assert got["soft_labels"]["kd_soft"]["quantiles"]["0.5"] == pytest.approx(
        np.median(scores), abs=0.15)


def test_same_seed_gives_the_same_stats():
    _, _, chunks = _chunks(2, sizes=(300, 300))
    one = _summarise(chunks, sample_size=100).to_dict(SOURCES, ["clk"])
    two = _summarise(chunks, sample_size=100).to_dict(SOURCES, ["clk"])
    assert one == two


@pytest.mark.parametrize("labels", [[0, 0, 0], [0.0, 0.5, 1.0], ["a", "b", "a"], []])
def test_teacher_auc_is_none_when_undefined(labels):
    assert stats.teacher_auc(np.arange(len(labels), dtype=float), np.array(labels)) is None


def test_empty_summary_has_no_soft_label_numbers():
    got = stats.SoftLabelSummary().to_dict(SOURCES, ["clk"])
    assert got["rows_read"] == 0 and got["bad_rows_fraction"] == 0.0
    assert got["soft_labels"]["kd_soft"]["mean"] is None
    assert got["soft_labels"]["kd_soft"]["quantiles"] == {}


@pytest.mark.parametrize("metadata,label,want", [
    ({"eval_metrics": {"eval_auc": 0.7}, "label_fields": ["clk"]}, "clk", 0.7),
    ({"eval_metrics": {"eval_auc": 0.7, "eval_auc_buy": 0.6}, "label_fields": ["clk", "buy"]},
     "buy", 0.6),
    ({"eval_metrics": {"eval_auc": 0.7}, "label_fields": ["clk"]}, "buy", None),
    ({"eval_metrics": {}, "label_fields": ["clk"]}, "clk", None),
    ({}, "clk", None)])
def test_teacher_eval_auc_reads_training_eval_metrics(metadata, label, want):
    assert stats.teacher_eval_auc(metadata, label) == want


def test_leak_check_and_scalars_with_two_labels_and_an_unknown_auc():
    content = {"rows_read": 9, "rows_written": 8, "rows_rejected": 1,
               "soft_labels": {"s": {"teacher_auc": {"clk": 0.99, "buy": None}}}}
    warnings = stats.check_leak(content, {"eval_metrics": {"eval_auc_clk": 0.9,
                                                           "eval_auc_buy": 0.5}}, max_gap=0.1)
    assert warnings == []  # 0.09 is within the 0.1 allowed; buy has no scored AUC
    assert content["soft_labels"]["s"]["teacher_auc_gap"] == {"clk": pytest.approx(0.09),
                                                              "buy": None}
    assert stats.metric_scalars(content) == {
        "rows_read": 9.0, "rows_written": 8.0, "rows_rejected": 1.0,
        "teacher_auc_s_clk": 0.99, "teacher_eval_auc_s_clk": 0.9, "teacher_eval_auc_s_buy": 0.5,
        "teacher_auc_gap_s_clk": pytest.approx(0.09), "soft_labels_repeat_clicks": 0.0}
