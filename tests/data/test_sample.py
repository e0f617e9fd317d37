"""Tests for recdistill.data.sample: the synthetic kd sample and the shared config writer."""

import csv
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
from google.protobuf import text_format
from sklearn.metrics import roc_auc_score

from recdistill.data import sample
from recdistill.protos import pipeline_pb2

FEATURE_NAMES = ["user_id", "age", "gender", "interests", "item_id", "category", "price",
                 "item_tags", "user_item_ctr", "position"]
STUDENT_FEATURES = FEATURE_NAMES[:-2]  # neither the ranking nor the privileged feature


def _parse(path):
    with open(path, encoding="utf-8") as f:
        return text_format.Parse(f.read(), pipeline_pb2.EasyRecConfig())


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return sample.write_sample_data(str(tmp_path_factory.mktemp("sample")), rows=2000, seed=3)


@pytest.fixture(scope="module")
def generated():
    return sample.generate_sample(100_000, seed=0)


def test_same_seed_writes_identical_files_and_another_seed_does_not(written, tmp_path):
    again = sample.write_sample_data(str(tmp_path / "again"), rows=2000, seed=3)
    other = sample.write_sample_data(str(tmp_path / "other"), rows=2000, seed=4)
    for name in ("train_path", "eval_path", "teacher_config", "student_config",
                 "student_nokd_config"):
        with open(getattr(written, name), "rb") as a, open(getattr(again, name), "rb") as b:
            assert a.read() == b.read(), name
    with open(written.train_path, "rb") as a, open(other.train_path, "rb") as b:
        assert a.read() != b.read()


def test_rows_split_by_eval_fraction_with_eval_last(written):
    assert len(_rows(written.train_path)) == 1600
    assert len(_rows(written.eval_path)) == 400
    full = sample.generate_sample(2000, seed=3)
    first_eval_row = _rows(written.eval_path)[0]
    assert first_eval_row[0] == full.columns["user_id"][1600]
    assert first_eval_row[4] == full.columns["item_id"][1600]


def test_csv_columns_follow_the_input_fields_of_every_config(written):
    teacher = _parse(written.teacher_config)
    student = _parse(written.student_config)
    nokd = _parse(written.student_nokd_config)
    names = lambda cfg: [f.input_name for f in cfg.data_config.input_fields]
    assert names(teacher) == FEATURE_NAMES + ["clk"]
    assert names(nokd) == FEATURE_NAMES + ["clk"]
    assert names(student) == FEATURE_NAMES + ["clk", "kd_soft"]
    assert student.data_config.input_fields[-1].input_type == pipeline_pb2.DatasetConfig.DOUBLE
    assert list(student.data_config.label_fields) == ["clk", "kd_soft"]
    assert list(nokd.data_config.label_fields) == ["clk"]
    types = {f.input_name: pipeline_pb2.DatasetConfig.FieldType.Name(f.input_type)
             for f in teacher.data_config.input_fields}
    for row in _rows(written.train_path) + _rows(written.eval_path):
        assert len(row) == len(FEATURE_NAMES) + 1
        for name, value in zip(FEATURE_NAMES + ["clk"], row):
            if types[name] == "FLOAT":
                float(value)
            elif types[name] in ("INT32", "INT64"):
                int(value)
        assert row[-1] in ("0", "1")
        assert 0 <= int(row[FEATURE_NAMES.index("position")]) < 10
        assert row[2] in ("F", "M")


def test_tag_columns_are_distinct_tags_joined_by_the_tag_separator(written):
    for row in _rows(written.train_path):
        for value in (row[FEATURE_NAMES.index("interests")], row[FEATURE_NAMES.index("item_tags")]):
            tags = value.split("|")
            assert 1 <= len(tags) <= 3 and len(set(tags)) == len(tags)
            assert all(len(t) == 3 and t[0] == "t" and 0 <= int(t[1:]) < 20 for t in tags)


