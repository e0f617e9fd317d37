"""Parquet shards (``ParquetInput``) as typed, numbered Arrow batches.

Columns are matched by name and cast to their field's type (a value that does not fit is a
bad row); rows are numbered from 1 within each file. A file that is not Parquet (a CSV file
under ``input_type: ParquetInput``, say) fails naming the file and what it looks like.

Imports from recdistill: ``recdistill.data`` (filesystems, bad_rows, formats, schema) only.
"""

from typing import Collection, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recdistill.data import filesystems, formats
from recdistill.data import schema as schema_lib
from recdistill.data.bad_rows import BadRowPolicy, DataError
from recdistill.protos import pipeline_pb2

_Config = pipeline_pb2.DatasetConfig
# Rows per batch read before re-batching to the caller's size.
_READ_CHUNK_ROWS = 8192


def file_columns(uri: str, data_config: _Config,
                 optional: Collection[str] = ()) -> tuple[list[str], str]:
    """The columns a Parquet file holds (no note: columns are matched by name)."""
    with filesystems.open_input(uri) as f:
        return list(_open(uri, data_config, f).schema_arrow.names), ""


def read(uri: str, data_config: _Config, schema: schema_lib.Schema, policy: BadRowPolicy,
         optional: Collection[str] = ()) -> Iterator[schema_lib.Numbered]:
    """Yields the typed rows of one Parquet file, numbered from 1.

    Columns are found by name, so ``optional`` (fields a file may lack) changes nothing.
    """
    with filesystems.open_input(uri) as f:
        parquet = _open(uri, data_config, f)
        available = parquet.schema_arrow.names
        missing = [n for n in schema.arrow.names if n not in available]
        if missing:
            raise DataError(
                f"{uri}: no column {', '.join(missing)}; the file has {', '.join(available)}. "
                "Check data_config.input_fields against the file (or the fields requested)."
            )
        first = 1
        for batch in parquet.iter_batches(batch_size=_READ_CHUNK_ROWS, columns=schema.arrow.names):
            rows = np.arange(first, first + batch.num_rows)
            typed, bad = schema_lib.typed_batch(uri, batch, schema, rows)
            policy.rows(typed.batch.num_rows, bad)
            first += batch.num_rows
            yield typed


def write(table: pa.Table, uri: str, data_config: _Config) -> None:
    """Writes ``table`` as one Parquet file."""
    with filesystems.open_output(uri) as sink:
        pq.write_table(table, sink)


def _open(uri: str, data_config: _Config, f) -> pq.ParquetFile:
    head = f.read(256)
    f.seek(0)
    if not head.startswith(b"PAR1"):
        raise DataError(formats.mismatch(uri, data_config, head))
    return pq.ParquetFile(f)
