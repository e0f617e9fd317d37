"""Tests for recdistill.evaluation: toy models with known weights, metrics checked with numpy."""

import itertools
import json
import os
import re

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from recdistill import evaluation  # noqa: E402
from recdistill.config import load_config  # noqa: E402

import toy_models  # noqa: E402

WEIGHTS = {"student": (1.2, 0.1), "teacher": (1.5, 0.5), "champion": (1.0, -0.4),
           "baseline": (0.8, -0.6)}


# ---------------------------------------------------------------- independent references


def pairwise_auc(y, s) -> float:
    """AUC as the share of (positive, negative) pairs ordered right, ties counting half."""
    pos, neg = s[y == 1][:, None], s[y == 0][None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


def mean_user_auc(y, s, users) -> float:
    aucs = [pairwise_auc(y[users == u], s[users == u]) for u in np.unique(users)
            if 0 < y[users == u].sum() < (users == u).sum()]
    return float(np.mean(aucs))


def ranks(a):
    return np.argsort(np.argsort(a))


def kendall_by_pairs(a, b) -> float:
    signs = [np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
             for i, j in itertools.combinations(range(len(a)), 2)]
    return float(np.mean(signs))


def topk_share(a, b, users, k, m=None) -> float:
    """Mean over users of |top-k of b ∩ top-m of a| / k (m = k: the symmetric overlap)."""
    shares = []
    for u in np.unique(users):
        rows = np.flatnonzero(users == u)
        top_a = set(rows[np.argsort(-a[rows])[:m or k]])
        top_b = set(rows[np.argsort(-b[rows])[:k]])
        shares.append(len(top_a & top_b) / k)
    return float(np.mean(shares))


def mean_ndcg(s, t, users, k) -> float:
    """Mean over users of NDCG@k of the order of s with t as gains."""
    values = []
    for u in np.unique(users):
        gains = t[users == u]
        discounts = 1 / np.log2(np.arange(2, k + 2))
        ideal = (np.sort(gains)[::-1][:k] * discounts).sum()
        values.append((gains[np.argsort(-s[users == u])][:k] * discounts).sum() / ideal)
    return float(np.mean(values))


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    table = toy_models.make_table()
    data = toy_models.write_csv(root / "eval" / "part-00000.csv", table)
    models = {role: toy_models.save_linear(root / role, wx, wz)
              for role, (wx, wz) in WEIGHTS.items()}
    probs = {role: toy_models.linear_probs(table, wx, wz) for role, (wx, wz) in WEIGHTS.items()}
    return {"root": root, "table": table, "data": data, "models": models, "probs": probs,
            "config": load_config(toy_models.config_text())}


@pytest.fixture(scope="module")
def full(toy):
    """One evaluation with every comparison model and thresholds that pass."""
    thresholds = toy["root"] / "thresholds.yaml"
    thresholds.write_text("min_auc: 0.6\nmax_logloss: 0.9\nmax_auc_drop: 0.05\nmin_auc_gain: 0.0\n")
    out = str(toy["root"] / "eval_full")
    m = toy["models"]
    result = evaluation.evaluate(m["student"], toy["data"], toy["config"], teacher_uri=m["teacher"],
                                 champion_uri=m["champion"], baseline_uri=m["baseline"],
                                 thresholds=str(thresholds), out_dir=out, top_k=5, top_m=10)
    return result, out


# ---------------------------------------------------------------- behaviour


def test_metrics_of_every_model_match_numpy(toy, full):
    result, out = full
    y = toy["table"]["clk"]
    users = toy["table"]["user_id"]
    written = json.loads(open(os.path.join(out, evaluation.METRICS_FILE)).read())
    assert written == result.metrics
    assert set(written["models"]) == {"student", "teacher", "champion", "baseline"}
    for role, p in toy["probs"].items():
        m = written["models"][role]
        # 1e-4: the model's float32 sigmoid may tie or split a handful of the 22k pairs.
        assert m["auc"] == pytest.approx(pairwise_auc(y, p), abs=1e-4)
        assert m["gauc"] == pytest.approx(mean_user_auc(y, p, users), abs=1e-4)
        assert m["logloss"] == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)),
                                             rel=1e-5)
        assert m["calibration"] == pytest.approx(p.mean() / y.mean(), rel=1e-5)
        assert m["examples"] == 300
    assert written["label_field"] == "clk" and written["uid_field"] == "user_id"


