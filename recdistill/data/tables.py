"""The training table in EasyRec's file formats, as typed pyarrow tables.

Owns reading and writing CSV (``CSVInput``), Parquet (``ParquetInput``) and TFRecord of
``tf.Example`` (``TFRecordInput``) shards, typed by ``data_config.input_fields``:

=======  ========  ==========================  ===============
field    arrow     TFRecord feature            empty / missing
=======  ========  ==========================  ===============
INT32    int32     int64_list                  default_val or 0
INT64    int64     int64_list                  default_val or 0
FLOAT    float32   float_list                  default_val or 0
DOUBLE   float64   float_list (float32 bits)   default_val or 0
STRING   string    bytes_list (UTF-8)          default_val or ''
BOOL     bool      int64_list (0/1)            default_val or false
=======  ========  ==========================  ===============

A row that cannot be read (wrong CSV column count, a value that does not parse as its
field's type, a tf.Example feature of the wrong kind or length) is a *bad row*. By default
the first one raises ``DataError`` naming the file, the 1-based row (the line number for
CSV, header included; the record number for Parquet and TFRecord), the field and the value.
With ``max_bad_rows_fraction > 0`` bad rows are skipped but never silently: each is
recorded in the caller's ``ReadReport`` (pass ``report=ReadReport()``) and logged, and
``DataError`` is raised once the fraction of bad rows exceeds the limit (checked when the
input is exhausted). Only the requested ``fields`` are type-checked, but the CSV column
count is checked for every row. A CSV line without any value (blank, or separators only)
is not a row: it is skipped and counted in ``ReadReport.blank_lines``.

All IO goes through ``recdistill.data.filesystems``, so ``gs://`` works the same as local
paths (and against gcp-storage-emulator). TensorFlow is imported only inside the TFRecord
functions, and only to encode and decode ``tf.Example``; the TFRecord framing is read and
written here so that ``tf.io.gfile`` (which cannot reach an emulator) is never used.

Imports from recdistill: ``recdistill.data.filesystems`` and ``recdistill.protos`` only.
"""

import dataclasses
import itertools
import logging
import struct
from typing import Callable, Iterable, Iterator, Sequence

import google_crc32c
import google.protobuf.message as message_lib
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recdistill.data import filesystems
from recdistill.protos import pipeline_pb2

logger = logging.getLogger(__name__)

_Config = pipeline_pb2.DatasetConfig
_Field = pipeline_pb2.DatasetConfig.Field

ARROW_TYPES = {
    _Config.INT32: pa.int32(),
    _Config.INT64: pa.int64(),
    _Config.FLOAT: pa.float32(),
    _Config.DOUBLE: pa.float64(),
    _Config.STRING: pa.string(),
    _Config.BOOL: pa.bool_(),
}
EXTENSIONS = {
    _Config.CSVInput: ".csv",
    _Config.ParquetInput: ".parquet",
    _Config.TFRecordInput: ".tfrecord.gz",
}
# Rows per batch read from Parquet / TFRecord before re-batching to the caller's size.
_READ_CHUNK_ROWS = 8192
_CSV_BLOCK_BYTES = 1 << 20


class DataError(ValueError):
    """A data file cannot be read as the data_config describes (names file, row, field)."""


@dataclasses.dataclass(frozen=True)
class BadRow:
    """One row that could not be read.

    Attributes:
        uri: the file.
        row: 1-based line number for CSV (header included), record number otherwise.
        field: the input field at fault ('' when the whole row is malformed).
        value: the offending text or value, as a string.
        reason: what is wrong and how to fix it.
    """

    uri: str
    row: int
    field: str
    value: str
    reason: str

    def message(self) -> str:
        where = f"{self.uri}: row {self.row}" + (f", field '{self.field}'" if self.field else "")
        return f"{where}: {self.reason}, got {self.value!r}."


