"""Each named transform of the soft-label job on its own, in a TestPipeline with assert_that."""

import json

import numpy as np
import pyarrow as pa
import pytest
from apache_beam import Create, Map
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from soft_label_helpers import expected_logits, make_rows, student_config
from recdistill import config as config_lib
from recdistill import outputs
from recdistill.data import tables
from recdistill.soft_labels import handlers, splits, stats, transforms

pytestmark = pytest.mark.slow

Key = transforms.ChunkKey
Split = splits.Split


def _configs(input_type="CSVInput"):
    cfg = student_config(input_type)
    return cfg, config_lib.without_kd(cfg).data_config, cfg.data_config


def _batch(rows, start, stop) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({k: pa.array(list(v[start:stop])) for k, v in rows.items()})


def _kd_spec():
    return handlers.SoftLabelSpec("kd_soft", "logits", outputs.LOGITS, as_logits=True,
                                  dtype=np.float64)


def test_read_shards_chunks_rows_in_order_and_sends_bad_rows_to_dead_letters(tmp_path):
    _, input_config, _ = _configs()
    rows = make_rows(7, seed=3)
    tables.write_table(pa.table({k: v[:5] for k, v in rows.items()}), str(tmp_path),
                       input_config, shard="a")
    tables.write_table(pa.table({k: v[5:] for k, v in rows.items()}), str(tmp_path),
                       input_config, shard="b")
    a, b = str(tmp_path / "a.csv"), str(tmp_path / "b.csv")
    with open(a) as f:
        lines = f.read().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",not-a-price"  # line 2 of a.csv
    with open(a, "w") as f:
        f.write("\n".join(lines) + "\n")

    with TestPipeline() as p:
        read = (p | Create([(0, Split(a)), (1, Split(b))])
                | transforms.ReadShards(input_config, batch_size=2, tolerate_bad_rows=True))
        assert_that(read[transforms.CHUNKS] | "Keys" >> Map(lambda kb: (kb[0], kb[1]["adgroup_id"]
                                                              .to_pylist())),
                    equal_to([(Key(0, 0, a, 0), [rows["adgroup_id"][0], rows["adgroup_id"][2]]),
                              (Key(0, 1, a, 2), [rows["adgroup_id"][3], rows["adgroup_id"][4]]),
                              (Key(1, 0, b, 0), list(rows["adgroup_id"][5:]))]),
                    label="chunks")
        assert_that(read[transforms.DEAD_LETTERS]
                    | "Dead" >> Map(lambda kr: (kr[0], [(r.row, r.values) for r in kr[1]])),
                    equal_to([(Key(0, 0, a, 0), [(2, {"price": "not-a-price"})])]),
                    label="dead letters")
        assert_that(read[transforms.READ_SUMMARIES] | "Read" >> Map(lambda s: s.rows_read),
                    equal_to([5, 2]), label="rows read")


def test_read_shards_fails_on_the_first_bad_row_when_not_tolerating(tmp_path):
    _, input_config, _ = _configs()
    path = tmp_path / "a.csv"
    path.write_text("1,u,1,student,b1,ad1,c,12\n0,u,1,student,b1,ad2,c,oops\n")
    with pytest.raises(Exception, match=r"a\.csv: row 2, field 'price'.*oops"):
        with TestPipeline() as p:
            _ = (p | Create([(0, Split(str(path)))])
                 | transforms.ReadShards(input_config, batch_size=8))


def test_score_with_teacher_runs_the_handler_once_per_keyed_chunk(teacher):
    rows = make_rows(9, seed=4)
    chunks = [(Key(0, 0, "f", 0), _batch(rows, 0, 6)), (Key(0, 1, "f", 6), _batch(rows, 6, 9))]
    want = expected_logits(rows["user_id"], rows["cate_id"], rows["price"])

    def logits(item):
        key, result = item
        return key.chunk, [round(float(v), 4) for v in result.inference["logits"]]

    with TestPipeline() as p:
        scored = (p | Create(chunks)
                  | transforms.ScoreWithTeacher(handlers.TeacherModelHandler(teacher)))
        assert_that(scored | Map(logits),
                    equal_to([(0, [round(v, 4) for v in want[:6]]),
                              (1, [round(v, 4) for v in want[6:]])]))


