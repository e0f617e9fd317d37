"""Tests for recdistill.selection: the validation holdout and the kd sweep's choice.

Toy linear models with known weights (tests/toy_models.py) make the expected choice clear;
the slow test at the end trains real students on the sample, one taught by noise at a large
loss_weight.
"""

import glob
import json
import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from recdistill import evaluation, selection  # noqa: E402
from recdistill.config import load_config  # noqa: E402
from recdistill.data import folds  # noqa: E402

import toy_models  # noqa: E402

#: name -> (wx, wz): clicks follow 1.5 x + 0.5 z, so "strong" ranks best and "weak" worst.
WEIGHTS = {"weak": (0.2, -0.3), "strong": (1.5, 0.5), "middle": (0.8, -0.6)}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    table = toy_models.make_table(users=60, rows_per_user=8)
    data = toy_models.write_csv(root / "valid" / "part-00000.csv", table)
    models = {name: toy_models.save_linear(root / name, wx, wz)
              for name, (wx, wz) in WEIGHTS.items()}
    return {"root": root, "table": table, "data": data, "models": models,
            "config": load_config(toy_models.config_text(teacher_pred_name="probs"))}


def _read_part(folder) -> pd.DataFrame:
    files = sorted(glob.glob(os.path.join(folder, "*.csv")))
    return pd.concat([pd.read_csv(f, header=None, names=toy_models.COLUMNS,
                                  dtype={"user_id": str}) for f in files])


# ---------------------------------------------------------------- the holdout


def test_holdout_is_whole_percent_buckets():
    assert selection.holdout_buckets(0.1) == tuple(range(10))
    assert selection.holdout_buckets(0) == ()
    for bad in (0.123, -0.1, 0.6):
        with pytest.raises(ValueError, match=f"validation_fraction .* got {bad}"):
            selection.holdout_buckets(bad)


def test_split_keeps_every_row_once_and_each_user_on_one_side(toy, tmp_path):
    train, valid = str(tmp_path / "train"), str(tmp_path / "valid")
    stats = selection.split_validation(toy["data"], toy["config"], train, valid, fraction=0.2,
                                       split="user")
    whole = pd.DataFrame(toy["table"])
    got_train, got_valid = _read_part(train), _read_part(valid)
    assert stats == {"train_rows": len(got_train), "validation_rows": len(got_valid),
                     "split": "user", "key": "user_id", "fraction": 0.2}
    held = folds.buckets(whole["user_id"].to_numpy(), 100, salt=folds.HOLDOUT_SALT) < 20
    assert sorted(got_valid["user_id"].unique()) == sorted(whole["user_id"][held].unique())
    assert not set(got_valid["user_id"]) & set(got_train["user_id"])
    # input order kept on both sides
    np.testing.assert_allclose(got_valid["x"].to_numpy(), whole["x"][held].to_numpy())
    np.testing.assert_allclose(got_train["x"].to_numpy(), whole["x"][~held].to_numpy())


def test_fraction_zero_keeps_every_row_for_training(toy, tmp_path):
    train, valid = str(tmp_path / "train"), str(tmp_path / "valid")
    stats = selection.split_validation(toy["data"], toy["config"], train, valid, fraction=0,
                                       split="user")
    assert stats["validation_rows"] == 0 and stats["train_rows"] == len(toy["table"]["clk"])
    assert os.listdir(valid) == ["_SUCCESS"]


def test_time_split_holds_out_the_latest_rows_of_known_users(toy, tmp_path):
    train, valid = str(tmp_path / "train"), str(tmp_path / "valid")
    stats = selection.split_validation(toy["data"], toy["config"], train, valid, fraction=0.2,
                                       split="time")
    whole = pd.DataFrame(toy["table"])
    got_train, got_valid = _read_part(train), _read_part(valid)
    assert stats == {"train_rows": 384, "validation_rows": 96, "split": "time", "key": "",
                     "fraction": 0.2}
    np.testing.assert_allclose(got_valid["x"].to_numpy(), whole["x"][384:].to_numpy())
    np.testing.assert_allclose(got_train["x"].to_numpy(), whole["x"][:384].to_numpy())
    stats = selection.split_validation(toy["data"], toy["config"], train, valid, fraction=0,
                                       split="time")
    assert stats["train_rows"] == 480 and os.listdir(valid) == ["_SUCCESS"]
    with pytest.raises(ValueError, match="validation_split must be one of"):
        selection.split_validation(toy["data"], toy["config"], train, valid, split="day")