def test_teacher_reads_every_feature_and_students_leave_out_the_teacher_only_ones(written):
    teacher = _parse(written.teacher_config)
    assert teacher.model_config.model_class == "DCN"
    assert [f.input_names[0] for f in teacher.feature_config.features] == FEATURE_NAMES
    assert list(teacher.model_config.feature_groups[0].feature_names) == FEATURE_NAMES
    assert teacher.model_config.dcn.cross_tower.input == "all"
    assert not teacher.model_config.kd
    for path, has_kd in ((written.student_config, True), (written.student_nokd_config, False)):
        cfg = _parse(path)
        assert cfg.model_config.model_class == "DSSM"
        assert [f.input_names[0] for f in cfg.feature_config.features] == STUDENT_FEATURES
        groups = {g.group_name: list(g.feature_names) for g in cfg.model_config.feature_groups}
        assert groups == {"user": STUDENT_FEATURES[:4], "item": STUDENT_FEATURES[4:]}
        assert cfg.model_config.dssm.user_tower.id == "user"
        assert cfg.model_config.dssm.item_tower.id == "item"
        assert len(cfg.model_config.kd) == int(has_kd)
    kd = _parse(written.student_config).model_config.kd[0]
    assert (kd.soft_label_name, kd.pred_name, kd.label_is_logits, kd.loss_weight,
            kd.temperature) == ("kd_soft", "logits", True, 1.0, 1.0)
    assert kd.loss_type == pipeline_pb2.CROSS_ENTROPY_LOSS


def test_configs_load_with_paths_relative_to_their_folder(written):
    from recdistill import config
    out = written.out_dir
    expected = {
        written.teacher_config: ("train.csv", "eval.csv", "models/teacher", ["clk"], []),
        written.student_config: ("soft_labels/train", "eval.csv", "models/student",
                                 ["clk", "kd_soft"], ["kd_soft"]),
        written.student_nokd_config: ("train.csv", "eval.csv", "models/student_nokd", ["clk"],
                                      []),
    }
    for path, (train, eval_, model_dir, labels, soft) in expected.items():
        cfg = config.load_config(path)
        assert cfg.train_input_path == os.path.join(out, train)
        assert cfg.eval_input_path == os.path.join(out, eval_)
        assert cfg.model_dir == os.path.join(out, model_dir)
        assert config.label_fields(cfg) == labels
        assert config.soft_label_fields(cfg) == soft


def test_click_rate_is_between_15_and_30_percent_in_both_splits(generated):
    clk = generated.columns["clk"]
    for rows in (clk[: generated.n_train], clk[generated.n_train:]):
        assert 0.15 <= rows.mean() <= 0.30


def test_labels_are_drawn_from_the_reported_click_probabilities(generated):
    clk = generated.columns["clk"]
    # Within each decile of the no-position probability, the observed rate matches its mean:
    # this holds only if that probability really is P(click | user, item).
    for probs in (generated.click_prob, generated.click_prob_without_privileged):
        edges = np.quantile(probs, np.linspace(0, 1, 11))
        bins = np.clip(np.digitize(probs, edges[1:-1]), 0, 9)
        for b in range(10):
            assert abs(clk[bins == b].mean() - probs[bins == b].mean()) < 0.02, b
    assert generated.click_prob.mean() == pytest.approx(
        generated.click_prob_without_privileged.mean(), abs=0.005)


def test_top_slots_get_clearly_more_clicks_than_bottom_slots(generated):
    clk, position = generated.columns["clk"], generated.columns["position"]
    rates = np.array([clk[position == k].mean() for k in range(10)])
    assert rates[0] > 2 * rates[9]
    assert np.all(np.bincount(position, minlength=10) > 0.07 * len(position))


def test_privileged_feature_raises_the_bayes_optimal_auc_by_a_clear_margin(generated):
    clk = generated.columns["clk"]
    with_privileged = roc_auc_score(clk, generated.click_prob)
    without = roc_auc_score(clk, generated.click_prob_without_privileged)
    assert 0.75 < without < with_privileged - 0.04
    assert with_privileged < 0.95