def test_teacher_student_agreement_matches_numpy(toy, full):
    result, _ = full
    s, t = toy["probs"]["student"], toy["probs"]["teacher"]
    users = toy["table"]["user_id"]
    agreement = result.metrics["teacher_student"]
    assert agreement["spearman"] == pytest.approx(np.corrcoef(ranks(s), ranks(t))[0, 1], abs=1e-4)
    assert agreement["kendall"] == pytest.approx(kendall_by_pairs(s, t), abs=1e-4)
    per_user = [np.corrcoef(ranks(s[users == u]), ranks(t[users == u]))[0, 1]
                for u in np.unique(users)]
    assert agreement["spearman_per_user"] == pytest.approx(np.mean(per_user), abs=1e-4)
    assert agreement["users"] == 12
    assert agreement["topk_overlap"] == {"k": 5, "mean": pytest.approx(topk_share(s, t, users, 5)),
                                         "users": 12}


def test_consistency_with_the_teacher_per_session_matches_numpy(toy, full):
    result, out = full
    t, users = toy["probs"]["teacher"], toy["table"]["user_id"]
    consistency = result.metrics["teacher_consistency"]
    assert consistency["session_field"] == "user_id"  # GAUC's uid_field, no kd session_name
    assert (consistency["k"], consistency["m"]) == (5, 10)
    assert consistency["recall_sessions"] == consistency["ndcg_sessions"] == 12
    for role in ("student", "champion", "baseline"):
        p = toy["probs"][role]
        model = result.metrics["models"][role]
        # 2e-3: a float32 tie may swap two rows at the top-k border of one of 12 users.
        assert model["teacher_topk_recall"] == pytest.approx(topk_share(p, t, users, 5, 10),
                                                             abs=2e-3)
        assert model["teacher_ndcg"] == pytest.approx(mean_ndcg(p, t, users, 5), abs=2e-3)
        assert result.scalars[f"{role}_teacher_ndcg"] == model["teacher_ndcg"]
    assert result.metrics["models"]["teacher"]["teacher_ndcg"] is None
    assert consistency["ndcg"] == result.metrics["models"]["student"]["teacher_ndcg"]
    page = open(os.path.join(out, evaluation.REPORT_FILE)).read()
    assert "Consistency with the teacher&#x27;s ranking, per user_id" in page
    assert f"{consistency['ndcg']:.4f}" in page


def test_consistency_threshold_blesses_on_the_teacher_ndcg(toy, tmp_path):
    m = toy["models"]
    result = evaluation.evaluate(m["student"], toy["data"], toy["config"], teacher_uri=m["teacher"],
                                 thresholds="min_teacher_ndcg: 0.999\nmin_auc: 0.5",
                                 out_dir=str(tmp_path / "out"))
    assert result.blessed is False
    assert result.reasons[0].startswith("min_teacher_ndcg: teacher_ndcg 0.")


def test_metrics_json_names_the_evaluated_model_by_digest(toy, full):
    from recdistill import exported

    result, _ = full
    digest = exported.model_digest(toy["models"]["student"])
    assert digest.startswith("sha256:")
    assert result.metrics["model_digest"] == digest
    assert result.metrics["models"]["student"]["digest"] == digest
    assert result.metrics["models"]["teacher"]["digest"] == exported.model_digest(
        toy["models"]["teacher"])