def test_split_key_is_named_or_gauc_uid_field_or_refused(toy):
    assert selection.split_key(toy["config"]) == "user_id"
    assert selection.split_key(toy["config"], "x") == "x"
    no_gauc = load_config(toy_models.config_text().replace(
        'metrics_set { gauc { uid_field: "user_id" reduction: "mean" } }', ""))
    with pytest.raises(ValueError, match="validation_key"):
        selection.split_key(no_gauc)


def test_a_split_that_leaves_a_part_empty_says_why(toy, tmp_path):
    table = toy_models.make_table(users=1, rows_per_user=10)
    data = toy_models.write_csv(tmp_path / "one_user.csv", table)
    with pytest.raises(ValueError, match="without rows: too few distinct user_id"):
        selection.split_validation(data, toy["config"], str(tmp_path / "t"),
                                   str(tmp_path / "v"), fraction=0.01, split="user")
    one_row = toy_models.write_csv(tmp_path / "one_row.csv",
                                   toy_models.make_table(users=1, rows_per_user=1))
    with pytest.raises(ValueError, match=r"by time \(row order.*without rows: too few rows"):
        selection.split_validation(one_row, toy["config"], str(tmp_path / "t2"),
                                   str(tmp_path / "v2"), fraction=0.1, split="time")


# ---------------------------------------------------------------- the choice


def _select(toy, tmp_path, kd, baseline, **kwargs):
    m = toy["models"]
    return selection.select({name: m[model] for name, model in kd.items()}, m[baseline],
                            toy["data"], toy["config"], str(tmp_path / "selection"), **kwargs)


def test_the_best_kd_variant_is_chosen_when_it_beats_the_baseline(toy, tmp_path):
    chosen = _select(toy, tmp_path, {"kd": "weak", "kd_v1": "strong"}, "middle",
                     overrides={"kd_v1": {"loss_weight": 0.5}})
    assert (chosen.chosen, chosen.chosen_uri) == ("kd_v1", toy["models"]["strong"])
    written = json.loads((tmp_path / "selection" / selection.SELECTION_FILE).read_text())
    assert written == json.loads(json.dumps(chosen.content))
    assert sorted(written["candidates"]) == ["baseline", "kd", "kd_v1"]
    expected = evaluation.compare_models(toy["data"], toy["config"], toy["models"])
    for name, model in (("kd", "weak"), ("kd_v1", "strong"), ("baseline", "middle")):
        assert written["candidates"][name]["auc"] == pytest.approx(expected[model]["auc"])
        assert chosen.scalars[f"valid_auc_{name}"] == pytest.approx(expected[model]["auc"])
    assert written["candidates"]["kd_v1"]["overrides"] == {"loss_weight": 0.5}
    assert chosen.scalars["chose_baseline"] == 0.0
    page = (tmp_path / "selection" / selection.REPORT_FILE).read_text()
    assert all(name in page for name in ("kd_v1", "loss_weight=0.5", "baseline", "<img"))


def test_a_kd_student_that_loses_to_its_baseline_is_never_chosen(toy, tmp_path):
    chosen = _select(toy, tmp_path, {"kd": "weak", "kd_v1": "middle"}, "strong")
    assert chosen.chosen == "baseline" and chosen.chosen_uri == toy["models"]["strong"]
    assert chosen.content["best_kd"] == "kd_v1" and chosen.scalars["chose_baseline"] == 1.0
    assert "no kd student goes on" in chosen.content["reason"]


def test_a_tie_goes_to_the_baseline(toy, tmp_path):
    assert _select(toy, tmp_path, {"kd": "strong"}, "strong").chosen == "baseline"


def test_without_the_baseline_the_best_kd_candidate_goes_on(toy, tmp_path):
    chosen = _select(toy, tmp_path, {"kd": "weak", "kd_v1": "middle"}, "strong",
                     include_baseline=False)
    assert chosen.chosen == "kd_v1" and "baseline" not in chosen.content["candidates"]


