"""Splits below file level for CSV and TFRecord: byte ranges planned by one pass over the
file, each read by the format's own reader, rows numbered as in the whole file."""

import gzip
import logging

import pytest
import tensorflow as tf

from soft_label_helpers import student_config
from recdistill import config as config_lib
from recdistill.data import csv_format, filesystems, formats, tables, tfrecord_format
from recdistill.data import schema as schema_lib
from recdistill.data.bad_rows import BadRowPolicy
from recdistill.soft_labels import splits

WHOLE = 10 ** 9  # rows_per_split that keeps any test file whole


def _config(input_type="CSVInput", header=False):
    cfg = config_lib.without_kd(student_config(input_type)).data_config
    cfg.with_header = header
    return cfg


def _line(i: int, price="") -> str:
    return f"{i % 2},u{i},{i % 7},student,b{i}|b{i + 1},ad{i},c{i},{price or i + 1}"


def _csv(tmp_path, lines, *, header=False, end="\n", last_end=True, name="in.csv") -> str:
    names = [f.input_name for f in _config().input_fields]
    text = end.join(([",".join(names)] if header else []) + lines) + (end if last_end else "")
    path = tmp_path / name
    path.write_bytes(text.encode())
    return str(path)


def _read(path, cfg, rows_per_split):
    """The splits, and (adgroup_id, price) of the rows and (row, field, value) of the bad
    rows read through them, in split order."""
    units = splits.plan_splits([path], cfg, rows_per_split)
    rows, bad = [], []
    for unit in units:
        report = tables.ReadReport()
        for batch in splits.iter_batches(unit, cfg, batch_size=3, tolerate_bad_rows=True,
                                         report=report):
            rows += zip(batch.column("adgroup_id").to_pylist(),
                        batch.column("price").to_pylist())
        bad += [(r.uri, r.row, r.field, r.value) for r in report.bad_rows]
    return units, rows, bad


def _range_rows(path, cfg, start, stop, rows_before):
    """(row number, adgroup_id) of each row csv_format.read_range reads."""
    schema = schema_lib.for_fields(cfg, None)
    policy = BadRowPolicy(0.0, tables.ReadReport())
    out = []
    for numbered in csv_format.read_range(path, cfg, schema, policy, (),
                                          formats.ByteRange(start, stop, rows_before)):
        out += zip(numbered.rows.tolist(), numbered.batch.column("adgroup_id").to_pylist())
    return out


@pytest.mark.parametrize("header", [False, True])
@pytest.mark.parametrize("end", ["\n", "\r\n"])
@pytest.mark.parametrize("last_end", [True, False])
@pytest.mark.parametrize("block_bytes", [csv_format._PLAN_BLOCK_BYTES, 7])
def test_csv_ranges_read_what_the_whole_file_gives(tmp_path, monkeypatch, header, end,
                                                   last_end, block_bytes):
    monkeypatch.setattr(csv_format, "_PLAN_BLOCK_BYTES", block_bytes)  # 7: lines span blocks
    lines = [_line(i) for i in range(10)]
    lines[3] = ""  # a blank line: a row number, not a row
    lines[6] = _line(6, price="cheap")  # a bad row, in the second range
    path = _csv(tmp_path, lines, header=header, end=end, last_end=last_end)
    cfg = _config(header=header)
    units, rows, bad = _read(path, cfg, rows_per_split=4)
    assert [u.byte_range.rows_before for u in units] == [0, 4, 8]  # lines, header included
    assert [(u.start, u.stop) for u in units] == (  # data rows: a header is not one
        [(0, 3), (3, 7), (7, None)] if header else [(0, 4), (4, 8), (8, None)])
    data = open(path, "rb").read()
    assert all(u.byte_range.start == 0 or data[u.byte_range.start - 1:u.byte_range.start] == b"\n"
               for u in units)  # each range starts at a line start
    whole_units, whole_rows, whole_bad = _read(path, cfg, WHOLE)
    assert whole_units == [splits.Split(path)]
    assert rows == whole_rows and bad == whole_bad
    assert [a for a, _ in rows] == [f"ad{i}" for i in range(10) if i not in (3, 6)]
    assert bad == [(path, 7 + header, "price", "cheap")]  # the file's line, header included


def test_a_bad_row_in_the_second_split_names_the_files_line(tmp_path):
    lines = [_line(i) for i in range(9)]
    lines[5] = _line(5, price="cheap")  # line 6: the second split's second row
    path = _csv(tmp_path, lines)
    cfg = _config()
    second = splits.plan_splits([path], cfg, rows_per_split=4)[1]
    assert (second.start, second.stop, second.byte_range.rows_before) == (4, 8, 4)
    report = tables.ReadReport()
    got = list(splits.iter_batches(second, cfg, batch_size=8, tolerate_bad_rows=True,
                                   report=report))
    assert sum(b.num_rows for b in got) == 3 and report.rows_read == 4
    [bad] = report.bad_rows
    assert (bad.uri, bad.row, bad.field, bad.value) == (path, 6, "price", "cheap")
    with pytest.raises(tables.DataError, match=r"in\.csv: row 6, field 'price'.*cheap"):
        list(splits.iter_batches(second, cfg, batch_size=8, tolerate_bad_rows=False,
                                 report=tables.ReadReport()))


