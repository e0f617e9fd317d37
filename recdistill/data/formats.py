"""The one registry of data formats: EasyRec ``input_type`` -> the module that reads it.

EasyRec names several input types for the same file layout (``CSVInput``, ``CSVInputV2`` and
``CSVInputEx`` all read delimited text; ``TFRecordInput`` and ``BatchTFRecordInput`` both read
TFRecord files of ``tf.Example``). Every reader in recdistill -- the Arrow tables the
soft-label job and evaluation read (``recdistill.data.tables``) and the ``tf.data`` pipeline
training reads (``recdistill.data.datasets``) -- resolves the input type here, and
``config.load_config`` rejects any other input type when the config loads, so a config that
trains is one the soft-label job can read too.

A format module (``csv_format``, ``parquet_format``, ``tfrecord_format``) provides:

- ``read(uri, data_config, schema, policy, optional)``: numbered, typed record batches of one
  file (``optional``: input fields a file may lack);
- ``write(table, uri, data_config)``: one shard;
- ``file_columns(uri, data_config, optional)``: the columns a file holds, and a note for a
  user whose needed column is missing (CSV without a header matches columns by position).

CSV and TFRecord also cut one file into byte ranges that workers read in parallel:
``plan_ranges(uri, data_config, rows_per_split)`` (the ranges, or none and why the file is
read whole) and ``read_range(uri, data_config, schema, policy, optional, byte_range)``
(``read`` of one range, rows numbered as in the whole file).

This module imports only ``recdistill.protos`` (``config`` imports it); the format modules are
imported on first use.
"""

import dataclasses
import importlib
from types import ModuleType
from typing import NamedTuple

from recdistill.protos import pipeline_pb2

_Config = pipeline_pb2.DatasetConfig


@dataclasses.dataclass(frozen=True)
class Format:
    """One file layout.

    Attributes:
        name: short name ("csv", "parquet", "tfrecord").
        extension: the file name ending of a shard this format writes.
        input_types: the EasyRec ``data_config.input_type`` values read as this format.
        module_name: the module that reads and writes it.
    """

    name: str
    extension: str
    input_types: tuple[int, ...]
    module_name: str

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(self.module_name)


class ByteRange(NamedTuple):
    """Bytes ``[start, stop)`` of one file: the rows that start in them, a unit of parallel
    reading.

    Attributes:
        start: first byte.
        stop: byte after the last.
        rows_before: the file's rows before the range's first one (lines for CSV, header
            included; records for TFRecord), so rows keep their numbers in the file.
    """

    start: int
    stop: int
    rows_before: int


#: Bytes of a file a range planner reads before it may judge the file too small to cut.
ESTIMATE_BYTES = 1 << 20


def few_rows(rows: int, read: int, size: int, rows_per_split: int) -> bool:
    """Whether ``rows`` rows in the first ``read`` bytes of a file of ``size`` bytes project
    to at most ``rows_per_split`` rows in all, judged once ``ESTIMATE_BYTES`` are read: then
    the file is not worth a planning pass to its end (a folder of small shards costs the
    launcher a MiB each). A wrong guess only leaves a file whole, never misreads it."""
    return ESTIMATE_BYTES <= read < size and rows * size <= rows_per_split * read


CSV = Format("csv", ".csv", (_Config.CSVInput, _Config.CSVInputV2, _Config.CSVInputEx),
             "recdistill.data.csv_format")
PARQUET = Format("parquet", ".parquet", (_Config.ParquetInput,),
                 "recdistill.data.parquet_format")
TFRECORD = Format("tfrecord", ".tfrecord.gz",
                  (_Config.TFRecordInput, _Config.BatchTFRecordInput),
                  "recdistill.data.tfrecord_format")
FORMATS = (CSV, PARQUET, TFRECORD)
_BY_INPUT_TYPE = {input_type: fmt for fmt in FORMATS for input_type in fmt.input_types}


def supported_input_types() -> list[str]:
    """The ``input_type`` names recdistill reads, in registry order."""
    return [_Config.InputType.Name(t) for t in _BY_INPUT_TYPE]


def of(data_config: _Config) -> Format:
    """The format of ``data_config.input_type``.

    Raises:
        ValueError: an input type no format reads; the message lists the supported ones.
    """
    fmt = _BY_INPUT_TYPE.get(data_config.input_type)
    if fmt is None:
        raise ValueError(
            f"data_config.input_type {_Config.InputType.Name(data_config.input_type)} is not "
            f"supported; use one of {', '.join(supported_input_types())}."
        )
    return fmt


def kind(head: bytes) -> str:
    """What the first bytes of a file are: "parquet", "gzip", "binary", "text" or
    "not-utf8" (text in another encoding)."""
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if any(byte < 0x20 and byte not in b"\t\r\n" for byte in head):
        return "binary"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:  # not merely a character cut at the end of head
            return "not-utf8"
    return "text"


def describe(head: bytes) -> str:
    """What a file looks like, for "this is not a <format> file" errors."""
    found = kind(head)
    if found == "text":
        first = head[:200].decode("utf-8", errors="replace").splitlines()[0] if head else ""
        return f"text starting {first[:60]!r} (CSV? input_type: CSVInput)"
    return {"parquet": "a Parquet file (input_type: ParquetInput)",
            "gzip": "gzip-compressed data",
            "binary": "binary data (a TFRecord file? input_type: TFRecordInput)",
            "not-utf8": "text that is not UTF-8 (re-encode it, e.g. iconv -t utf-8)"}[found]


def mismatch(uri: str, data_config: _Config, head: bytes) -> str:
    """The message for a file that is not in the format ``data_config.input_type`` names."""
    name = _Config.InputType.Name(data_config.input_type)
    return (f"{uri}: data_config.input_type is {name}, but the file is {describe(head)}. Set "
            f"input_type to the files' format, or point at {of(data_config).name} files.")