def test_gauc_selects_on_per_user_auc(toy, tmp_path):
    chosen = _select(toy, tmp_path, {"kd": "weak", "kd_v1": "strong"}, "middle", metric="gauc")
    expected = evaluation.compare_models(toy["data"], toy["config"], toy["models"])
    assert chosen.content["metric"] == "gauc" and chosen.chosen == "kd_v1"
    assert chosen.content["candidates"]["kd"]["gauc"] == pytest.approx(expected["weak"]["gauc"])
    with pytest.raises(ValueError, match="metric must be one of"):
        _select(toy, tmp_path, {"kd": "weak"}, "middle", metric="logloss")


def test_without_a_validation_split_the_configured_student_goes_on(toy, tmp_path):
    m = toy["models"]
    chosen = selection.select({"kd": m["weak"]}, m["strong"], "", toy["config"],
                              str(tmp_path / "s"))
    assert (chosen.chosen, chosen.chosen_uri) == ("kd", m["weak"])
    assert "validation_fraction 0" in chosen.content["reason"]
    with pytest.raises(ValueError, match="1 kd variants but no validation split"):
        selection.select({"kd": m["weak"], "kd_v1": m["middle"]}, m["strong"], "",
                         toy["config"], str(tmp_path / "s2"))


def test_the_evaluation_report_shows_every_candidate(toy, tmp_path):
    chosen = _select(toy, tmp_path, {"kd": "weak", "kd_v1": "strong"}, "middle")
    result = evaluation.evaluate(chosen.chosen_uri, toy["data"], toy["config"],
                                 out_dir=str(tmp_path / "eval"), selection=chosen.content)
    assert result.metrics["selection"]["chosen"] == "kd_v1"
    page = (tmp_path / "eval" / evaluation.REPORT_FILE).read_text()
    assert "kd sweep: candidates on the validation split" in page
    assert all(name in page for name in ("kd_v1", "as configured", "without kd"))


# ---------------------------------------------------------------- real students


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Real DSSM students on the sample's training window: the baseline and a kd variant
    taught by noise at loss_weight 10. The validation split is the real one."""
    import keras

    from recdistill import steps
    from recdistill.data import sample

    root = tmp_path_factory.mktemp("students")
    generated = sample.generate_sample(4000, eval_fraction=0.2, seed=3)
    data = sample.write_dataset(str(root), sample.SAMPLE_FEATURES, generated.split("train"),
                                generated.split("eval"), batch_size=64)
    cfg = load_config(data.student_config)
    train, valid = str(root / "split" / "train"), str(root / "split" / "valid")
    selection.split_validation(data.train_path, cfg, train, valid, fraction=0.2, split="user")
    columns = pd.DataFrame(generated.split("train"))
    held = folds.buckets(columns[sample.USER_ID].astype(str).to_numpy(), 100,
                         salt=folds.HOLDOUT_SALT) < 20
    names = [f.name for f in sample.SAMPLE_FEATURES] + [sample.LABEL, sample.SOFT_LABEL]
    tables = {}
    for name, soft in (("noise", np.random.default_rng(0).normal(scale=10, size=len(columns))),):
        table = columns.assign(**{sample.SOFT_LABEL: soft})[names][~held]
        os.makedirs(root / name)
        table.to_csv(root / name / "part-00000.csv", header=False, index=False)
        tables[name] = str(root / name)
    steps_ = 150
    models = {name: str(root / "models" / name) for name in ("baseline", "noise")}
    # Seeded: unseeded, 150 steps once left the baseline below chance on validation in a CI
    # run (AUC 0.48), and the test measured that, not what kd taught by noise does.
    keras.utils.set_random_seed(0)
    steps.train_model(data.student_config, models["baseline"], train_uri=train,
                      without_kd=True, num_steps=steps_)
    keras.utils.set_random_seed(0)
    steps.train_model(data.student_config, models["noise"], train_uri=tables["noise"],
                      num_steps=steps_, kd_overrides={"loss_weight": 10.0}, variant_name="kd_v2")
    return {"cfg": cfg, "valid": valid, "models": models}


@pytest.mark.slow
def test_kd_that_hurts_loses_to_the_baseline_on_validation(trained, tmp_path):
    m = trained["models"]
    chosen = selection.select({"kd": m["noise"]}, m["baseline"], trained["valid"],
                              trained["cfg"], str(tmp_path / "s"))
    scores = {n: c["auc"] for n, c in chosen.content["candidates"].items()}
    assert chosen.chosen == "baseline", scores