@dataclasses.dataclass
class ReadReport:
    """What a read saw; pass one as ``report=`` to learn which rows were skipped.

    Streaming callers may remove entries from ``bad_rows`` after each batch (e.g. to
    write them to a dead-letter file); ``bad_row_count`` keeps the total.

    Attributes:
        rows_read: data rows seen, good and bad (blank CSV lines are not rows).
        bad_row_count: rows skipped as bad.
        bad_rows: the skipped rows, in reading order.
        files: the data files read.
        blank_lines: CSV lines without any value (skipped, not counted as rows).
    """

    rows_read: int = 0
    blank_lines: int = 0
    bad_row_count: int = 0
    bad_rows: list[BadRow] = dataclasses.field(default_factory=list)
    files: list[str] = dataclasses.field(default_factory=list)

    @property
    def bad_fraction(self) -> float:
        return self.bad_row_count / self.rows_read if self.rows_read else 0.0


def read_table(
    uri: str,
    data_config: _Config,
    *,
    fields: Sequence[str] | None = None,
    max_bad_rows_fraction: float = 0.0,
    report: ReadReport | None = None,
) -> pa.Table:
    """Reads every data file under ``uri`` into one typed table.

    Args:
        uri: a file, a directory of shards or a glob (see ``filesystems.expand``).
        data_config: gives the format (input_type), separator, header and field types.
        fields: input field names to read, in the order wanted; default all input_fields.
        max_bad_rows_fraction: fraction of bad rows tolerated (skipped and reported);
            0 raises on the first bad row.
        report: filled with row counts and the skipped rows.

    Returns:
        A table with one column per field, typed per ``ARROW_TYPES``, no nulls.

    Raises:
        DataError: a bad row (or too many), or a field missing from a file.
        FileNotFoundError: nothing matches ``uri``.
        ValueError: unknown field names or an unsupported input_type.
    """
    report = report if report is not None else ReadReport()
    schema = _schema(data_config, fields)
    batches = _read_all(uri, data_config, schema, max_bad_rows_fraction, report)
    table = pa.Table.from_batches(list(batches), schema=schema.arrow)
    logger.info("Read %d rows (%d bad skipped) from %d file(s) at %s",
                table.num_rows, report.bad_row_count, len(report.files), uri)
    return table


