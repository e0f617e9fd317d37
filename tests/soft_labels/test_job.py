"""generate_soft_labels end to end on DirectRunner: rows, order, values, formats, stats,
atomic output, teacher/data mismatches and unscorable rows."""

import json
import os

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf

from soft_label_helpers import STUDENT_CONFIG, expected_logits, make_rows, student_config
from recdistill.data import filesystems, tables
from recdistill.soft_labels import job

pytestmark = pytest.mark.slow

INPUT_COLUMNS = ["clk", "user_id", "age_level", "occupation", "tag_brand_list", "adgroup_id",
                 "cate_id", "price"]


def _input_config(cfg):
    """The student's data_config without the soft-label field: how the raw data is laid out."""
    data_config = type(cfg.data_config)()
    data_config.CopyFrom(cfg.data_config)
    del data_config.input_fields[:]
    data_config.input_fields.extend(f for f in cfg.data_config.input_fields
                                    if f.input_name != "kd_soft")
    return data_config


def _write_input(cfg, out_dir, rows, shard_sizes):
    """Writes ``rows`` as shards of the given sizes in the config's format."""
    start = 0
    for i, size in enumerate(shard_sizes):
        table = pa.table({name: rows[name][start:start + size] for name in INPUT_COLUMNS})
        tables.write_table(table, out_dir, _input_config(cfg), shard=f"in-{i:02d}")
        start += size
    return out_dir


def _read_output(cfg, out_dir) -> pa.Table:
    return pa.concat_tables(tables.read_table(uri, cfg.data_config)
                            for uri in filesystems.expand(out_dir))


def _serving_logits(teacher, rows, index):
    """The teacher's logits for the rows at ``index``, straight from tf.saved_model.load."""
    signature = tf.saved_model.load(teacher).signatures["serving_default"]
    out = signature(user_id=tf.constant(list(rows["user_id"][index])),
                    cate_id=tf.constant(list(rows["cate_id"][index])),
                    price=tf.constant(rows["price"][index].astype(np.int64)))
    return out["logits"].numpy()


@pytest.mark.parametrize("input_type", ["CSVInput", "ParquetInput", "TFRecordInput"])
def test_every_row_comes_back_once_in_order_with_the_teacher_logit(teacher, tmp_path, input_type):
    cfg = student_config(input_type)
    rows = make_rows(230, seed=1)
    src = _write_input(cfg, str(tmp_path / "in"), rows, (100, 30, 100))
    stats = job.generate_soft_labels(teacher, src, str(tmp_path / "out"), cfg, batch_size=64)

    got = _read_output(cfg, str(tmp_path / "out"))
    assert got.column_names == INPUT_COLUMNS + ["kd_soft"]  # where input_fields put kd_soft
    for name in INPUT_COLUMNS:
        assert got.column(name).to_pylist() == list(rows[name]), name
    soft = got.column("kd_soft").to_numpy()
    assert got.schema.field("kd_soft").type == pa.float64()  # declared DOUBLE
    want = expected_logits(rows["user_id"], rows["cate_id"], rows["price"])
    np.testing.assert_allclose(soft, want, atol=1e-5)
    sample = np.array([0, 57, 99, 100, 129, 130, 229])
    np.testing.assert_allclose(soft[sample], _serving_logits(teacher, rows, sample), rtol=1e-6)

    assert stats["rows_read"] == stats["rows_written"] == 230 and stats["rows_rejected"] == 0
    assert stats["input_shards"] == 3 and stats["shards_written"] == 5  # 100 = 64 + 36
    kd = stats["soft_labels"]["kd_soft"]
    assert kd["mean"] == pytest.approx(want.mean(), abs=1e-5)
    assert kd["min"] == pytest.approx(want.min(), abs=1e-5)
    assert kd["quantiles"]["0.5"] == pytest.approx(np.median(want), abs=1e-5)
    from sklearn.metrics import roc_auc_score
    assert kd["teacher_auc"]["clk"] == pytest.approx(roc_auc_score(rows["clk"], soft), abs=1e-9)
    with open(tmp_path / "out" / "stats.json") as f:
        assert json.load(f) == stats
    assert filesystems.is_complete(str(tmp_path / "out"))


def test_probabilities_from_logits_and_undeclared_soft_label_goes_last(teacher, tmp_path):
    cfg = student_config("ParquetInput", label_is_logits=False)
    del cfg.data_config.input_fields[-1]  # kd_soft not declared: written as FLOAT, last
    rows = make_rows(50, seed=2)
    src = _write_input(cfg, str(tmp_path / "in"), rows, (50,))
    job.generate_soft_labels(teacher, src, str(tmp_path / "out"), cfg)
    got = tables.read_table(filesystems.expand(str(tmp_path / "out"))[0], cfg.data_config)
    import pyarrow.parquet as pq
    written = pq.read_table(filesystems.expand(str(tmp_path / "out"))[0])
    assert written.column_names == INPUT_COLUMNS + ["kd_soft"]
    assert written.schema.field("kd_soft").type == pa.float32()
    logits = expected_logits(rows["user_id"], rows["cate_id"], rows["price"])
    np.testing.assert_allclose(written.column("kd_soft").to_numpy(), 1 / (1 + np.exp(-logits)),
                               rtol=1e-5)
    assert got.num_rows == 50