def test_kd_gain_blessing_and_scalars(full):
    result, _ = full
    models = result.metrics["models"]
    gain = result.metrics["kd_gain"]
    assert gain["auc"] == pytest.approx(models["student"]["auc"] - models["baseline"]["auc"])
    assert gain["logloss_reduction"] == pytest.approx(
        models["baseline"]["logloss"] - models["student"]["logloss"])
    assert result.blessed is True and result.metrics["blessed"] is True
    assert [c["status"] for c in result.metrics["blessing"]["checks"]] == ["passed"] * 4
    assert result.scalars["student_auc"] == models["student"]["auc"]
    assert result.scalars["teacher_gauc"] == models["teacher"]["gauc"]
    assert result.scalars["kd_gain_auc"] == pytest.approx(gain["auc"])
    assert result.scalars["blessed"] == 1.0
    assert all(isinstance(v, float) for v in result.scalars.values())


def test_roc_and_confusion_matrix_for_kfp(toy, full):
    result, _ = full
    y, p = toy["table"]["clk"], toy["probs"]["student"]
    assert 2 <= len(result.roc["fpr"]) <= 200
    assert len(result.roc["fpr"]) == len(result.roc["tpr"]) == len(result.roc["thresholds"])
    predicted = (p >= 0.5).astype(int)
    expected = [[int(((y == t) & (predicted == q)).sum()) for q in (0, 1)] for t in (0, 1)]
    assert result.confusion_matrix["matrix"] == expected
    assert result.confusion_matrix["categories"] == ["0", "1"]


def test_report_is_self_contained_with_three_plots_and_the_table(full):
    result, out = full
    page = open(os.path.join(out, evaluation.REPORT_FILE)).read()
    assert result.report_uri == os.path.join(out, evaluation.REPORT_FILE)
    images = re.findall(r'<img alt="plot" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3 and all(len(i) > 1000 for i in images)
    assert not re.search(r'(src|href)="(http|//)', page)
    assert "Verdict: blessed" in page
    for role in WEIGHTS:
        assert f"<td>{role}</td>" in page
    assert f"{result.metrics['models']['student']['auc']:.4f}" in page


def test_no_thresholds_means_not_blessed_and_says_so(toy, tmp_path):
    result = evaluation.evaluate(toy["models"]["student"], toy["data"], toy["config"],
                                 out_dir=str(tmp_path / "out"))
    assert result.blessed is False
    assert "no thresholds configured" in result.reasons[0]
    written = json.loads((tmp_path / "out" / evaluation.METRICS_FILE).read_text())
    assert written["blessed"] is False and written["blessing"]["reasons"] == result.reasons
    assert written["teacher_student"] is None and written["kd_gain"] is None
    assert evaluation.read_evaluation(str(tmp_path / "out"))["blessed"] is False


def test_first_run_without_champion_skips_drop_check(toy, tmp_path):
    result = evaluation.evaluate(toy["models"]["student"], toy["data"], toy["config"],
                                 thresholds={"min_auc": 0.99, "max_auc_drop": 0.01},
                                 out_dir=str(tmp_path / "out"))
    statuses = {c["name"]: c["status"] for c in result.metrics["blessing"]["checks"]}
    assert statuses == {"min_auc": "failed", "max_auc_drop": "skipped"}
    assert result.blessed is False


def test_gauc_reduction_comes_from_the_config(toy, tmp_path):
    cfg = load_config(toy_models.config_text("mean_by_sample_num"))
    result = evaluation.evaluate(toy["models"]["student"], toy["data"], cfg,
                                 out_dir=str(tmp_path / "out"))
    y, users, p = toy["table"]["clk"], toy["table"]["user_id"], toy["probs"]["student"]
    qualifying = [u for u in np.unique(users) if 0 < y[users == u].sum() < (users == u).sum()]
    expected = np.average([pairwise_auc(y[users == u], p[users == u]) for u in qualifying],
                          weights=[(users == u).sum() for u in qualifying])
    assert result.metrics["gauc_reduction"] == "mean_by_sample_num"
    assert result.metrics["models"]["student"]["gauc"] == pytest.approx(expected, abs=1e-4)


def test_kd_config_reads_the_raw_eval_table_and_the_teacher_via_teacher_pred_name(toy,
                                                                                    tmp_path):
    # The student's config declares the soft label kd_soft; the eval table (toy["data"]) is the
    # raw one without it, as in the pipeline.
    data = toy["data"]
    cfg = load_config(toy_models.config_text(teacher_pred_name="logits_ctr"))
    wx, wz = WEIGHTS["teacher"]
    teacher = toy_models.save_linear(tmp_path / "mtl_teacher", wx, wz, head="ctr",
                                     with_probs=False)
    result = evaluation.evaluate(toy["models"]["student"], data, cfg, teacher_uri=teacher,
                                 out_dir=str(tmp_path / "out"))
    y, p = toy["table"]["clk"], toy["probs"]["teacher"]
    assert result.metrics["teacher_prediction"] == "logits_ctr"
    assert result.metrics["models"]["teacher"]["auc"] == pytest.approx(pairwise_auc(y, p), abs=1e-4)
    assert result.metrics["models"]["teacher"]["logloss"] == pytest.approx(
        -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)), rel=1e-5)
    with pytest.raises(ValueError, match=r"none of \['probs', 'logits'\]"):
        evaluation.evaluate(teacher, data, cfg, out_dir=str(tmp_path / "out2"))