def test_user_item_ctr_is_a_noisy_view_of_the_position_free_click_probability(generated):
    ctr, clk = generated.columns["user_item_ctr"], generated.columns["clk"]
    truth = generated.click_prob_without_privileged
    assert np.all((ctr > 0) & (ctr < 1))
    # Informative (a teacher that reads it beats the ids alone) but noisier than the truth ...
    assert 0.70 < roc_auc_score(clk, ctr) < roc_auc_score(clk, truth) - 0.03
    assert np.corrcoef(ctr, truth)[0, 1] > 0.6
    # ... and blind to the position: at the same true probability, top and bottom slots look
    # alike, although their click rates differ by more than 2x.
    position = generated.columns["position"]
    band = (truth > 0.15) & (truth < 0.25)
    top, bottom = band & (position == 0), band & (position == 9)
    assert abs(ctr[top].mean() - ctr[bottom].mean()) < 0.01
    assert clk[top].mean() > 1.5 * clk[bottom].mean()


def test_eval_rows_are_later_draws_of_the_same_users_and_items(generated):
    train, eval_ = generated.split("train"), generated.split("eval")
    for column, share in (("user_id", 0.95), ("item_id", 0.99)):
        seen = set(train[column])
        assert np.mean([value in seen for value in eval_[column]]) > share
    users = {}
    for user, age, gender in zip(generated.columns["user_id"], generated.columns["age"],
                                 generated.columns["gender"]):
        assert users.setdefault(user, (age, gender)) == (age, gender)


@pytest.mark.parametrize("kwargs, message", [
    ({"rows": 99}, "rows must be >= 100"),
    ({"eval_fraction": 1.0}, "eval_fraction must be in (0, 1), got 1.0"),
])
def test_bad_arguments_are_rejected_with_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sample.generate_sample(**kwargs)


def test_render_configs_rejects_a_student_without_an_item_tower():
    features = [f for f in sample.SAMPLE_FEATURES if f.group != sample.ITEM_GROUP]
    with pytest.raises(ValueError, match="the 'item' group is empty"):
        sample.render_configs(features, batch_size=8, num_steps=1)


def test_render_configs_rejects_a_feature_named_like_the_label():
    features = list(sample.SAMPLE_FEATURES) + [
        sample.Feature("clk", "INT32", "IdFeature", sample.USER_GROUP, 4, num_buckets=2)]
    with pytest.raises(ValueError, match=r"duplicates \['clk'\]"):
        sample.render_configs(features, batch_size=8, num_steps=1)


def test_feature_rejects_an_unknown_group():
    with pytest.raises(ValueError, match="group must be one of user, item, ranking, privileged, "
                                         "got 'ctx'"):
        sample.Feature("hour", "INT64", "IdFeature", "ctx", 4, num_buckets=24)


def test_write_dataset_names_the_row_with_a_separator_inside_a_value(tmp_path):
    train = sample.generate_sample(200, seed=0).split("train")
    train["category"] = train["category"].copy()
    train["category"][7] = "a,b"
    with pytest.raises(ValueError, match="row 7 column 'category'.*'a,b'"):
        sample.write_dataset(str(tmp_path), sample.SAMPLE_FEATURES, train, train, batch_size=8)


def test_rewriting_never_replaces_edited_files_unless_told(tmp_path):
    out = str(tmp_path / "s")
    written = sample.write_sample_data(out, rows=500, seed=1)
    sample.write_sample_data(out, rows=500, seed=1)  # a rerun: same bytes, no flag needed
    with open(written.student_config, "a", encoding="utf-8") as f:
        f.write("# my tuning\n")
    edited = open(written.student_config, encoding="utf-8").read()
    train_before = open(written.train_path, encoding="utf-8").read()
    with pytest.raises(FileExistsError, match=r"student\.config: exist with other content.*"
                                              r"--overwrite"):
        sample.write_sample_data(out, rows=500, seed=2)
    assert open(written.student_config, encoding="utf-8").read() == edited
    assert open(written.train_path, encoding="utf-8").read() == train_before  # nothing written
    sample.write_sample_data(out, rows=500, seed=1, overwrite=True)
    assert "# my tuning" not in open(written.student_config, encoding="utf-8").read()