def test_rerun_replaces_the_output_and_a_failed_run_leaves_it_alone(teacher, tmp_path):
    cfg = student_config("CSVInput")
    out = str(tmp_path / "out")
    big = _write_input(cfg, str(tmp_path / "big"), make_rows(120, 3), (60, 60))
    job.generate_soft_labels(teacher, big, out, cfg, batch_size=32)
    assert len(filesystems.expand(out)) == 4
    small = _write_input(cfg, str(tmp_path / "small"), make_rows(10, 4), (10,))
    job.generate_soft_labels(teacher, small, out, cfg, batch_size=32)
    assert len(filesystems.expand(out)) == 1  # no shard of the first run is left
    assert _read_output(cfg, out).num_rows == 10

    bad = make_rows(10, 5)
    bad["price"][3] = -1  # the teacher returns NaN for it
    bad_src = _write_input(cfg, str(tmp_path / "bad"), bad, (10,))
    with pytest.raises(Exception, match=r"in-00\.csv: row 4: teacher output is not finite: "
                                        r"kd_soft=nan"):
        job.generate_soft_labels(teacher, bad_src, out, cfg)
    assert _read_output(cfg, out).num_rows == 10  # still the previous good run
    assert sorted(os.listdir(tmp_path)) == ["bad", "big", "out", "small"]  # no temp dir left


def test_unscorable_rows_go_to_the_dead_letter_output_within_the_fraction(teacher, tmp_path):
    cfg = student_config("CSVInput")
    rows = make_rows(40, 6)
    rows["price"][[5, 30]] = -7
    src = _write_input(cfg, str(tmp_path / "in"), rows, (20, 20))
    stats = job.generate_soft_labels(teacher, src, str(tmp_path / "out"), cfg,
                                     max_bad_rows_fraction=0.1)
    assert (stats["rows_read"], stats["rows_written"], stats["rows_rejected"]) == (40, 38, 2)
    got = _read_output(cfg, str(tmp_path / "out"))
    keep = np.ones(40, bool)
    keep[[5, 30]] = False
    assert got.column("adgroup_id").to_pylist() == list(rows["adgroup_id"][keep])
    dead = []
    for name in sorted(os.listdir(tmp_path / "out" / job.DEAD_LETTER_SUBDIR)):
        with open(tmp_path / "out" / job.DEAD_LETTER_SUBDIR / name) as f:
            dead += [json.loads(line) for line in f]
    assert [(os.path.basename(d["file"]), d["row"]) for d in dead] == [("in-00.csv", 6),
                                                                        ("in-01.csv", 11)]
    assert dead[0]["values"]["adgroup_id"] == rows["adgroup_id"][5]
    assert "not finite" in dead[0]["reason"]

    with pytest.raises(ValueError, match=r"(?s)2 of 40 rows \(5\.00%\).*more than "
                                         r"max_bad_rows_fraction 0\.01.*in-00\.csv: row 6"):
        job.generate_soft_labels(teacher, src, str(tmp_path / "out2"), cfg,
                                 max_bad_rows_fraction=0.01)
    assert not os.path.exists(tmp_path / "out2")
    kept = tmp_path / ("out2" + job.DEAD_LETTER_SUFFIX)
    kept_rows = [json.loads(line) for name in sorted(os.listdir(kept)) if name.endswith(".jsonl")
                 for line in open(kept / name)]
    assert [(os.path.basename(d["file"]), d["row"]) for d in kept_rows] == [("in-00.csv", 6),
                                                                             ("in-01.csv", 11)]


def test_a_user_folder_is_never_replaced_by_the_output(teacher, tmp_path):
    cfg = student_config("CSVInput")
    src = _write_input(cfg, str(tmp_path / "in"), make_rows(10, 3), (10,))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"mine: already exists and is not an earlier "
                                              r"output .*stats\.json.*notes\.txt"):
        job.generate_soft_labels(teacher, src, str(mine), cfg)
    assert os.listdir(mine) == ["notes.txt"]
    job.generate_soft_labels(teacher, src, str(tmp_path / "out"), cfg)
    job.generate_soft_labels(teacher, src, str(tmp_path / "out"), cfg)  # its own: replaced
    assert _read_output(cfg, str(tmp_path / "out")).num_rows == 10


def test_a_malformed_row_fails_naming_file_and_row(teacher, tmp_path):
    cfg = student_config("CSVInput")
    src = _write_input(cfg, str(tmp_path / "in"), make_rows(5, 7), (5,))
    (path,) = filesystems.expand(src)
    with open(path) as f:
        lines = f.read().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",not-a-price"
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(Exception, match="in-00.csv.*3") as err:
        job.generate_soft_labels(teacher, src, str(tmp_path / "out"), cfg)
    assert "price" in str(err.value)
    assert not os.path.exists(tmp_path / "out")