def test_eval_table_with_the_soft_label_columns_is_accepted_and_they_are_ignored(toy, tmp_path):
    # What an EasyRec user has: the kd config's table, soft labels included (last column).
    table = dict(toy["table"], kd_soft=np.full(300, 0.25))
    data = tmp_path / "with_soft" / "part-0.csv"
    data.parent.mkdir()
    data.write_text("".join(",".join(str(v) for v in row) + "\n"
                            for row in zip(*(table[c] for c in (*toy_models.COLUMNS, "kd_soft")))))
    cfg = load_config(toy_models.config_text(teacher_pred_name="logits"))
    with_soft = evaluation.evaluate(toy["models"]["student"], str(data), cfg,
                                    out_dir=str(tmp_path / "a"))
    raw = evaluation.evaluate(toy["models"]["student"], toy["data"], cfg,
                              out_dir=str(tmp_path / "b"))
    assert with_soft.metrics["models"]["student"]["auc"] == raw.metrics["models"]["student"]["auc"]
    assert with_soft.metrics["examples"] == 300


def test_out_dir_is_replaced_only_when_it_is_an_earlier_evaluation(toy, tmp_path):
    user_folder = tmp_path / "mine"
    user_folder.mkdir()
    (user_folder / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"mine: already exists and is not an earlier "
                                              r"output of this step .*notes.txt"):
        evaluation.evaluate(toy["models"]["student"], toy["data"], toy["config"],
                            out_dir=str(user_folder))
    assert (user_folder / "notes.txt").read_text() == "keep me"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        evaluation.evaluate(toy["models"]["student"], toy["data"], toy["config"],
                            out_dir=str(a_file))
    earlier = tmp_path / "earlier"
    (tmp_path / "empty").mkdir()
    for out in (earlier, earlier, tmp_path / "empty"):  # new, an earlier output, empty
        evaluation.evaluate(toy["models"]["student"], toy["data"], toy["config"],
                            out_dir=str(out))
    assert sorted(os.listdir(earlier)) == ["_SUCCESS", "metrics.json", "report.html"]


def test_config_must_be_loaded(toy, tmp_path):
    with pytest.raises(TypeError, match="load_config"):
        evaluation.evaluate(toy["models"]["student"], toy["data"], toy_models.config_text(),
                            out_dir=str(tmp_path / "out"))


# ---------------------------------------------------------------- bad input


def test_nan_predictions_name_the_model(toy, tmp_path):
    broken = toy_models.save_linear(tmp_path / "nan_model", float("nan"))
    with pytest.raises(ValueError) as err:
        evaluation.evaluate(toy["models"]["student"], toy["data"], toy["config"],
                            teacher_uri=broken, out_dir=str(tmp_path / "out"))
    message = str(err.value)
    assert broken in message and "(teacher)" in message
    assert "nan for rows [0, 1, 2, 3, 4]" in message
    assert toy["data"] in message
    assert not (tmp_path / "out").exists()


