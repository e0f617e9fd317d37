"""Splits below file level: Parquet row ranges planned from the footer, read in file order,
with bad rows named by input file and row."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from soft_label_helpers import make_rows, student_config
from recdistill import config as config_lib
from recdistill.data import tables
from recdistill.soft_labels import splits


def _input_config(input_type="ParquetInput"):
    return config_lib.without_kd(student_config(input_type)).data_config


def _parquet(path, rows, row_group_size):
    pq.write_table(pa.table(rows), str(path), row_group_size=row_group_size)
    return str(path)


def test_parquet_files_are_cut_into_even_row_ranges_gzip_csv_stays_whole(tmp_path):
    big = _parquet(tmp_path / "big.parquet", make_rows(10, 1), 3)
    small = _parquet(tmp_path / "small.parquet", make_rows(2, 2), 3)
    assert splits.plan_splits([big, small], _input_config(), rows_per_split=4) == [
        splits.Split(big, 0, 3), splits.Split(big, 3, 6), splits.Split(big, 6, 10),
        splits.Split(small, 0, 2)]
    assert splits.plan_splits(["a.csv.gz", "b.csv.gz"], _input_config("CSVInput"), 4) == [
        splits.Split("a.csv.gz"), splits.Split("b.csv.gz")]
    with pytest.raises(ValueError, match="rows_per_split must be >= 1, got 0"):
        splits.plan_splits([big], _input_config(), rows_per_split=0)


@pytest.mark.parametrize("row_group_size", [1, 4, 100])
def test_the_splits_read_back_every_row_once_in_file_order_and_typed(tmp_path, row_group_size):
    rows = make_rows(23, 3)
    path = _parquet(tmp_path / "in.parquet", rows, row_group_size)
    config = _input_config()
    got = []
    report = tables.ReadReport()
    for split in splits.plan_splits([path], config, rows_per_split=6):
        batches = list(splits.iter_batches(split, config, batch_size=4,
                                           tolerate_bad_rows=False, report=report))
        assert all(b.num_rows <= 4 for b in batches)
        got += batches
    table = pa.Table.from_batches(got)
    assert table.column("adgroup_id").to_pylist() == list(rows["adgroup_id"])
    assert table.schema.field("price").type == pa.int32()  # typed by the data_config
    assert table.schema.field("clk").type == pa.int32()
    assert report.rows_read == 23 and report.files == [path] * 4


def test_a_bad_row_is_named_by_input_file_and_row(tmp_path):
    rows = make_rows(10, 4)
    rows["price"] = np.array([str(p) for p in rows["price"]], dtype=object)
    rows["price"][7] = "cheap"  # row 8 of the file, in the second split
    path = _parquet(tmp_path / "in.parquet", rows, 3)
    config = _input_config()
    second = splits.Split(path, 5, 10)
    report = tables.ReadReport()
    batches = list(splits.iter_batches(second, config, batch_size=8, tolerate_bad_rows=True,
                                       report=report))
    assert sum(b.num_rows for b in batches) == 4 and report.rows_read == 5
    [bad] = report.bad_rows
    assert (bad.uri, bad.row, bad.field, bad.value) == (path, 8, "price", "cheap")
    with pytest.raises(tables.DataError, match=r"in\.parquet: row 8, field 'price'.*cheap"):
        list(splits.iter_batches(second, config, batch_size=8, tolerate_bad_rows=False,
                                 report=tables.ReadReport()))
