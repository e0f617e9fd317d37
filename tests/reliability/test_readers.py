"""Bad inputs to the readers, one row each (issue 15): what a user hands recdistill, which
reader sees it, and the exception and message fragment they must get -- or the rows they
must get when the input is fine after all.

Readers: ``check`` is the data check every training run starts with
(``datasets.check_inputs``), ``train`` the tf.data input it then reads
(``datasets.make_dataset``, iterated), ``table`` the Arrow reader the soft-label job and
evaluation use (``tables.read_table``).
"""

import dataclasses
import gzip
import re
from typing import Callable, Optional

import pyarrow.parquet as pq
import pytest

from recdistill import config as config_lib
from recdistill.data import datasets, sample, tables

ROWS = 100  # sample rows; train.csv gets ~80 of them


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory):
    written = sample.write_sample_data(str(tmp_path_factory.mktemp("reliability")), rows=ROWS)
    cfg = config_lib.load_config(written.student_nokd_config)
    with open(written.train_path) as f:
        lines = f.read().splitlines()
    return cfg, lines


def _fields(cfg):
    return [f.input_name for f in cfg.data_config.input_fields]


def _text(lines):
    return "\n".join(lines) + "\n"


def _set(lines, line, column, value):
    """``lines`` with the value at 1-based ``line`` and 0-based ``column`` replaced."""
    lines = list(lines)
    values = lines[line - 1].split(",")
    values[column] = value
    lines[line - 1] = ",".join(values)
    return lines


def _typed_table(tmp, cfg, lines):
    return tables.read_table(_write(tmp, _text(lines), "typed.csv"), cfg.data_config)


def _write(tmp, content, name):
    path = tmp / name
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return str(path)


@dataclasses.dataclass
class Case:
    """One bad input.

    Attributes:
        name: what the user did.
        make: writes the input into a folder from (folder, config, train.csv lines);
            returns its URI.
        input_type: the data_config.input_type the user set.
        readers: which readers are tried.
        error: the exception expected, or None when the input must read fine.
        fragment: a regex the message must contain.
    """

    name: str
    make: Callable
    input_type: str = "CSVInput"
    readers: tuple = ("check", "train", "table")
    error: Optional[type] = ValueError
    fragment: Optional[str] = None


