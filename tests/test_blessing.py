"""Tests for recdistill.blessing: thresholds format, verdicts and their reasons."""

import pytest

from recdistill import blessing

STUDENT = {"auc": 0.75, "gauc": 0.66, "logloss": 0.50}


def test_no_thresholds_is_not_blessed_and_says_so():
    result = blessing.bless({"student": STUDENT}, {})
    assert result.blessed is False
    assert result.reasons == [blessing.NO_THRESHOLDS]
    assert "not blessed" in result.reasons[0]
    assert result.to_dict() == {"blessed": False, "reasons": [blessing.NO_THRESHOLDS],
                                "checks": []}


def test_absolute_thresholds_pass_and_fail_with_the_numbers_in_the_reason():
    ok = blessing.bless({"student": STUDENT}, {"min_auc": 0.7, "max_logloss": 0.6})
    assert ok.blessed is True
    assert [c.status for c in ok.checks] == ["passed", "passed"]
    bad = blessing.bless({"student": STUDENT}, {"min_auc": 0.8, "max_logloss": 0.6})
    assert bad.blessed is False
    assert bad.reasons == ["min_auc: auc 0.75 not >= 0.8."]


def test_champion_drop_is_champion_minus_candidate():
    models = {"student": STUDENT, "champion": {"auc": 0.76, "gauc": 0.60}}
    within = blessing.bless(models, {"max_auc_drop": 0.02})
    assert within.blessed is True
    assert within.checks[0].observed == pytest.approx(0.01)
    beyond = blessing.bless(models, {"max_auc_drop": 0.005})
    assert beyond.blessed is False
    assert "auc drop vs champion 0.01 not <= 0.005" in beyond.reasons[0]


def test_baseline_gain_is_candidate_minus_baseline():
    models = {"student": STUDENT, "baseline": {"auc": 0.74}}
    result = blessing.bless(models, {"min_auc_gain": 0.02})
    assert result.blessed is False
    assert result.checks[0].observed == pytest.approx(0.01)


def test_first_run_without_champion_skips_relative_checks_and_reports_them():
    result = blessing.bless({"student": STUDENT}, {"min_auc": 0.7, "max_auc_drop": 0.01})
    assert result.blessed is True
    statuses = {c.name: c.status for c in result.checks}
    assert statuses == {"min_auc": "passed", "max_auc_drop": "skipped"}
    assert any("skipped, no champion" in r for r in result.reasons)


def test_missing_gauc_fails_the_gauc_threshold_instead_of_passing_it():
    result = blessing.bless({"student": {"auc": 0.8, "gauc": None}}, {"min_gauc": 0.5})
    assert result.blessed is False
    assert "gauc of the student was not computed" in result.reasons[0]


def test_thresholds_file_in_yaml_and_json(tmp_path):
    yaml_file = tmp_path / "t.yaml"
    yaml_file.write_text("# comment\nmin_auc: 0.7\nmax_auc_drop: 0.005\n")
    json_file = tmp_path / "t.json"
    json_file.write_text('{"min_auc": 0.7, "max_auc_drop": 0.005}')
    expected = {"min_auc": 0.7, "max_auc_drop": 0.005}
    assert blessing.load_thresholds(str(yaml_file)) == expected
    assert blessing.load_thresholds(str(json_file)) == expected


def test_empty_thresholds_file_means_no_thresholds(tmp_path):
    empty = tmp_path / "t.yaml"
    empty.write_text("")
    assert blessing.load_thresholds(str(empty)) == {}


def test_bad_thresholds_list_every_problem(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("min_acu: 0.7\nmax_logloss: high\n")
    with pytest.raises(ValueError) as err:
        blessing.load_thresholds(str(bad))
    message = str(err.value)
    assert "unknown threshold 'min_acu'; valid: min_auc" in message
    assert "max_logloss must be a finite number, got 'high'" in message
    assert str(bad) in message


def test_missing_thresholds_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="thresholds file not found"):
        blessing.load_thresholds(str(tmp_path / "nope.yaml"))


def test_inline_json_or_yaml_thresholds_as_a_pipeline_parameter():
    assert blessing.load_thresholds('{"min_auc": 0.6}') == {"min_auc": 0.6}
    assert blessing.load_thresholds("min_auc: 0.6\nmax_auc_drop: 0.01") == {
        "min_auc": 0.6, "max_auc_drop": 0.01}
    with pytest.raises(ValueError, match="inline thresholds: unknown threshold 'auc'"):
        blessing.load_thresholds('{"auc": 0.6}')


def test_inline_thresholds_without_the_space_say_how_to_write_them():
    with pytest.raises(ValueError) as err:
        blessing.load_thresholds("min_auc:0.7")
    message = str(err.value)
    assert "needs a space after ':'" in message
    assert "'min_auc: 0.7'" in message and '{"min_auc": 0.7}' in message
    assert blessing._NO_SPACE.match("gs://bucket/thresholds.yaml") is None  # a URI, not YAML


def test_teacher_consistency_thresholds_check_the_candidate():
    student = dict(STUDENT, teacher_topk_recall=0.72, teacher_ndcg=0.95)
    result = blessing.bless({"student": student},
                            {"min_teacher_topk_recall": 0.8, "min_teacher_ndcg": 0.9})
    assert result.blessed is False
    assert result.reasons == ["min_teacher_topk_recall: teacher_topk_recall 0.72 not >= 0.8."]
    assert [c.status for c in result.checks] == ["failed", "passed"]


def test_consistency_threshold_without_a_teacher_fails_and_says_what_is_needed():
    result = blessing.bless({"student": dict(STUDENT, teacher_ndcg=None)},
                            {"min_teacher_ndcg": 0.9})
    assert result.blessed is False
    assert "evaluate with a teacher and a session field" in result.reasons[0]
