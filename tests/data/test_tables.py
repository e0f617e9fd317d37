"""Tests for recdistill.data.tables: typed reading, streaming, writing, bad rows."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.protobuf import text_format

from recdistill.data import filesystems as fsys
from recdistill.data import csv_format, tables
from recdistill.protos import pipeline_pb2

FIELDS = """
input_fields { input_name: "label" input_type: INT32 }
input_fields { input_name: "user" input_type: STRING default_val: "anon" }
input_fields { input_name: "price" input_type: DOUBLE }
input_fields { input_name: "weight" input_type: FLOAT default_val: "1.5" }
input_fields { input_name: "clicked" input_type: BOOL }
input_fields { input_name: "ts" input_type: INT64 default_val: "7" }
"""
FORMATS = ["CSVInput", "ParquetInput", "TFRecordInput"]


def _config(input_type="CSVInput", extra=""):
    return text_format.Parse(f"input_type: {input_type}\n{extra}\n{FIELDS}",
                             pipeline_pb2.DatasetConfig())


def _table():
    """Three rows covering every type, with nulls that must come back as defaults."""
    return pa.table({
        "label": pa.array([1, 0, None], pa.int32()),
        "user": pa.array(["u1", None, "u,3 \"q\""], pa.string()),
        "price": pa.array([2.5, None, -1e10], pa.float64()),
        "weight": pa.array([0.25, 3.0, None], pa.float32()),
        "clicked": pa.array([True, None, False], pa.bool_()),
        "ts": pa.array([2**40, None, -5], pa.int64()),
    })


EXPECTED = {  # _table() with defaults filled in
    "label": [1, 0, 0],
    "user": ["u1", "anon", "u,3 \"q\""],
    "price": [2.5, 0.0, -1e10],
    "weight": [0.25, 3.0, 1.5],
    "clicked": [True, False, False],
    "ts": [2**40, 7, -5],
}
TYPES = [pa.int32(), pa.string(), pa.float64(), pa.float32(), pa.bool_(), pa.int64()]


@pytest.fixture(params=["local", "gcs"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path)
    return request.getfixturevalue("gcs_bucket") + "/data"


def _write_text(uri, text):
    with fsys.open_output(uri) as f:
        f.write(text.encode())


@pytest.mark.parametrize("input_type", FORMATS)
def test_round_trip_types_and_defaults(root, input_type):
    config = _config(input_type)
    written = tables.write_table(_table(), fsys.join(root, "out"), config)
    assert written.endswith(tables.EXTENSIONS[config.input_type])
    table = tables.read_table(fsys.join(root, "out"), config)
    assert table.schema.types == TYPES
    assert table.to_pydict() == EXPECTED


@pytest.mark.parametrize("input_type", FORMATS)
def test_iter_batches_streams_exact_sizes_with_fields(root, input_type):
    config = _config(input_type)
    big = pa.concat_tables([_table()] * 4)  # 12 rows
    tables.write_table(big, fsys.join(root, "out"), config, shard="part-00001")
    tables.write_table(_table(), fsys.join(root, "out"), config, shard="part-00002")
    batches = list(tables.iter_batches(fsys.join(root, "out"), config, batch_size=5,
                                       fields=["ts", "user"]))
    assert [b.num_rows for b in batches] == [5, 5, 5]
    assert batches[0].schema.names == ["ts", "user"]
    ts = [v for b in batches for v in b.column("ts").to_pylist()]
    assert ts == EXPECTED["ts"] * 5


@pytest.mark.parametrize("input_type", ["CSVInputV2", "CSVInputEx", "BatchTFRecordInput"])
def test_every_easyrec_input_type_of_a_format_reads_and_writes_as_that_format(tmp_path,
                                                                             input_type):
    config = _config(input_type)
    written = tables.write_table(_table(), str(tmp_path), config)
    assert written.endswith(".csv" if "CSV" in input_type else ".tfrecord.gz")
    assert tables.read_table(str(tmp_path), config).to_pydict() == EXPECTED


def test_tfrecord_is_readable_by_tensorflow(tmp_path):
    import tensorflow as tf

    uri = tables.write_table(_table(), str(tmp_path), _config("TFRecordInput"))
    records = list(tf.data.TFRecordDataset(uri, compression_type="GZIP"))
    example = tf.train.Example.FromString(records[0].numpy())
    assert example.features.feature["user"].bytes_list.value == [b"u1"]
    assert example.features.feature["ts"].int64_list.value == [2**40]
    # Nulls are features without a value, which tf.io.parse_example reads as its default.
    second = tf.train.Example.FromString(records[1].numpy()).features.feature
    assert "user" not in second or second["user"].WhichOneof("kind") is None
    parsed = tf.io.parse_example([r.numpy() for r in records],
                                 {"user": tf.io.FixedLenFeature([], tf.string, "anon")})
    assert parsed["user"].numpy().tolist() == [b"u1", b"anon", b'u,3 "q"']


def test_reads_uncompressed_tfrecord_written_by_tensorflow(tmp_path):
    import tensorflow as tf

    path = str(tmp_path / "x.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for label in [3, 4]:
            example = tf.train.Example(features=tf.train.Features(feature={
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}))
            writer.write(example.SerializeToString())
    table = tables.read_table(path, _config("TFRecordInput"), fields=["label", "weight"])
    assert table.to_pydict() == {"label": [3, 4], "weight": [1.5, 1.5]}


def test_csv_text_with_defaults_separator_and_header(tmp_path):
    path = tmp_path / "x.tsv"
    # Header in a different order than input_fields: columns are matched by name.
    path.write_text("ts\tlabel\tuser\tprice\tweight\tclicked\n"
                    "1\t1\tbob\t2\t\ttrue\n"
                    "\t0\t\t3.5\t0.5\t0\n")
    config = _config("CSVInput", 'separator: "\\t"\nwith_header: true')
    table = tables.read_table(str(path), config, fields=["user", "weight", "ts", "label"])
    assert table.to_pydict() == {"user": ["bob", "anon"], "weight": [1.5, 0.5],
                                 "ts": [1, 7], "label": [1, 0]}


def test_csv_header_missing_a_field_names_it(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("label,user\n1,a\n")
    with pytest.raises(tables.DataError, match=r"x.csv: header has no column price"):
        tables.read_table(str(path), _config("CSVInput", "with_header: true"))


def test_unparsable_number_names_file_row_and_field(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("1,a,1,1,1,1\n\n1,b,oops,1,1,1\n")
    with pytest.raises(tables.DataError) as err:
        tables.read_table(str(path), _config())
    message = str(err.value)
    assert f"{path}: row 3, field 'price'" in message
    assert "'oops'" in message and "max_bad_rows_fraction" in message


def test_wrong_column_count_names_the_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("1,a,1,1,1,1\n1,a;1;1;1;1\n")
    with pytest.raises(tables.DataError, match=r"bad.csv: row 2: has 2 columns, expected 6"):
        tables.read_table(str(path), _config())


def test_row_numbers_stay_exact_across_csv_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_format, "_BLOCK_BYTES", 64)  # many blocks
    lines = ["1,a,1,1,1,1"] * 60
    lines[9] = "1,a,1"  # skipped by the parser, shifts later rows
    lines[19] = ""  # blank line, not a row
    lines[49] = "1,a,x,1,1,1"
    (tmp_path / "x.csv").write_text("\n".join(lines) + "\n")
    report = tables.ReadReport()
    table = tables.read_table(str(tmp_path), _config(), max_bad_rows_fraction=0.5,
                              report=report)
    assert [(r.row, r.field) for r in report.bad_rows] == [(10, ""), (50, "price")]
    assert table.num_rows == 57
    assert report.rows_read == 59 and report.bad_row_count == 2 and report.blank_lines == 1


def test_tolerated_bad_rows_are_skipped_and_reported(tmp_path):
    (tmp_path / "a.csv").write_text("1,a,1,1,1,1\n1,b,2,1,1,99999999999\n")
    (tmp_path / "b.csv").write_text("0,c,3,1,1,1\n2147483648,d,4,1,1,1\n0,e,5,1,1,1\n")
    report = tables.ReadReport()
    table = tables.read_table(str(tmp_path / "*.csv"), _config(), max_bad_rows_fraction=0.4,
                              report=report)
    assert table.column("user").to_pylist() == ["a", "b", "c", "e"]
    assert report.rows_read == 5
    assert [(r.uri.rsplit("/", 1)[-1], r.row, r.field, r.value) for r in report.bad_rows] == [
        ("b.csv", 2, "label", "2147483648")]  # int32 overflow; 99999999999 fits INT64
    assert report.bad_fraction == pytest.approx(0.2)


def test_too_many_bad_rows_raise_with_counts(tmp_path):
    (tmp_path / "a.csv").write_text("1,a,1,1,1,1\nx,b,1,1,1,1\ny,c,1,1,1,1\n")
    with pytest.raises(tables.DataError, match=r"2 of 3 rows are bad"):
        tables.read_table(str(tmp_path), _config(), max_bad_rows_fraction=0.5)


def test_iter_batches_reports_bad_rows_as_it_streams(tmp_path):
    (tmp_path / "a.csv").write_text("1,a,1,1,1,1\n1,b,1,1,1\n1,c,1,1,1,1\n")
    report = tables.ReadReport()
    batches = tables.iter_batches(str(tmp_path), _config(), batch_size=10,
                                  max_bad_rows_fraction=0.5, report=report)
    assert [b.column("user").to_pylist() for b in batches] == [["a", "c"]]
    assert [r.row for r in report.bad_rows] == [2]


def test_tfrecord_bad_records_name_the_record(tmp_path):
    import tensorflow as tf

    def example(**features):
        return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()

    def ints(*v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=v))

    path = str(tmp_path / "x.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(example(label=ints(1)))
        writer.write(example(label=tf.train.Feature(float_list=tf.train.FloatList(value=[1.0]))))
        writer.write(example(label=ints(1, 2)))
        writer.write(example(label=ints(2**40)))
        writer.write(example(label=ints(0)))
    config = _config("TFRecordInput")
    with pytest.raises(tables.DataError, match=r"x.tfrecord: row 2, field 'label': is stored as "
                                               r"float_list, expected int64_list"):
        tables.read_table(path, config)
    report = tables.ReadReport()
    table = tables.read_table(path, config, fields=["label"], max_bad_rows_fraction=0.8,
                              report=report)
    assert table.column("label").to_pylist() == [1, 0]
    assert [r.row for r in report.bad_rows] == [2, 3, 4]


def test_parquet_missing_column_names_it(tmp_path):
    pq.write_table(pa.table({"label": [1]}), str(tmp_path / "x.parquet"))
    with pytest.raises(tables.DataError, match=r"x.parquet: no column user"):
        tables.read_table(str(tmp_path), _config("ParquetInput"), fields=["label", "user"])


def test_parquet_values_are_cast_to_field_types(tmp_path):
    pq.write_table(pa.table({"label": pa.array([1, 2], pa.int64()),
                             "weight": pa.array([0.5, None], pa.float64())}),
                   str(tmp_path / "x.parquet"))
    table = tables.read_table(str(tmp_path), _config("ParquetInput"), fields=["weight", "label"])
    assert table.schema.types == [pa.float32(), pa.int32()]
    assert table.to_pydict() == {"weight": [0.5, 1.5], "label": [1, 2]}


def test_write_rejects_columns_outside_input_fields(tmp_path):
    table = _table().append_column("extra", pa.array([1, 2, 3]))
    with pytest.raises(ValueError, match="extra are not in data_config.input_fields"):
        tables.write_table(table, str(tmp_path), _config("ParquetInput"))


def test_csv_write_needs_every_field(tmp_path):
    with pytest.raises(ValueError, match="lacks price"):
        tables.write_table(_table().drop_columns(["price"]), str(tmp_path), _config())


def test_unknown_field_and_bad_default_are_config_errors(tmp_path):
    with pytest.raises(ValueError, match="'nope' are not in data_config.input_fields"):
        tables.read_table(str(tmp_path), _config(), fields=["nope"])
    config = _config()
    config.input_fields[0].default_val = "zero"
    with pytest.raises(ValueError, match="'label': default_val 'zero' is not a valid INT32"):
        tables.read_table(str(tmp_path), config)


def test_unsupported_input_type_lists_the_supported():
    with pytest.raises(ValueError, match="OdpsInput is not supported; use one of CSVInput"):
        tables.write_table(_table(), "/tmp/unused", _config("OdpsInput"))