CASES = [
    Case("NaN in a FLOAT feature (15.2)",
         lambda tmp, cfg, lines: _write(tmp, _text(_set(lines, 3, 6, "nan")), "train.csv"),
         readers=("check", "train"),
         fragment=r"train\.csv: feature column 'price' has 1 NaN/inf value\(s\), first at line 3 "
                  r"\(nan\)\. Fix or drop those rows"),
    Case("inf in a FLOAT feature (15.2)",
         lambda tmp, cfg, lines: _write(tmp, _text(_set(lines, 7, 8, "-inf")), "train.csv"),
         readers=("check",),
         fragment=r"train\.csv: feature column 'user_item_ctr' has 1 NaN/inf value\(s\), first "
                  r"at line 7"),
    Case("non-numeric value in a FLOAT feature (15.5)",
         lambda tmp, cfg, lines: _write(tmp, _text(_set(lines, 5, 1, "abc")), "train.csv"),
         error=tables.DataError,
         fragment=r"train\.csv: row 5, field 'age': not a valid FLOAT; fix the value or "
                  r"input_type of 'age'.*got 'abc'"),
    Case("TFRecordInput on a CSV file (15.5)",
         lambda tmp, cfg, lines: _write(tmp, _text(lines), "train.csv"), input_type="TFRecordInput",
         error=tables.DataError,
         fragment=r"train\.csv: data_config\.input_type is TFRecordInput, but the file is text "
                  r"starting 'u\d+,.*' \(CSV\? input_type: CSVInput\)\. Set input_type to the "
                  r"files' format"),
    Case("ParquetInput on a CSV file (15.9)",
         lambda tmp, cfg, lines: _write(tmp, _text(lines), "train.csv"), input_type="ParquetInput",
         error=tables.DataError,
         fragment=r"train\.csv: data_config\.input_type is ParquetInput, but the file is text"),
    Case("CSVInput on a Parquet file (15.9)",
         lambda tmp, cfg, lines: _parquet(tmp, cfg, lines),
         error=tables.DataError,
         fragment=r"train\.parquet: data_config\.input_type is CSVInput, but the file is a "
                  r"Parquet file \(input_type: ParquetInput\)"),
    Case("CSVInput on a TFRecord file",
         lambda tmp, cfg, lines: _tfrecord(tmp, cfg, lines),
         error=tables.DataError,
         fragment=r"train\.tfrecord\.gz: data_config\.input_type is CSVInput, but the file is "
                  r"binary data \(a TFRecord file\? input_type: TFRecordInput\)"),
    Case("CSV text that is not UTF-8",
         lambda tmp, cfg, lines: _write(tmp, _text(_set(lines, 2, 2, "Müller")).encode("latin1"),
                                        "train.csv"),
         error=tables.DataError,
         fragment=r"train\.csv: the file is not UTF-8 text\. Re-encode it as UTF-8"),
    Case("gzip CSV named .gz is read through gzip (15.9)",
         lambda tmp, cfg, lines: _write(tmp, gzip.compress(_text(lines).encode()), "train.csv.gz"),
         error=None),
    Case("gzip CSV without the .gz name (15.9)",
         lambda tmp, cfg, lines: _write(tmp, gzip.compress(_text(lines).encode()), "train.csv"),
         error=tables.DataError,
         fragment=r"train\.csv: the file is gzip-compressed but its name does not end in \.gz; "
                  r"rename it to train\.csv\.gz"),
    Case("a missing middle column is not blamed on the label (15.9)",
         lambda tmp, cfg, lines: _write(tmp, _text([",".join(v for i, v in enumerate(line.split(","))
                                                   if i != 1) for line in lines]), "train.csv"),
         readers=("check", "table"),
         fragment=r"train\.csv: .*Without a header, columns are matched by position: line 1 has "
                  r"10 values for 11 input_fields, so the missing column may be any of them, not "
                  r"only the last; judging by line 1's values it is one of age\. Write a header"),
    Case("a header row without with_header (15.9)",
         lambda tmp, cfg, lines: _write(tmp, _text([",".join(_fields(cfg))] + lines), "train.csv"),
         error=tables.DataError,
         fragment=r"train\.csv: line 1 is a header \(user_id, age, .*\) but data_config\.with_header "
                  r"is false, so it would be read as data\. Set with_header: true"),
]


def _parquet(tmp, cfg, lines):
    pq.write_table(_typed_table(tmp, cfg, lines), tmp / "train.parquet")
    return str(tmp / "train.parquet")


def _tfrecord(tmp, cfg, lines):
    tfrecord_config = type(cfg.data_config)()
    tfrecord_config.CopyFrom(cfg.data_config)
    tfrecord_config.input_type = tfrecord_config.TFRecordInput
    return tables.write_table(_typed_table(tmp, cfg, lines), str(tmp), tfrecord_config,
                              shard="train")


def _read(reader, uri, cfg):
    features = [n for n in _fields(cfg) if n != "clk"]
    if reader == "check":
        return datasets.check_inputs(uri, cfg, columns=features, labels=["clk"])
    if reader == "train":
        dataset = datasets.make_dataset(uri, cfg, columns=features, labels=["clk"],
                                        batch_size=32, shuffle=False, num_epochs=1)
        return sum(int(labels["clk"].shape[0]) for _, labels in dataset)
    return tables.read_table(uri, cfg.data_config).num_rows


@pytest.mark.parametrize("case,reader", [(c, r) for c in CASES for r in c.readers],
                         ids=lambda value: value if isinstance(value, str) else
                         re.sub(r"\W+", "-", value.name).strip("-"))
def test_reader_matrix(sample_data, tmp_path, case, reader):
    cfg, lines = sample_data
    cfg = type(cfg).FromString(cfg.SerializeToString())
    cfg.data_config.input_type = cfg.data_config.InputType.Value(case.input_type)
    uri = case.make(tmp_path, cfg, lines)
    if case.error is None:
        assert _read(reader, uri, cfg) == len(lines)
        return
    with pytest.raises(case.error) as raised:
        _read(reader, uri, cfg)
    assert re.search(case.fragment, str(raised.value)), str(raised.value)
