"""The soft-label job on byte-range splits of CSV and TFRecord files (DirectRunner): rows,
order, dead letters and their row numbers are those of a whole-file run."""

import gzip
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from soft_label_helpers import make_rows, student_config
from recdistill import config as config_lib
from recdistill.data import filesystems, tables
from recdistill.soft_labels import job

pytestmark = pytest.mark.slow


def _run(teacher, cfg, src, out, rows_per_split):
    stats = job.generate_soft_labels(teacher, src, out, cfg, max_bad_rows_fraction=0.2,
                                     batch_size=4, rows_per_split=rows_per_split)
    written = type(cfg.data_config)()
    written.CopyFrom(cfg.data_config)
    written.with_header = False  # the job writes CSV without a header
    got = pa.concat_tables(tables.read_table(uri, written) for uri in filesystems.expand(out))
    dead = []
    folder = os.path.join(out, job.DEAD_LETTER_SUBDIR)
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as f:
            dead += [json.loads(line) for line in f]
    return stats, got, sorted((d["file"], d["row"], d["reason"]) for d in dead)


@pytest.mark.parametrize("input_type", ["CSVInput", "TFRecordInput"])
def test_byte_range_splits_give_the_whole_file_runs_rows_and_dead_letters(teacher, tmp_path,
                                                                          input_type):
    cfg = student_config(input_type)
    cfg.data_config.with_header = input_type == "CSVInput"  # the header is line 1
    rows = make_rows(30, seed=21)
    rows["price"][14] = -7  # not scorable: a dead letter from the second split
    (tmp_path / "in").mkdir()
    if input_type == "CSVInput":
        src = str(tmp_path / "in" / "big.csv")
        rows["price"] = np.array([str(p) for p in rows["price"]], dtype=object)
        rows["price"][21] = "cheap"  # not readable: line 23, in the third split
        pacsv.write_csv(pa.table(rows), src)
    else:
        written = tables.write_table(pa.table(rows), str(tmp_path / "gz"),
                                     config_lib.without_kd(cfg).data_config, shard="big")
        src = str(tmp_path / "in" / "big.tfrecord")
        with open(written, "rb") as f, open(src, "wb") as out:
            out.write(gzip.decompress(f.read()))

    stats, got, dead = _run(teacher, cfg, src, str(tmp_path / "split"), rows_per_split=10)
    whole_stats, whole, whole_dead = _run(teacher, cfg, src, str(tmp_path / "whole"),
                                          rows_per_split=1000)

    assert (stats["input_splits"], whole_stats["input_splits"]) == (
        (4, 1) if input_type == "CSVInput" else (3, 1))
    assert got.equals(whole) and dead == whole_dead
    bad = [21] if input_type == "CSVInput" else []
    assert got.column("adgroup_id").to_pylist() == [
        a for i, a in enumerate(rows["adgroup_id"]) if i not in [14] + bad]
    # An unscorable row is named by data row, as in a whole-file run; an unreadable one by
    # its line, as the reader numbers it (header included).
    assert [(f, r) for f, r, _ in dead] == [(src, 15)] + [(src, 23)] * len(bad)
    assert (stats["rows_read"], stats["rows_rejected"]) == (30, 1 + len(bad))