def iter_batches(
    uri: str,
    data_config: _Config,
    *,
    batch_size: int,
    fields: Sequence[str] | None = None,
    max_bad_rows_fraction: float = 0.0,
    report: ReadReport | None = None,
) -> Iterator[pa.RecordBatch]:
    """Streams the data under ``uri`` as record batches of exactly ``batch_size`` rows.

    The last batch may be shorter. Memory is bounded by the batch size and a read block,
    not by the file size. Arguments and errors are those of ``read_table``; the bad-row
    fraction is checked once the input is exhausted.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}.")
    report = report if report is not None else ReadReport()
    schema = _schema(data_config, fields)
    yield from _rebatch(_read_all(uri, data_config, schema, max_bad_rows_fraction, report),
                        batch_size, schema)


def write_table(
    table: pa.Table | pa.RecordBatch,
    out_dir_uri: str,
    data_config: _Config,
    *,
    shard: str = "part-00000",
) -> str:
    """Writes ``table`` as one shard ``<out_dir_uri>/<shard><extension>``.

    Columns are written in input_fields order and cast to their field types. CSV has no
    header and needs every input field; Parquet and TFRecord write the table's columns.
    TFRecord shards are GZIP-compressed (``.tfrecord.gz``). Nulls are written as empty
    cells / absent features, so reading them back gives the field's default.

    Returns:
        The URI of the written shard.

    Raises:
        ValueError: a column that is not an input field, a missing column (CSV), a value
            that does not fit its field's type, or an unsupported input_type.
    """
    fmt = _format(data_config)
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    table = _conform(table, data_config, require_all=fmt == _Config.CSVInput)
    uri = filesystems.join(out_dir_uri, shard + EXTENSIONS[fmt])
    filesystems.makedirs(out_dir_uri)
    with filesystems.open_output(uri) as sink:
        if fmt == _Config.CSVInput:
            options = pacsv.WriteOptions(include_header=False, delimiter=data_config.separator)
            pacsv.write_csv(table, sink, write_options=options)
        elif fmt == _Config.ParquetInput:
            pq.write_table(table, sink)
        else:
            _write_tfrecords(table, sink)
    logger.info("Wrote %d rows to %s", table.num_rows, uri)
    return uri


# ---------------------------------------------------------------- reading


class _BadRowPolicy:
    """Applies max_bad_rows_fraction: raise at once, or record and check at the end."""

    def __init__(self, max_fraction: float, report: ReadReport):
        if not 0.0 <= max_fraction <= 1.0:
            raise ValueError(f"max_bad_rows_fraction must be in [0, 1], got {max_fraction}.")
        self.max_fraction = max_fraction
        self.report = report

    def rows(self, good: int, bad: Sequence[BadRow]) -> None:
        self.report.rows_read += good + len(bad)
        for row in sorted(bad, key=lambda r: r.row):
            if self.max_fraction == 0.0:
                raise DataError(
                    f"{row.message()} Fix or remove the row, or allow a fraction of bad rows "
                    "with max_bad_rows_fraction > 0."
                )
            logger.warning("Skipping bad row: %s", row.message())
            self.report.bad_rows.append(row)
            self.report.bad_row_count += 1

    def finish(self, uri: str) -> None:
        report = self.report
        if report.bad_fraction > self.max_fraction:
            first = report.bad_rows[0].message() if report.bad_rows else ""
            raise DataError(
                f"{uri}: {report.bad_row_count} of {report.rows_read} rows are bad "
                f"({report.bad_fraction:.2%}), more than max_bad_rows_fraction="
                f"{self.max_fraction}. First: {first} Fix the data or raise the limit."
            )


def _read_all(uri, data_config, schema, max_fraction, report) -> Iterator[pa.RecordBatch]:
    fmt = _format(data_config)
    policy = _BadRowPolicy(max_fraction, report)
    readers: dict[int, Callable] = {
        _Config.CSVInput: _csv_batches,
        _Config.ParquetInput: _parquet_batches,
        _Config.TFRecordInput: _tfrecord_batches,
    }
    for path in filesystems.expand(uri):
        report.files.append(path)
        yield from readers[fmt](path, data_config, schema, policy)
    policy.finish(uri)


def _csv_batches(uri, data_config, schema, policy) -> Iterator[pa.RecordBatch]:
    names = _csv_column_names(uri, data_config, schema)
    header_lines = 1 if data_config.with_header else 0
    skipped: list[int] = []  # parser row numbers (header excluded) it dropped
    pending: list[BadRow] = []

    def on_invalid(row) -> str:
        skipped.append(row.number)
        pending.append(BadRow(
            uri, row.number + header_lines, "", row.text,
            f"has {row.actual_columns} columns, expected {row.expected_columns} "
            f"({', '.join(names)}); check data_config.separator "
            f"{data_config.separator!r} and quoting",
        ))
        return "skip"

    # Blank lines are kept by the parser (so its row numbers stay line numbers) and
    # dropped below; all columns are read as strings and typed by _typed_batch.
    read_options = pacsv.ReadOptions(column_names=names, skip_rows=header_lines,
                                     use_threads=False, block_size=_CSV_BLOCK_BYTES)
    parse_options = pacsv.ParseOptions(delimiter=data_config.separator,
                                       invalid_row_handler=on_invalid, ignore_empty_lines=False)
    convert_options = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names}, null_values=[""],
        strings_can_be_null=True, quoted_strings_can_be_null=True)
    parsed = 0  # rows the parser has produced so far
    with filesystems.open_input(uri) as f:
        reader = pacsv.open_csv(f, read_options=read_options, parse_options=parse_options,
                                convert_options=convert_options)
        for batch in reader:
            lines = _line_numbers(parsed, batch.num_rows, skipped) + header_lines
            parsed += batch.num_rows
            blank = np.logical_and.reduce(
                [col.is_null().to_numpy(zero_copy_only=False) for col in batch.columns])
            policy.report.blank_lines += int(blank.sum())
            lines = lines[~blank]
            values = batch.filter(pa.array(~blank)).select(schema.arrow.names)
            typed, bad = _typed_batch(uri, values, schema, lambda i, lines=lines: int(lines[i]))
            policy.rows(typed.num_rows, pending + bad)
            pending.clear()
            yield typed
    policy.rows(0, pending)


def _line_numbers(first: int, count: int, skipped: list[int]) -> np.ndarray:
    """Parser row numbers (1-based) of parsed rows first..first+count-1 (0-based).

    The parser numbers every row, including those it skipped; parsed row k is therefore
    the (k+1)-th number not in ``skipped``. Skipped rows after the batch do not matter.
    """
    gaps = np.sort(np.asarray(skipped, dtype=np.int64))
    gaps -= np.arange(len(gaps))
    m = np.arange(first + 1, first + count + 1)
    return m + np.searchsorted(gaps, m, side="right")


def _csv_column_names(uri, data_config, schema) -> list[str]:
    """Column names of a CSV file: its header when with_header, else input_fields order."""
    if not data_config.with_header:
        return [f.input_name for f in data_config.input_fields]
    with filesystems.open_input(uri) as f:
        parse = pacsv.ParseOptions(delimiter=data_config.separator)
        names = pacsv.open_csv(f, parse_options=parse,
                               read_options=pacsv.ReadOptions(use_threads=False)).schema.names
    missing = [n for n in schema.arrow.names if n not in names]
    if missing:
        raise DataError(
            f"{uri}: header has no column {', '.join(missing)}; it has {', '.join(names)}. "
            "Fix the header or data_config.input_fields (or set with_header: false)."
        )
    return names


def _parquet_batches(uri, data_config, schema, policy) -> Iterator[pa.RecordBatch]:
    with filesystems.open_input(uri) as f:
        parquet = pq.ParquetFile(f)
        available = parquet.schema_arrow.names
        missing = [n for n in schema.arrow.names if n not in available]
        if missing:
            raise DataError(
                f"{uri}: no column {', '.join(missing)}; the file has {', '.join(available)}. "
                "Check data_config.input_fields against the file (or the fields requested)."
            )
        first = 1
        for batch in parquet.iter_batches(batch_size=_READ_CHUNK_ROWS, columns=schema.arrow.names):
            typed, bad = _typed_batch(uri, batch, schema, lambda i, s=first: s + i)
            policy.rows(typed.num_rows, bad)
            first += batch.num_rows
            yield typed


def _typed_batch(uri, batch, schema, row_of) -> tuple[pa.RecordBatch, list[BadRow]]:
    """Casts each raw column to its field's type and fills defaults.

    Args:
        batch: raw columns named like the schema (strings for CSV, any type otherwise).
        row_of: maps a 0-based index in ``batch`` to the row number reported for it.

    Returns:
        The good rows, typed, and the bad rows.
    """
    columns, bad, bad_mask = [], [], np.zeros(batch.num_rows, dtype=bool)
    for field, arrow_field in zip(schema.fields, schema.arrow):
        raw = batch.column(arrow_field.name)
        column, bad_indices = _cast_column(raw, arrow_field.type)
        for i in bad_indices:
            bad_mask[i] = True
            bad.append(BadRow(uri, row_of(i), field.input_name, str(raw[i].as_py()),
                              f"not a valid {_Config.FieldType.Name(field.input_type)}; fix "
                              f"the value or input_type of '{field.input_name}' in "
                              "data_config.input_fields"))
        columns.append(column.fill_null(_default(field)))
    typed = pa.RecordBatch.from_arrays(columns, schema=schema.arrow)
    if bad:
        typed = typed.filter(pa.array(~bad_mask))
    return typed, bad


def _cast_column(column: pa.Array, arrow_type: pa.DataType) -> tuple[pa.Array, list[int]]:
    """Casts safely; values that do not fit become null and their indices are returned."""
    try:
        return pc.cast(column, arrow_type), []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Only on failure: find the offending values one by one.
    bad = []
    for i, value in enumerate(column):
        if value.is_valid:
            try:
                value.cast(arrow_type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                bad.append(i)
    mask = np.zeros(len(column), dtype=bool)
    mask[bad] = True
    cleaned = pc.if_else(pa.array(mask), pa.nulls(len(column), column.type), column)
    return pc.cast(cleaned, arrow_type), bad


# ---------------------------------------------------------------- TFRecord

_RECORD_HEADER = struct.Struct("<QI")
_RECORD_FOOTER = struct.Struct("<I")
# How each field type is stored in a tf.Example: (feature kind, raw arrow type read back).
_TF_KINDS = {
    _Config.INT32: ("int64_list", pa.int64()),
    _Config.INT64: ("int64_list", pa.int64()),
    _Config.BOOL: ("int64_list", pa.int64()),
    _Config.FLOAT: ("float_list", pa.float32()),
    _Config.DOUBLE: ("float_list", pa.float32()),
    _Config.STRING: ("bytes_list", pa.binary()),
}


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _read_records(uri: str) -> Iterator[bytes]:
    """Yields the records of a TFRecord file (GZIP when the name ends in .gz)."""
    with filesystems.open_input(uri) as raw:
        stream = pa.CompressedInputStream(raw, "gzip") if uri.endswith(".gz") else raw
        index = 0
        while header := stream.read(_RECORD_HEADER.size):
            index += 1
            corrupt = f"{uri}: record {index} is truncated or corrupt"
            if len(header) < _RECORD_HEADER.size:
                raise DataError(f"{corrupt} (short header). Rewrite the file.")
            length, length_crc = _RECORD_HEADER.unpack(header)
            if _masked_crc(header[:8]) != length_crc:
                raise DataError(f"{corrupt} (length checksum). Is it a TFRecord file, and "
                                "does only a GZIP file's name end in .gz?")
            data = stream.read(length)
            footer = stream.read(_RECORD_FOOTER.size)
            if len(data) < length or len(footer) < _RECORD_FOOTER.size:
                raise DataError(f"{corrupt} (ends early). Rewrite the file.")
            if _masked_crc(data) != _RECORD_FOOTER.unpack(footer)[0]:
                raise DataError(f"{corrupt} (data checksum). Rewrite the file.")
            yield data


def _write_records(records: Iterable[bytes], sink) -> None:
    with pa.CompressedOutputStream(sink, "gzip") as stream:
        for data in records:
            length = struct.pack("<Q", len(data))
            stream.write(length + struct.pack("<I", _masked_crc(length)))
            stream.write(data + struct.pack("<I", _masked_crc(data)))


def _tfrecord_batches(uri, data_config, schema, policy) -> Iterator[pa.RecordBatch]:
    import tensorflow as tf  # lazy: only TFRecord needs it

    records = _read_records(uri)
    first = 1
    while chunk := list(itertools.islice(records, _READ_CHUNK_ROWS)):
        raw = {field.input_name: [] for field in schema.fields}
        bad, kept_rows = [], []
        for row, record in enumerate(chunk, start=first):
            try:
                example = tf.train.Example.FromString(record)
            except message_lib.DecodeError:
                bad.append(BadRow(uri, row, "", f"{len(record)} bytes",
                                  "is not a serialized tf.Example; rewrite the file"))
                continue
            values, problem = _example_values(example, schema.fields)
            if problem:
                bad.append(BadRow(uri, row, *problem))
                continue
            kept_rows.append(row)
            for name, value in values.items():
                raw[name].append(value)
        batch = pa.RecordBatch.from_arrays(
            [pa.array(raw[f.input_name], type=_TF_KINDS[f.input_type][1]) for f in schema.fields],
            names=schema.arrow.names)
        typed, cast_bad = _typed_batch(uri, batch, schema, kept_rows.__getitem__)
        policy.rows(typed.num_rows, bad + cast_bad)
        first += len(chunk)
        yield typed


def _example_values(example, fields) -> tuple[dict, tuple | None]:
    """Returns ({field: scalar or None}, None) or ({}, (field, value, reason))."""
    values = {}
    features = example.features.feature
    for field in fields:
        name = field.input_name
        if name not in features:
            values[name] = None
            continue
        kind = _TF_KINDS[field.input_type][0]
        feature = features[name]
        stored = feature.WhichOneof("kind")
        if stored != kind:
            return {}, (name, str(stored), f"is stored as {stored}, expected {kind} for "
                        f"{_Config.FieldType.Name(field.input_type)}; fix the writer or "
                        "input_type in data_config.input_fields")
        items = getattr(feature, kind).value
        if len(items) > 1:
            return {}, (name, str(list(items)[:5]), "has more than one value; input fields "
                        "are scalars")
        values[name] = items[0] if items else None
    return values, None


def _write_tfrecords(table: pa.Table, sink) -> None:
    import tensorflow as tf  # lazy: only TFRecord needs it

    kinds = {
        "int64_list": lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)])),
        "float_list": lambda v: tf.train.Feature(float_list=tf.train.FloatList(value=[v])),
        "bytes_list": lambda v: tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[v.encode()])),
    }
    encoders = {name: kinds["bytes_list" if pa.types.is_string(t) else
                            "float_list" if pa.types.is_floating(t) else "int64_list"]
                for name, t in zip(table.schema.names, table.schema.types)}

    def examples():
        for row in table.to_pylist():
            feature = {k: encoders[k](v) for k, v in row.items() if v is not None}
            yield tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    _write_records(examples(), sink)


# ---------------------------------------------------------------- schema and helpers


@dataclasses.dataclass(frozen=True)
class _Schema:
    """The fields being read: their config entries and the arrow schema they produce."""

    fields: list
    arrow: pa.Schema


def _schema(data_config: _Config, fields: Sequence[str] | None) -> _Schema:
    by_name = {f.input_name: f for f in data_config.input_fields}
    names = list(by_name) if fields is None else list(fields)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(
            f"fields {', '.join(map(repr, unknown))} are not in data_config.input_fields "
            f"({', '.join(by_name)}). Request input field names, or add the fields."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"fields lists a name twice: {names}. List each field once.")
    chosen = [by_name[n] for n in names]
    for field in chosen:
        _default(field)  # validates default_val before any data is read
    return _Schema(chosen, pa.schema([(f.input_name, ARROW_TYPES[f.input_type]) for f in chosen]))


def _default(field: _Field) -> pa.Scalar:
    """The value of an empty cell / missing feature: default_val, else 0, '' or false."""
    arrow_type = ARROW_TYPES[field.input_type]
    if not field.default_val:
        return pa.scalar("" if field.input_type == _Config.STRING else
                         False if field.input_type == _Config.BOOL else 0).cast(arrow_type)
    try:
        return pa.scalar(field.default_val).cast(arrow_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise ValueError(
            f"data_config.input_fields '{field.input_name}': default_val "
            f"{field.default_val!r} is not a valid "
            f"{_Config.FieldType.Name(field.input_type)}. Fix the default_val."
        ) from None


def _format(data_config: _Config) -> int:
    if data_config.input_type not in EXTENSIONS:
        supported = ", ".join(_Config.InputType.Name(t) for t in EXTENSIONS)
        raise ValueError(
            f"data_config.input_type {_Config.InputType.Name(data_config.input_type)} is not "
            f"supported; use one of {supported}."
        )
    return data_config.input_type


def _conform(table: pa.Table, data_config: _Config, *, require_all: bool) -> pa.Table:
    """Orders ``table``'s columns as input_fields and casts them to the field types."""
    order = [f.input_name for f in data_config.input_fields]
    extra = [n for n in table.column_names if n not in order]
    if extra:
        raise ValueError(
            f"columns {', '.join(extra)} are not in data_config.input_fields "
            f"({', '.join(order)}). Add them to input_fields or drop them before writing."
        )
    missing = [n for n in order if n not in table.column_names]
    if require_all and missing:
        raise ValueError(
            f"CSV needs every input field in order; the table lacks {', '.join(missing)}. "
            "Add the columns or remove the fields from data_config.input_fields."
        )
    schema = _schema(data_config, [n for n in order if n in table.column_names])
    columns = []
    for field, arrow_field in zip(schema.fields, schema.arrow):
        column = table.column(arrow_field.name)
        try:
            columns.append(pc.cast(column, arrow_field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise ValueError(
                f"column '{field.input_name}' ({column.type}) does not fit "
                f"{_Config.FieldType.Name(field.input_type)}: {err}. Fix the values or the "
                "field's input_type."
            ) from None
    return pa.Table.from_arrays(columns, schema=schema.arrow)


def _rebatch(batches: Iterable[pa.RecordBatch], batch_size: int,
             schema: _Schema) -> Iterator[pa.RecordBatch]:
    """Regroups a stream of batches of any size into batches of exactly batch_size rows."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        pending.append(batch)
        rows += batch.num_rows
        while rows >= batch_size:
            table = pa.Table.from_batches(pending, schema=schema.arrow)
            yield _one_batch(table.slice(0, batch_size), schema)
            pending = table.slice(batch_size).to_batches()
            rows -= batch_size
    if rows:
        yield _one_batch(pa.Table.from_batches(pending, schema=schema.arrow), schema)


def _one_batch(table: pa.Table, schema: _Schema) -> pa.RecordBatch:
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=schema.arrow)
