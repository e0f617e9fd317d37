"""Units of parallel work for the soft-label job, below file level where the format allows.

A big input file must not be one worker's job while the others idle (issue 13: one 1M-row
file keeps two Dask workers busy). The launcher cuts each Parquet file into row ranges of
about ``rows_per_split`` rows, from the row counts in its footer (one small read per file);
each worker reads only the row groups its range overlaps, streaming, and keeps the rows in
file order. CSV and TFRecord files are cut into byte ranges of ``rows_per_split`` lines or
records by one sequential pass of the launcher over each file (``plan_ranges`` of
``csv_format`` and ``tfrecord_format``: a line count, a walk over the record headers), so
each range knows the number of its first row. A file whose row ends cannot be found from
its bytes alone is read whole, with a log line saying why: gzip-compressed (the job's own
TFRecord shards are gzip streams, which cannot be entered in the middle), or CSV whose
quotes the parser may read otherwise than the pass (a quoted value may hold a line break,
so the pass tracks quoting; a stray quote in an unquoted value would throw it off).

A split is read through ``recdistill.data.tables`` so typing, defaults and bad-row reports
stay the readers' own, bad rows named by the input file and their row number in it. A CSV
or TFRecord range is read by its format's ``read_range``. A Parquet range is streamed into a
local uncompressed Parquet file that ``tables.iter_batches`` reads, and each bad row is
renamed to the input file and its row number in that file. (Once the readers expose typing
of an in-memory batch, the staging file can go.)

Imports ``recdistill.data``; never ``kfp``.
"""

import dataclasses
import logging
import math
import os
import tempfile
from typing import Iterator, Optional, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from recdistill.data import filesystems, formats, tables
from recdistill.protos import pipeline_pb2

logger = logging.getLogger(__name__)

DEFAULT_ROWS_PER_SPLIT = 250_000
"""Rows per unit of work: a few model batches, so a 1M-row file spreads over 4 workers."""

_Config = pipeline_pb2.DatasetConfig
_STREAM_ROWS = 8192


@dataclasses.dataclass(frozen=True)
class Split:
    """Rows ``[start, stop)`` of one input file (0-based; ``stop`` None: to its end).

    Rows are the file's records, or the lines of a CSV file less its header (what numbers
    an unscorable row, as for a whole file). A CSV or TFRecord range also has the bytes its
    rows start in (``byte_range``: its ``rows_before`` counts as the reader numbers rows,
    a CSV header included); a Parquet range is read by row groups.
    """

    uri: str
    start: int = 0
    stop: Optional[int] = None
    byte_range: Optional[formats.ByteRange] = None


def plan_splits(uris: Sequence[str], data_config: _Config,
                rows_per_split: int = DEFAULT_ROWS_PER_SPLIT) -> list:
    """The job's splits, in input order: each file cut into ranges of at most
    ``rows_per_split`` rows (near-equal for Parquet; for CSV and TFRecord all full but the
    last), or whole where its format or content does not allow it (logged).

    Raises:
      ValueError: ``rows_per_split`` is not positive.
    """
    if rows_per_split < 1:
        raise ValueError(f"rows_per_split must be >= 1, got {rows_per_split}. Use "
                         f"{DEFAULT_ROWS_PER_SPLIT}.")
    fmt = formats.of(data_config)
    header = 1 if fmt is formats.CSV and data_config.with_header else 0
    splits, whole = [], {}
    for uri in uris:
        if fmt is formats.PARQUET:
            splits += _parquet_splits(uri, rows_per_split)
            continue
        ranges, why = fmt.module.plan_ranges(uri, data_config, rows_per_split)
        if why:
            whole.setdefault(why, []).append(uri)
        rows = [max(r.rows_before - header, 0) for r in ranges]
        splits += ([Split(uri, start, stop, r)
                    for r, start, stop in zip(ranges, rows, rows[1:] + [None])] or [Split(uri)])
    for why, files in whole.items():
        logger.info("Soft labels: %d %s file(s) read whole, each by one worker: %s (%s%s)",
                    len(files), fmt.name, why, files[0],
                    f" and {len(files) - 1} more" if len(files) > 1 else "")
    return splits