def test_teacher_data_mismatch_fails_before_any_row_is_read(teacher, tmp_path):
    cfg = student_config("CSVInput")
    src = _write_input(cfg, str(tmp_path / "in"), make_rows(5, 8), (5,))
    cfg.data_config.input_fields[6].input_name = "category"  # the teacher reads cate_id
    with pytest.raises(ValueError, match=r"needs input columns \['cate_id'\].*expects "
                                         r"\[cate_id:string, price:int64, user_id:string\]"):
        job.generate_soft_labels(teacher, src, str(tmp_path / "out"), cfg)
    assert not os.path.exists(tmp_path / "out")


def test_missing_input_and_bad_fraction_are_reported(teacher, tmp_path):
    cfg = student_config("CSVInput")
    with pytest.raises(FileNotFoundError, match="no data files match"):
        job.generate_soft_labels(teacher, str(tmp_path / "nothing"), str(tmp_path / "o"), cfg)
    with pytest.raises(ValueError, match=r"max_bad_rows_fraction must be in \[0, 1\], got 2"):
        job.generate_soft_labels(teacher, str(tmp_path), str(tmp_path / "o"), cfg,
                                 max_bad_rows_fraction=2)
    with pytest.raises(TypeError, match="takes a loaded EasyRecConfig, got str"):
        job.generate_soft_labels(teacher, str(tmp_path), str(tmp_path / "o"), STUDENT_CONFIG)


def test_gcs_input_and_output_on_the_emulator(teacher, gcs_bucket, tmp_path):
    cfg = student_config("ParquetInput")
    rows = make_rows(30, 9)
    src = _write_input(cfg, f"{gcs_bucket}/in", rows, (30,))
    filesystems.copy_tree(teacher, f"{gcs_bucket}/teacher")
    stats = job.generate_soft_labels(f"{gcs_bucket}/teacher", src, f"{gcs_bucket}/out", cfg)
    assert stats["rows_written"] == 30
    got = _read_output(cfg, f"{gcs_bucket}/out")
    np.testing.assert_allclose(got.column("kd_soft").to_numpy(),
                               expected_logits(rows["user_id"], rows["cate_id"], rows["price"]),
                               atol=1e-5)
    assert filesystems.is_complete(f"{gcs_bucket}/out")


def _teacher_with_eval_auc(teacher, tmp_path, eval_auc):
    """A copy of the test teacher whose recdistill.json says it scored ``eval_auc`` on clk."""
    from recdistill import exported

    copy = str(tmp_path / f"teacher-{eval_auc}")
    filesystems.copy_tree(teacher, copy)
    metadata = exported.read_metadata(copy)
    metadata.update(label_fields=["clk"], eval_metrics={"eval_auc": eval_auc})
    exported.write_metadata(copy, metadata)
    return copy


def test_leak_guard_warns_when_the_soft_labels_repeat_the_clicks(teacher, tmp_path, caplog):
    from recdistill.soft_labels import stats as stats_lib

    cfg = student_config("ParquetInput")
    rows = make_rows(60, seed=12)
    logits = expected_logits(rows["user_id"], rows["cate_id"], rows["price"])
    rows["clk"] = (logits > np.median(logits)).astype(np.int32)  # the teacher "memorised" clk
    src = _write_input(cfg, str(tmp_path / "in"), rows, (60,))
    from sklearn.metrics import roc_auc_score
    scored_auc = roc_auc_score(rows["clk"], logits)
    assert scored_auc > 0.99

    leaky = _teacher_with_eval_auc(teacher, tmp_path, 0.8)
    stats = job.generate_soft_labels(leaky, src, str(tmp_path / "out"), cfg)
    kd = stats["soft_labels"]["kd_soft"]
    assert kd["teacher_eval_auc"] == {"clk": 0.8}
    assert kd["teacher_auc_gap"]["clk"] == pytest.approx(scored_auc - 0.8, abs=1e-6)
    guard = stats["leak_guard"]
    assert guard["repeats_clicks"] and guard["max_auc_gap"] == 0.05
    assert guard["warnings"][0].startswith("soft labels repeat the clicks: the teacher's AUC "
                                           "against 'clk' is ")
    assert any("soft labels repeat the clicks" in r.getMessage() for r in caplog.records
               if r.levelname == "WARNING")
    with open(tmp_path / "out" / "stats.json") as f:
        assert json.load(f)["leak_guard"] == guard
    assert stats_lib.metric_scalars(stats) == {
        "rows_read": 60.0, "rows_written": 60.0, "rows_rejected": 0.0,
        "teacher_auc_kd_soft": pytest.approx(scored_auc, abs=1e-6),
        "teacher_eval_auc_kd_soft": 0.8,
        "teacher_auc_gap_kd_soft": pytest.approx(scored_auc - 0.8, abs=1e-6),
        "soft_labels_repeat_clicks": 1.0}

    honest = _teacher_with_eval_auc(teacher, tmp_path, scored_auc - 0.04)
    stats = job.generate_soft_labels(honest, src, str(tmp_path / "out"), cfg)
    assert stats["leak_guard"] == {"max_auc_gap": 0.05, "repeats_clicks": False, "warnings": []}
    assert stats_lib.metric_scalars(stats)["soft_labels_repeat_clicks"] == 0.0