def test_a_range_owns_the_rows_whose_first_byte_lies_in_it(tmp_path):
    path = _csv(tmp_path, [_line(i) for i in range(6)])
    data = open(path, "rb").read()
    line_start = [0] + [i + 1 for i, b in enumerate(data) if b == ord("\n")][:-1]
    cfg = _config()
    a, b = line_start[2], line_start[4]  # lines 3 and 4
    assert _range_rows(path, cfg, a, b, 2) == [(3, "ad2"), (4, "ad3")]
    # One byte later, line 3 starts before the range: it belongs to the range before.
    assert _range_rows(path, cfg, a + 1, b, 3) == [(4, "ad3")]
    assert _range_rows(path, cfg, 0, a + 1, 0) == [(1, "ad0"), (2, "ad1"), (3, "ad2")]
    assert _range_rows(path, cfg, b, len(data), 4) == [(5, "ad4"), (6, "ad5")]
    assert _range_rows(path, cfg, len(data), len(data), 6) == []


def test_an_empty_or_header_only_file_is_one_whole_split(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert csv_format.plan_ranges(str(empty), _config(), 1) == ([], "")
    only_header = _csv(tmp_path, [], header=True, name="header.csv")
    assert csv_format.plan_ranges(only_header, _config(header=True), 1) == ([], "")
    assert _read(only_header, _config(header=True), rows_per_split=1) == (
        [splits.Split(only_header)], [], [])


def test_quoted_values_split_at_row_ends_only_not_at_a_quoted_line_break(tmp_path):
    lines = [_line(i).replace(f"u{i},", f'"u{i}",') for i in range(8)]
    lines[2] = lines[2].replace('"u2"', '"u2\nstill u2"')  # a line break inside a value
    lines[5] = lines[5].replace('"u5"', '"say ""hi"""')  # doubled quotes inside one
    path = _csv(tmp_path, lines)
    cfg = _config()
    ranges, why = csv_format.plan_ranges(path, cfg, 2)
    assert why == "" and [r.rows_before for r in ranges] == [0, 2, 4, 6]
    data = open(path, "rb").read()
    assert data[ranges[1].start:].startswith(b"0,\"u2\nstill u2\"")  # the row, not its 2nd line
    units, rows, bad = _read(path, cfg, rows_per_split=2)
    assert len(units) == 4 and (rows, bad) == _read(path, cfg, WHOLE)[1:]
    assert [a for a, _ in rows] == [f"ad{i}" for i in range(8)]


@pytest.mark.parametrize("text, name, why", [
    (b'0,u"1,1,student,b,ad1,c,2\n' * 3, "in.csv", "quote character the CSV parser may read"),
    (b'0,"u1"x,1,student,b,ad1,c,2\n' * 3, "in.csv", "quote character the CSV parser may read"),
    (b"0,u1,1,student,b,ad1,c,2\n" * 2 + b'0,"u1,1,student,b,ad1,c,2\n', "in.csv",
     "quoted value that is never closed"),
    (b"0,u1,1,student,b,ad1,c,2\r" * 3, "in.csv", "carriage return"),
    (gzip.compress(b"0,u1,1,student,b,ad1,c,2\n" * 3, mtime=0), "in.csv.gz", "gzip-compressed"),
], ids=["stray quote", "text after a quoted value", "unclosed quote", "carriage returns", "gzip"])
def test_a_csv_whose_row_ends_are_unknown_is_read_whole_and_says_why(tmp_path, caplog, text,
                                                                     name, why):
    path = tmp_path / name
    path.write_bytes(text)
    with caplog.at_level(logging.INFO, logger=splits.__name__):
        assert splits.plan_splits([str(path)], _config(), 1) == [splits.Split(str(path))]
    assert why in caplog.text and "read whole" in caplog.text and str(path) in caplog.text


def _example(i: int, price=None) -> bytes:
    strings = {"user_id": f"u{i}", "age_level": str(i % 7), "occupation": "student",
               "tag_brand_list": f"b{i}", "adgroup_id": f"ad{i}", "cate_id": f"c{i}"}
    feature = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))
               for k, v in strings.items()}
    feature["clk"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2]))
    feature["price"] = (tf.train.Feature(int64_list=tf.train.Int64List(value=[i + 1]))
                        if price is None else price)
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _tfrecord(tmp_path, records, name="in.tfrecord") -> str:
    path = str(tmp_path / name)
    with tf.io.TFRecordWriter(path) as out:
        for record in records:
            out.write(record)
    return path