def test_attach_soft_labels_orders_columns_and_rejects_non_finite_rows():
    _, _, output_config = _configs()
    rows = make_rows(4, seed=5)
    key = Key(2, 1, "in.csv", 10)
    scored = [(key, PredictionResult(_batch(rows, 0, 4),
                                     {"logits": np.array([0.5, np.nan, -1.0, 2.0])}))]
    with TestPipeline() as p:
        out = (p | Create(scored)
               | transforms.AttachSoftLabels([_kd_spec()], output_config,
                                             tolerate_bad_rows=True))
        assert_that(out[transforms.CHUNKS] | "Cols" >> Map(lambda kt: (kt[0], kt[1].column_names,
                                                             kt[1]["kd_soft"].to_pylist(),
                                                             kt[1]["adgroup_id"].to_pylist())),
                    equal_to([(key, [f.input_name for f in output_config.input_fields],
                               [0.5, -1.0, 2.0],
                               [rows["adgroup_id"][i] for i in (0, 2, 3)])]),
                    label="chunks")
        assert_that(out[transforms.DEAD_LETTERS]
                    | "Dead" >> Map(lambda kr: [(r.row, r.reason, r.values["adgroup_id"])
                                                 for r in kr[1]]),
                    equal_to([[(12, "teacher output is not finite: kd_soft=nan",
                                rows["adgroup_id"][1])]]),
                    label="dead letters")

    with pytest.raises(Exception, match=r"in\.csv: row 12: teacher output is not finite"):
        with TestPipeline() as p:
            _ = (p | Create(scored)
                 | transforms.AttachSoftLabels([_kd_spec()], output_config))


def test_write_shards_writes_one_named_shard_per_chunk_and_summarises_it(tmp_path):
    _, _, output_config = _configs("ParquetInput")
    rows = make_rows(5, seed=6)
    table = pa.table({**{k: v for k, v in rows.items()},
                      "kd_soft": np.linspace(-1, 1, 5)})
    with TestPipeline() as p:
        summaries = (p | Create([(Key(3, 7, "in", 0), table)])
                     | transforms.WriteShards(str(tmp_path), output_config,
                                              soft_columns=["kd_soft"], hard_labels=["clk"]))
        assert_that(summaries | Map(lambda s: (s.rows_written, s.shards_written,
                                                s.total["kd_soft"], list(s.sample["clk"]))),
                    equal_to([(5, 1, pytest.approx(0.0), list(rows["clk"]))]))
    written = tables.read_table(str(tmp_path / "part-00003-00007.parquet"), output_config)
    assert written["kd_soft"].to_pylist() == pytest.approx(list(np.linspace(-1, 1, 5)))
    assert written["adgroup_id"].to_pylist() == list(rows["adgroup_id"])


def test_dead_letters_writes_one_json_lines_file_per_chunk(tmp_path):
    key = Key(0, 2, "in.csv", 0)
    letters = [(key, [transforms.Rejected("in.csv", 9, "bad price", {"price": "x"})]),
               (key, [transforms.Rejected("in.csv", 4, "not finite", {"price": -1})])]
    with TestPipeline() as p:
        summaries = p | Create(letters) | transforms.DeadLetters(str(tmp_path))
        assert_that(summaries | Map(lambda s: (s.rows_rejected, s.rejected_examples)),
                    equal_to([(2, ["in.csv: row 4: not finite", "in.csv: row 9: bad price"])]))
    with open(tmp_path / transforms.DEAD_LETTER_SUBDIR / "part-00000-00002.jsonl") as f:
        got = [json.loads(line) for line in f]
    assert [(d["row"], d["values"]) for d in got] == [(4, {"price": -1}), (9, {"price": "x"})]


