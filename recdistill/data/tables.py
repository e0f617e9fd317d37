"""The training table in EasyRec's file formats, as typed pyarrow tables: the one surface.

Callers (the soft-label job, evaluation, training's checks) read and write through here;
the format comes from ``data_config.input_type`` via the registry in
``recdistill.data.formats``, and each format lives in its own module (``csv_format``,
``parquet_format``, ``tfrecord_format``). Field types and defaults are those of
``recdistill.data.schema``.

A row that cannot be read (wrong CSV column count, a value that does not parse as its
field's type, a tf.Example feature of the wrong kind or length) is a *bad row*. By default
the first one raises ``DataError`` naming the file, the 1-based row (the line number for
CSV, header included; the record number for Parquet and TFRecord), the field and the value.
With ``max_bad_rows_fraction > 0`` bad rows are skipped but never silently: each is
recorded in the caller's ``ReadReport`` (pass ``report=ReadReport()``) and logged, and
``DataError`` is raised once the fraction of bad rows exceeds the limit (checked when the
input is exhausted). Only the requested ``fields`` are type-checked, but the CSV column
count is checked for every row.

All IO goes through ``recdistill.data.filesystems``, so ``gs://`` works the same as local
paths (and against gcp-storage-emulator).

Imports from recdistill: ``recdistill.data`` and ``recdistill.protos`` only.
"""

import logging
from typing import Iterable, Iterator, Sequence

import pyarrow as pa

from recdistill.data import filesystems, formats
from recdistill.data import schema as schema_lib
from recdistill.data.bad_rows import BadRow, BadRowPolicy, DataError, ReadReport
from recdistill.data.schema import ARROW_TYPES
from recdistill.protos import pipeline_pb2

__all__ = ["ARROW_TYPES", "EXTENSIONS", "BadRow", "DataError", "ReadReport", "iter_batches",
           "numbered_batches", "read_table", "write_table"]

logger = logging.getLogger(__name__)

_Config = pipeline_pb2.DatasetConfig

# The shard name ending each readable input_type is written with.
EXTENSIONS = {input_type: fmt.extension for fmt in formats.FORMATS
              for input_type in fmt.input_types}


def read_table(
    uri: str,
    data_config: _Config,
    *,
    fields: Sequence[str] | None = None,
    max_bad_rows_fraction: float = 0.0,
    report: ReadReport | None = None,
    optional_fields: Iterable[str] = (),
) -> pa.Table:
    """Reads every data file under ``uri`` into one typed table.

    Args:
        uri: a file, a directory of shards or a glob (see ``filesystems.expand``).
        data_config: gives the format (input_type), separator, header and field types.
        fields: input field names to read, in the order wanted; default all input_fields.
        max_bad_rows_fraction: fraction of bad rows tolerated (skipped and reported);
            0 raises on the first bad row.
        report: filled with row counts and the skipped rows.
        optional_fields: input fields a file may lack, e.g. the soft labels when reading an
            eval table that may or may not carry them (only headerless CSV cares: its
            columns are matched by position).

    Returns:
        A table with one column per field, typed per ``ARROW_TYPES``, no nulls.

    Raises:
        DataError: a bad row (or too many), a field missing from a file, or a file that
            is not in the format input_type names.
        FileNotFoundError: nothing matches ``uri``.
        ValueError: unknown field names or an unsupported input_type.
    """
    report = report if report is not None else ReadReport()
    schema = schema_lib.for_fields(data_config, fields)
    batches = [n.batch for n in _read_all(uri, data_config, schema, max_bad_rows_fraction,
                                          report, optional_fields)]
    table = pa.Table.from_batches(batches, schema=schema.arrow)
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
    optional_fields: Iterable[str] = (),
    byte_range: formats.ByteRange | None = None,
) -> Iterator[pa.RecordBatch]:
    """Streams the data under ``uri`` as record batches of exactly ``batch_size`` rows.

    The last batch may be shorter. Memory is bounded by the batch size and a read block,
    not by the file size. Arguments and errors are those of ``read_table``; the bad-row
    fraction is checked once the input is exhausted. With ``byte_range`` (CSV and
    TFRecord, from the format module's ``plan_ranges``), only the rows of the one file
    ``uri`` that start in that range are read, numbered as in the whole file.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}.")
    report = report if report is not None else ReadReport()
    schema = schema_lib.for_fields(data_config, fields)
    batches = (n.batch for n in _read_all(uri, data_config, schema, max_bad_rows_fraction,
                                          report, optional_fields, byte_range))
    yield from _rebatch(batches, batch_size, schema)


def numbered_batches(uri: str, data_config: _Config, *, fields: Sequence[str] | None = None,
                     optional_fields: Iterable[str] = ()) -> Iterator[schema_lib.Numbered]:
    """Streams typed batches of the file(s) at ``uri``, each row with its row number.

    For checks that name the row at fault (line for CSV, record for Parquet and TFRecord);
    batch sizes are the readers' own. The first bad row raises ``DataError``. Arguments are
    those of ``read_table``.
    """
    schema = schema_lib.for_fields(data_config, fields)
    yield from _read_all(uri, data_config, schema, 0.0, ReadReport(), optional_fields)


def file_columns(uri: str, data_config: _Config,
                 optional_fields: Iterable[str] = ()) -> tuple[list[str], str]:
    """The columns one data file holds, and a note for a user whose column looks missing.

    Raises:
        DataError: the file is not in the format input_type names.
    """
    return formats.of(data_config).module.file_columns(uri, data_config,
                                                       frozenset(optional_fields))


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
    fmt = formats.of(data_config)
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    table = schema_lib.conform(table, data_config, require_all=fmt is formats.CSV)
    uri = filesystems.join(out_dir_uri, shard + fmt.extension)
    filesystems.makedirs(out_dir_uri)
    fmt.module.write(table, uri, data_config)
    logger.info("Wrote %d rows to %s", table.num_rows, uri)
    return uri


def _read_all(uri, data_config, schema, max_fraction, report, optional_fields: Iterable[str],
              byte_range: formats.ByteRange | None = None) -> Iterator[schema_lib.Numbered]:
    module = formats.of(data_config).module
    policy = BadRowPolicy(max_fraction, report)
    optional = frozenset(optional_fields)
    if byte_range is not None:
        report.files.append(uri)
        yield from module.read_range(uri, data_config, schema, policy, optional, byte_range)
    else:
        for path in filesystems.expand(uri):
            report.files.append(path)
            yield from module.read(path, data_config, schema, policy, optional)
    policy.finish(uri)


def _rebatch(batches: Iterable[pa.RecordBatch], batch_size: int,
             schema: schema_lib.Schema) -> Iterator[pa.RecordBatch]:
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


def _one_batch(table: pa.Table, schema: schema_lib.Schema) -> pa.RecordBatch:
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=schema.arrow)