@pytest.mark.parametrize("block_bytes", [tfrecord_format._PLAN_BLOCK_BYTES, 64])
def test_tfrecord_ranges_start_at_records_and_read_what_the_whole_file_gives(
        tmp_path, monkeypatch, block_bytes):
    monkeypatch.setattr(tfrecord_format, "_PLAN_BLOCK_BYTES", block_bytes)  # 64: seeks
    records = [_example(i) for i in range(10)]
    # Bad rows in the second range: record 6 stores price as floats, record 8 (longer than a
    # 64-byte block, so the walk seeks over it) holds many prices.
    records[5] = _example(5, tf.train.Feature(float_list=tf.train.FloatList(value=[1.5])))
    records[7] = _example(7, tf.train.Feature(int64_list=tf.train.Int64List(value=[1] * 99)))
    path = _tfrecord(tmp_path, records)
    cfg = _config("TFRecordInput")
    units, rows, bad = _read(path, cfg, rows_per_split=4)
    sizes = [len(r) + 16 for r in records]
    assert [(u.start, u.stop, u.byte_range) for u in units] == [
        (0, 4, formats.ByteRange(0, sum(sizes[:4]), 0)),
        (4, 8, formats.ByteRange(sum(sizes[:4]), sum(sizes[:8]), 4)),
        (8, None, formats.ByteRange(sum(sizes[:8]), sum(sizes), 8))]
    assert (rows, bad[:1]) == (_read(path, cfg, WHOLE)[1], [(path, 6, "price", "float_list")])
    assert [a for a, _ in rows] == [f"ad{i}" for i in range(10) if i not in (5, 7)]
    assert [r for _, r, _, _ in bad] == [6, 8]  # the file's record numbers


def test_a_tfrecord_file_that_cannot_be_walked_is_read_whole(tmp_path, caplog):
    cfg = _config("TFRecordInput")
    path = _tfrecord(tmp_path, [_example(i) for i in range(3)])
    data = open(path, "rb").read()
    (tmp_path / "cut.tfrecord").write_bytes(data[:-5])
    (tmp_path / "in.tfrecord.gz").write_bytes(gzip.compress(data))
    (tmp_path / "empty.tfrecord").write_bytes(b"")
    assert splits.plan_splits([path], cfg, 1)[2].byte_range.rows_before == 2
    with caplog.at_level(logging.INFO, logger=splits.__name__):
        for name in ("cut.tfrecord", "in.tfrecord.gz", "empty.tfrecord"):
            uri = str(tmp_path / name)
            assert splits.plan_splits([uri], cfg, 1) == [splits.Split(uri)]
    assert "not framed as TFRecord records to its end" in caplog.text
    assert "gzip-compressed" in caplog.text
    with pytest.raises(tables.DataError, match="cut.tfrecord"):  # the reader names the file
        _read(str(tmp_path / "cut.tfrecord"), cfg, 1)


@pytest.mark.parametrize("store", ["s3_bucket", "gcs_bucket"])
def test_ranges_of_a_file_on_an_object_store_are_read_by_ranged_reads(tmp_path, request, store):
    bucket = request.getfixturevalue(store)
    lines = [_line(i) for i in range(9)]
    lines[5] = _line(5, price="cheap")
    local_csv = _csv(tmp_path, lines)
    local_tfrecord = _tfrecord(tmp_path, [_example(i) for i in range(9)])
    for local, input_type in ((local_csv, "CSVInput"), (local_tfrecord, "TFRecordInput")):
        remote = f"{bucket}/in/{local.rsplit('/', 1)[-1]}"
        filesystems.copy_tree(local, remote)
        cfg = _config(input_type)
        units, rows, bad = _read(remote, cfg, rows_per_split=4)
        local_units, local_rows, local_bad = _read(local, cfg, rows_per_split=4)
        assert [u.byte_range for u in units] == [u.byte_range for u in local_units]
        assert len(units) == 3 and rows == local_rows
        assert bad == [(remote, r, f, v) for _, r, f, v in local_bad]


def test_a_file_whose_first_mib_projects_few_rows_is_not_passed_over(tmp_path):
    cfg = _config()
    long_lines = [_line(i).replace(f"u{i},", f"u{i}{'x' * 1000},") for i in range(1100)]
    path = _csv(tmp_path, long_lines + [_line(i) for i in range(30_000)])  # ~1.1 + ~1.3 MB
    assert csv_format.plan_ranges(path, cfg, 20_000) == ([], "")  # ~2,300 rows projected
    ranges, _ = csv_format.plan_ranges(path, cfg, 1_000)  # ~2,300 > 1,000: the whole pass
    assert len(ranges) == 32 and ranges[-1].rows_before == 31_000


def test_a_tfrecord_file_whose_first_mib_projects_few_records_is_not_walked_on(tmp_path):
    cfg = _config("TFRecordInput")
    path = _tfrecord(tmp_path, [b"x" * 120_000] * 10 + [b"y" * 100] * 5000)  # 1.2 + 0.6 MB
    assert tfrecord_format.plan_ranges(path, cfg, 1000) == ([], "")  # ~15 records projected
    ranges, _ = tfrecord_format.plan_ranges(path, cfg, 10)  # ~15 > 10: the whole walk
    assert len(ranges) == 501 and ranges[-1].rows_before == 5000