def test_write_stats_merges_every_summary_into_stats_json(tmp_path):
    scores = np.array([0.1, 0.9, 0.4, 0.7])
    labels = np.array([0, 1, 0, 1])
    summaries = [stats.SoftLabelSummary(rows_read=5),
                 stats.SoftLabelSummary.of_chunk({"kd_soft": scores[:2]}, {"clk": labels[:2]},
                                                 rows_read=0, rejected=[], seed=1),
                 stats.SoftLabelSummary.of_chunk({"kd_soft": scores[2:]}, {"clk": labels[2:]},
                                                 rows_read=0, rejected=[], seed=2),
                 stats.SoftLabelSummary(rows_rejected=1, rejected_examples=["f: row 3: bad"])]
    with TestPipeline() as p:
        content = (p | Create(summaries)
                   | transforms.WriteStats(str(tmp_path), [_kd_spec()], ["clk"]))
        assert_that(content | Map(lambda c: (c["rows_read"], c["rows_written"],
                                              c["rows_rejected"],
                                              c["soft_labels"]["kd_soft"]["teacher_auc"]["clk"],
                                              c["soft_labels"]["kd_soft"]["max"])),
                    equal_to([(5, 4, 1, 1.0, 0.9)]))
    with open(tmp_path / stats.STATS_FILE) as f:
        written = json.load(f)
    assert written["rejected_examples"] == ["f: row 3: bad"]
    assert written["soft_labels"]["kd_soft"]["mean"] == pytest.approx(0.525)


def test_write_stats_merges_summaries_as_they_come_with_the_sample_bounded(tmp_path):
    """A combine, lifted into the writing stage, not a GroupByKey that held every chunk's
    sampled rows in one place (peak RSS grew with the data, bench/scale.py)."""
    rng = np.random.default_rng(0)
    chunks = [stats.SoftLabelSummary.of_chunk({"kd_soft": rng.normal(size=50)},
                                              {"clk": rng.integers(0, 2, 50)}, rows_read=50,
                                              rejected=[], seed=seed, sample_size=30)
              for seed in range(6)]
    merge = transforms.MergeSummaries(sample_size=30)
    halves = [merge.create_accumulator(), merge.create_accumulator()]
    for index, chunk in enumerate(chunks):  # two bundles, each merging as its chunks arrive
        halves[index % 2] = merge.add_input(halves[index % 2], chunk)
        assert len(halves[index % 2].sample_keys) <= 30
    total = merge.extract_output(merge.merge_accumulators(halves))
    in_order = chunks[0]
    for chunk in chunks[1:]:
        in_order = in_order.merge(chunk, 30)
    # The bottom-k sample does not depend on how the chunks were grouped.
    assert (total.rows_written, total.rows_read) == (300, 300)
    np.testing.assert_array_equal(np.sort(total.sample_keys), np.sort(in_order.sample_keys))
    assert total.maximum["kd_soft"] == max(c.maximum["kd_soft"] for c in chunks)

    with TestPipeline() as p:
        _ = p | Create(chunks) | transforms.WriteStats(str(tmp_path), [_kd_spec()], ["clk"],
                                                        sample_size=30)
        graph = p.to_runner_api()
    by_urn = {}
    for transform in graph.components.transforms.values():
        by_urn.setdefault(transform.spec.urn, []).append(transform.unique_name)
    assert any(name.endswith("/Merge/CombinePerKey")
               for name in by_urn["beam:transform:combine_per_key:v1"])
    assert all("/Merge/" in name for name in by_urn["beam:transform:group_by_key:v1"]
               if name.startswith("WriteStats"))
    with open(tmp_path / stats.STATS_FILE) as f:
        written = json.load(f)
    assert (written["rows_written"], written["sample_rows"]) == (300, 30)


def test_the_job_merges_written_summaries_in_the_writing_stage_before_any_flatten(tmp_path):
    """Behind the Flatten with the read and dead-letter summaries, the in-process runner held
    every chunk's sampled rows until the end (bench/scale.py: 2.4 GB at 12.8M rows)."""
    from recdistill.soft_labels import job

    _, input_config, output_config = _configs()
    p = TestPipeline()  # built, not run: the graph is the point (no teacher exists here)
    job.label_rows(p | Create([]), handlers.TeacherModelHandler(str(tmp_path)), [_kd_spec()],
                   input_config=input_config, output_config=output_config,
                   hard_labels=["clk"], out_dir=str(tmp_path), tolerate_bad_rows=False,
                   sample_size=30)
    graph = p.to_runner_api()
    transforms_ = graph.components.transforms
    producer = {pcoll: t.unique_name for t in transforms_.values() if not t.subtransforms
                for pcoll in t.outputs.values()}
    merge = next(t for t in transforms_.values() if t.unique_name == "MergeWritten/KeyWithVoid")
    (source,) = merge.inputs.values()
    assert producer[source].startswith("WriteShards")