def test_missing_model_files_name_the_path(toy, tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved_model.pb"):
        evaluation.evaluate(str(tmp_path / "nothing"), toy["data"], toy["config"],
                            out_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_model_without_serving_signature_is_rejected(toy, tmp_path):
    wrong = toy_models.save_linear(tmp_path / "wrong", 1.0, signature="serve_raw")
    with pytest.raises(ValueError, match="no 'serving_default'"):
        evaluation.evaluate(wrong, toy["data"], toy["config"], out_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_uid_field_the_table_lacks_is_named(toy, tmp_path):
    cfg = load_config(toy_models.config_text().replace('uid_field: "user_id"',
                                                       'uid_field: "member_id"'))
    with pytest.raises(ValueError, match="'member_id' is not in data_config.input_fields"):
        evaluation.evaluate(toy["models"]["student"], toy["data"], cfg,
                            out_dir=str(tmp_path / "out"))


def test_eval_table_without_the_label_column_is_named(toy, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = toy["table"]
    folder = tmp_path / "no_label"
    folder.mkdir()
    pq.write_table(pa.table({"user_id": table["user_id"], "x": table["x"].astype(np.float32),
                             "z": table["z"].astype(np.float32)}), folder / "part-0.parquet")
    cfg = load_config(toy_models.config_text().replace("input_type: CSVInput",
                                                       "input_type: ParquetInput"))
    with pytest.raises(ValueError, match="clk"):
        evaluation.evaluate(toy["models"]["student"], str(folder), cfg,
                            out_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_bad_thresholds_fail_before_any_model_is_scored(toy, tmp_path):
    with pytest.raises(ValueError, match="unknown threshold 'min_accuracy'"):
        evaluation.evaluate(toy["models"]["student"], toy["data"], toy["config"],
                            thresholds={"min_accuracy": 0.5}, out_dir=str(tmp_path / "out"))


def test_evaluation_written_to_gcs(toy, gcs_bucket):
    from recdistill.data import filesystems

    out = f"{gcs_bucket}/evals/run1"
    result = evaluation.evaluate(toy["models"]["student"], toy["data"], toy["config"],
                                 thresholds={"min_auc": 0.5}, out_dir=out)
    assert result.metrics_uri == f"{out}/{evaluation.METRICS_FILE}"
    assert filesystems.exists(result.report_uri)
    assert evaluation.read_evaluation(out)["blessed"] is True


def test_sessions_default_to_the_gauc_uid_field_or_take_session_field():
    cfg = load_config(toy_models.config_text())
    assert evaluation._target(cfg).session_field == "user_id"
    assert evaluation._target(cfg, "x").session_field == "x"


def test_streaming_in_small_batches_gives_the_same_metrics(toy, full, tmp_path, monkeypatch):
    # 300 rows in batches of 7: labels, user ids and scores are stitched across 43 batches.
    monkeypatch.setattr(evaluation, "PREDICT_BATCH_SIZE", 7)
    m = toy["models"]
    streamed = evaluation.evaluate(m["student"], toy["data"], toy["config"],
                                   teacher_uri=m["teacher"], champion_uri=m["champion"],
                                   baseline_uri=m["baseline"], out_dir=str(tmp_path / "out"),
                                   top_k=5, top_m=10)
    def numbers(tree, prefix=""):
        """Flat {path: value} of a metrics.json subtree."""
        if isinstance(tree, dict):
            return {k: v for key, value in tree.items()
                    for k, v in numbers(value, f"{prefix}/{key}").items()}
        return {prefix: tree}

    for key in ("models", "teacher_student", "teacher_consistency", "kd_gain"):
        got, expected = numbers(streamed.metrics[key]), numbers(full[0].metrics[key])
        # 1e-4: TF rounds a batch of 7 apart from one of 300, which may tie or split a pair.
        assert got == pytest.approx(expected, abs=1e-4)