def _parquet_splits(uri: str, rows_per_split: int) -> list:
    """Near-equal row ranges of a Parquet file, from the row count in its footer."""
    with filesystems.open_input(uri) as f:
        rows = pq.ParquetFile(f).metadata.num_rows
    parts = max(1, math.ceil(rows / rows_per_split))
    bounds = [rows * i // parts for i in range(parts + 1)]
    return [Split(uri, a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def iter_batches(split: Split, data_config: _Config, *, batch_size: int,
                 tolerate_bad_rows: bool, report: tables.ReadReport) -> Iterator:
    """Typed RecordBatches of ``batch_size`` rows of ``split``, in file order.

    Bad rows name the input file and their row number in it. They are skipped and recorded
    in ``report`` (as ``tables.iter_batches`` does) when ``tolerate_bad_rows``; otherwise the
    first one raises ``tables.DataError``.
    """
    if split.stop is None or split.byte_range is not None:
        yield from tables.iter_batches(split.uri, data_config, batch_size=batch_size,
                                       max_bad_rows_fraction=1.0 if tolerate_bad_rows else 0.0,
                                       report=report, byte_range=split.byte_range)
        return
    with tempfile.TemporaryDirectory(prefix="recdistill-split-") as tmp:
        staged = os.path.join(tmp, "split.parquet")
        _stage_rows(split, data_config, staged)
        try:
            batches = tables.iter_batches(staged, data_config, batch_size=batch_size,
                                          max_bad_rows_fraction=1.0, report=report)
            for batch in batches:
                _rename_bad_rows(report, split, staged, tolerate_bad_rows)
                yield batch
            _rename_bad_rows(report, split, staged, tolerate_bad_rows)
        except tables.DataError as error:  # a file-level problem, e.g. a missing column
            raise tables.DataError(str(error).replace(staged, split.uri)) from None
    report.files[:] = [split.uri if f == staged else f for f in report.files]


def _stage_rows(split: Split, data_config: _Config, staged: str) -> None:
    """Streams rows [start, stop) of the Parquet file into ``staged``, reading only the row
    groups the range overlaps."""
    names = [f.input_name for f in data_config.input_fields]
    with filesystems.open_input(split.uri) as f:
        parquet = pq.ParquetFile(f)
        columns = [n for n in names if n in parquet.schema_arrow.names]
        groups, first, offset = [], 0, 0  # row groups overlapping the range; rows before
        for i in range(parquet.metadata.num_row_groups):
            rows = parquet.metadata.row_group(i).num_rows
            if offset < split.stop and offset + rows > split.start:
                if not groups:
                    first = offset
                groups.append(i)
            offset += rows
        position = first
        schema = pa.schema([parquet.schema_arrow.field(n) for n in columns])
        with pq.ParquetWriter(staged, schema, compression="NONE") as writer:
            for batch in parquet.iter_batches(batch_size=_STREAM_ROWS, row_groups=groups,
                                              columns=columns):
                lo = max(split.start - position, 0)
                hi = min(split.stop - position, batch.num_rows)
                if hi > lo:
                    writer.write_batch(batch.slice(lo, hi - lo))
                position += batch.num_rows
                if position >= split.stop:
                    break


def _rename_bad_rows(report: tables.ReadReport, split: Split, staged: str,
                     tolerate_bad_rows: bool) -> None:
    """Points the staged file's bad rows at the input file; raises on one if not tolerated."""
    report.bad_rows[:] = [dataclasses.replace(r, uri=split.uri, row=r.row + split.start)
                          if r.uri == staged else r for r in report.bad_rows]
    if report.bad_rows and not tolerate_bad_rows:
        raise tables.DataError(
            f"{report.bad_rows[0].message()} Fix or remove the row, or allow a fraction of "
            "bad rows with max_bad_rows_fraction > 0.")
