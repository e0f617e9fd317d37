"""bench/scale.py: the chain runs end to end at a tiny size, and its table says what it measured."""

import json
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest

import bench_scripts

SCRIPT = bench_scripts.path("scale")


def _module():
    return bench_scripts.load("scale")


def _result(seconds, rows_read, rss):
    return {"seconds": seconds, "rows_read": rows_read, "peak_rss_mb": rss}


def test_report_gives_seconds_per_million_rows_and_the_largest_to_smallest_ratios():
    scale = _module()
    curve = {rows: {step: _result(seconds, rows * 0.8, rss) for step in scale.STEPS}
             for rows, seconds, rss in ((1_000_000, 8.0, 1000.0), (4_000_000, 30.0, 1100.0),
                                        (16_000_000, 160.0, 1500.0))}
    text = scale.report(curve, SimpleNamespace(shard_rows=250_000, batch_size=4096))
    # 8 s over 0.8M rows = 10 s/M; 160 s over 12.8M rows = 12.5 s/M: ratio 1.25.
    assert "| train | 8 s, 10.0 s/M, 1000 MB | 30 s, 9.4 s/M, 1100 MB | " \
           "160 s, 12.5 s/M, 1500 MB | **1.25** | **1.50** |" in text
    assert "evaluate: s/M 16,000,000/1,000,000 rows 1.25 (goal <= 1.25), peak RSS 1.50" in text
    # A step a stopped run lacks at the largest size: its ratio is over the sizes it has.
    del curve[16_000_000]["train"]
    text = scale.report(curve, SimpleNamespace(shard_rows=250_000, batch_size=4096))
    assert "| train | 8 s, 10.0 s/M, 1000 MB | 30 s, 9.4 s/M, 1100 MB | - | **0.94** | **1.10** |" \
        in text
    assert "train: s/M 4,000,000/1,000,000 rows 0.94" in text


def test_report_reads_sizes_saved_by_separate_runs(tmp_path, capsys):
    scale = _module()
    paths = []
    for rows, seconds in ((1000, 1.0), (4000, 8.0)):
        paths.append(str(tmp_path / f"rows-{rows}.json"))
        with open(paths[-1], "w") as f:
            json.dump({rows: {step: _result(seconds, rows, 100.0) for step in scale.STEPS}}, f)
    curve = scale.main(["--report", *paths, "--out", str(tmp_path / "scale.md")])
    assert sorted(curve) == [1000, 4000]
    # 1000 s/M at 1k rows, 2000 s/M at 4k rows.
    assert "| soft_labels | 1 s, 1000.0 s/M, 100 MB | 8 s, 2000.0 s/M, 100 MB | **2.00** |" \
        in (tmp_path / "scale.md").read_text()
    assert "soft_labels: s/M 4,000/1,000 rows 2.00" in capsys.readouterr().out


@pytest.mark.slow
def test_a_tiny_size_runs_every_step_in_its_own_process_and_deletes_its_files(tmp_path):
    work = str(tmp_path)
    # A big parent, as pytest is once TensorFlow is loaded: a child's peak must not count the
    # pre-exec copy of it (ru_maxrss does).
    ballast = np.ones(64_000_000)  # 512 MB, touched
    curve = _module().main(["--sizes", "500", "--shard-rows", "250", "--batch-size", "100",
                            "--work", work, "--out", str(tmp_path / "scale.md")])
    steps = curve[500]
    assert (steps["generate"]["train"], steps["generate"]["eval"]) == (400, 100)
    assert steps["soft_labels"]["rows"] == 400 and steps["soft_labels"]["rows_read"] == 400
    # One epoch: two 200-row shards in batches of 100.
    assert steps["train"]["steps"] == 4 and math.isfinite(steps["train"]["loss"])
    assert steps["evaluate"]["rows"] == 100 and steps["evaluate"]["users"] > 2
    # Each peak is the child's own: the generator never loads TensorFlow, although the
    # teacher export (which does) ran in an earlier child.
    assert steps["generate"]["peak_rss_mb"] < 400 < steps["soft_labels"]["peak_rss_mb"]
    assert not os.path.exists(os.path.join(work, "rows-500"))
    with open(os.path.join(work, "rows-500.json")) as f:
        assert json.load(f)["500"]["train"]["steps"] == 4
    assert "| soft_labels | " in (tmp_path / "scale.md").read_text()
    assert ballast.sum() == ballast.size
