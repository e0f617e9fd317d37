"""TFRecord shards of ``tf.Example`` (``TFRecordInput``, ``BatchTFRecordInput``) as Arrow batches.

Records are framed (and GZIP-decompressed when the name ends in ``.gz``) by
``tf.data.TFRecordDataset`` and decoded a chunk at a time by tfx-bsl's
``ExamplesToRecordBatchDecoder``; shards are written by tfx-bsl's
``RecordBatchToExamplesEncoder`` and ``tf.io.TFRecordWriter``. That is the pairing tfx-bsl's own
``TFExampleRecord.RecordBatches`` uses: no Python runs per record or per value.

Each input field is a scalar: a feature with more than one value, or stored as the wrong
kind (``float_list`` for an INT64 field, say), is a bad row named by its 1-based record
number. A missing feature or an empty list reads as the field's default. ``BatchTFRecordInput``
is read the same way, one example per record (EasyRec's records of ``n_data_batch_tfrecord``
rows each would be bad rows: "more than one value").

``tf.io.gfile`` cannot reach every object store (not the GCS emulator, not S3), so a remote
shard is staged to a local temporary file while it is read, and a remote output is written
locally and then copied; one shard at a time, removed afterwards.

Imports from recdistill: ``recdistill.data`` (filesystems, bad_rows, formats, schema) only.
"""

import contextlib
import os
import re
import shutil
import struct
import tempfile
from typing import Collection, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.coders import example_coder

from recdistill.data import filesystems, formats
from recdistill.data import schema as schema_lib
from recdistill.data.bad_rows import BadRow, BadRowPolicy, DataError
from recdistill.protos import pipeline_pb2

_Config = pipeline_pb2.DatasetConfig
# Records decoded per call; the caller re-batches to its own size.
_READ_CHUNK_ROWS = 8192
# A record: its payload's length (uint64), the length's CRC (uint32), the payload, its CRC.
_HEADER = struct.Struct("<QI")
_FOOTER_BYTES = 4
_PLAN_BLOCK_BYTES = 1 << 20  # read per step of the header walk that plans ranges
# How each field type is stored in a tf.Example.
_KINDS = {
    _Config.INT32: schema_pb2.INT,
    _Config.INT64: schema_pb2.INT,
    _Config.BOOL: schema_pb2.INT,
    _Config.FLOAT: schema_pb2.FLOAT,
    _Config.DOUBLE: schema_pb2.FLOAT,
    _Config.STRING: schema_pb2.BYTES,
}
_WRONG_KIND = re.compile(r'expected (\w+), found (\w+) for feature "([^"]*)"')


def file_columns(uri: str, data_config: _Config,
                 optional: Collection[str] = ()) -> tuple[list[str], str]:
    """The features of a file's first ``tf.Example`` (all input fields for an empty file)."""
    with _staged(uri) as path:
        for records in _record_chunks(uri, path, data_config, chunk=1):
            names = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(list(records))
            return list(names.schema.names), ""
    return [f.input_name for f in data_config.input_fields], ""


def read(uri: str, data_config: _Config, schema: schema_lib.Schema, policy: BadRowPolicy,
         optional: Collection[str] = ()) -> Iterator[schema_lib.Numbered]:
    """Yields the typed rows of one TFRecord file, numbered by record from 1.

    Columns are found by name, so ``optional`` (fields a file may lack) changes nothing.
    """
    with _staged(uri) as path:
        yield from _read_local(uri, path, data_config, schema, policy, records_before=0)


def plan_ranges(uri: str, data_config: _Config,
                rows_per_split: int) -> tuple[list[formats.ByteRange], str]:
    """Cuts an uncompressed TFRecord file into byte ranges of ``rows_per_split`` records (the
    last may be shorter).

    TFRecord has no sync markers, so one sequential pass walks the record headers (each
    gives its payload's length; blocks are read whole, so an object store sees few large
    reads). A file is read whole, and the reason returned (ranges empty), when it is
    gzip-compressed (a stream cannot be entered in the middle) or its framing does not
    add up to its size (its reader then names the problem). A file of at most
    ``rows_per_split`` records (or empty) is one range: none and no reason; so is one whose
    first MiB's records project to at most that many (``formats.few_rows``). ``data_config``
    changes nothing (CSV's needs its separator).
    """
    del data_config
    if uri.endswith(".gz"):
        return [], "gzip-compressed (a gzip stream cannot be entered in the middle)"
    starts = [0]  # the byte where each range starts: a record start
    records = position = 0
    with filesystems.open_input(uri) as f:
        size = f.size()
        block, block_start = b"", 0
        while position < size:
            at = position - block_start
            if at + _HEADER.size > len(block):  # the header is not in the block: read on
                if formats.few_rows(records, position, size, rows_per_split):
                    return [], ""
                f.seek(position)
                block, block_start, at = f.read(_PLAN_BLOCK_BYTES), position, 0
                if len(block) < _HEADER.size:
                    break
            length, _ = _HEADER.unpack_from(block, at)
            position += _HEADER.size + length + _FOOTER_BYTES
            records += 1
            if records % rows_per_split == 0 and position < size:
                starts.append(position)
    if position != size:
        return [], "is not framed as TFRecord records to its end"
    if len(starts) == 1:
        return [], ""
    return [formats.ByteRange(a, b, rows_per_split * i)
            for i, (a, b) in enumerate(zip(starts, starts[1:] + [size]))], ""


def read_range(uri: str, data_config: _Config, schema: schema_lib.Schema,
               policy: BadRowPolicy, optional: Collection[str],
               byte_range: formats.ByteRange) -> Iterator[schema_lib.Numbered]:
    """:func:`read` of the records in ``byte_range`` of an uncompressed file, numbered as in
    the file; the range must start and end at record starts (:func:`plan_ranges`).

    The range alone is copied to a local temporary file (a ranged read on an object store)
    while it is read, and removed afterwards.

    Raises:
        ValueError: the file is gzip-compressed (it can only be read whole).
    """
    if uri.endswith(".gz"):
        raise ValueError(f"{uri}: a gzip-compressed TFRecord file can only be read whole.")
    with tempfile.TemporaryDirectory(prefix="recdistill-tfrecord-range-") as folder:
        path = os.path.join(folder, "range.tfrecord")
        with filesystems.open_input(uri) as f, open(path, "wb") as out:
            f.seek(byte_range.start)
            left = byte_range.stop - byte_range.start
            while left and (data := f.read(min(left, _PLAN_BLOCK_BYTES))):
                out.write(data)
                left -= len(data)
        yield from _read_local(uri, path, data_config, schema, policy,
                               records_before=byte_range.rows_before)


def _read_local(uri: str, path: str, data_config: _Config, schema: schema_lib.Schema,
                policy: BadRowPolicy, records_before: int) -> Iterator[schema_lib.Numbered]:
    """Typed rows of the local TFRecord file ``path`` (``uri``'s content, or a range of it
    after ``records_before`` records)."""
    decoder = _decoder(schema.fields)
    first = records_before + 1
    for records in _record_chunks(uri, path, data_config, chunk=_READ_CHUNK_ROWS):
        rows = np.arange(first, first + len(records))
        first += len(records)
        decoder, decoded, bad, rows = _decode(uri, decoder, records, rows, schema.fields)
        scalars, more, rows = _scalars(uri, decoded, rows, schema.fields)
        typed, cast_bad = schema_lib.typed_batch(uri, scalars, schema, rows)
        policy.rows(typed.batch.num_rows, bad + more + cast_bad)
        yield typed


def write(table: pa.Table, uri: str, data_config: _Config) -> None:
    """Writes ``table`` as one GZIP TFRecord file; nulls become absent features."""
    encoder = example_coder.RecordBatchToExamplesEncoder()
    lists = pa.Table.from_arrays([_as_list(table.column(n)) for n in table.column_names],
                                 names=table.column_names)
    with _local_output(uri) as path:
        with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="GZIP")) as out:
            for batch in lists.to_batches():
                for record in encoder.encode(batch):
                    out.write(record)


def _decoder(fields) -> example_coder.ExamplesToRecordBatchDecoder:
    schema = schema_pb2.Schema()
    for field in fields:
        schema.feature.add(name=field.input_name, type=_KINDS[field.input_type])
    return example_coder.ExamplesToRecordBatchDecoder(schema.SerializeToString())


def _record_chunks(uri: str, path: str, data_config: _Config, *, chunk: int) -> Iterator[list]:
    """Yields lists of serialized records; a file that is not TFRecord fails naming it."""
    compression = "GZIP" if uri.endswith(".gz") else ""
    dataset = tf.data.TFRecordDataset(path, compression_type=compression).batch(chunk)
    try:
        for records in dataset.as_numpy_iterator():
            yield records.tolist()
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as err:
        raise DataError(f"{_mismatch(uri, path, data_config)} ({err.message.splitlines()[0]})"
                        ) from None


def _mismatch(uri: str, path: str, data_config: _Config) -> str:
    with open(path, "rb") as f:
        head = f.read(256)
    if uri.endswith(".gz") and formats.kind(head) == "gzip":
        with pa.CompressedInputStream(pa.OSFile(path), "gzip") as stream:
            head = stream.read(256)
    elif formats.kind(head) == "gzip":
        return (f"{uri}: the file is gzip-compressed but its name does not end in .gz; rename "
                "it so (it is then read through gzip).")
    return formats.mismatch(uri, data_config, head)


def _decode(uri, decoder, records, rows, fields) -> tuple:
    """Decodes a chunk; on failure finds the records at fault one by one.

    Returns:
        (the decoder to go on with, the decoded good records, the bad rows, the good rows'
        numbers). A failed ``DecodeBatch`` leaves a decoder unusable, so each failure
        replaces it.
    """
    try:
        return decoder, decoder.DecodeBatch(records), [], rows
    except RuntimeError:
        decoder = _decoder(fields)
    bad, kept = [], []
    types = {f.input_name: _Config.FieldType.Name(f.input_type) for f in fields}
    for index, record in enumerate(records):
        try:
            decoder.DecodeBatch([record])
            kept.append(index)
        except RuntimeError as err:
            decoder = _decoder(fields)
            wrong = _WRONG_KIND.search(str(err))
            if wrong:
                expected, stored, name = wrong.groups()
                bad.append(BadRow(uri, int(rows[index]), name, stored,
                                  f"is stored as {stored}, expected {expected} for "
                                  f"{types.get(name, '?')}; fix the writer or input_type in "
                                  "data_config.input_fields"))
            else:
                bad.append(BadRow(uri, int(rows[index]), "", f"{len(record)} bytes",
                                  "is not a serialized tf.Example; rewrite the file"))
    return decoder, decoder.DecodeBatch([records[i] for i in kept]), bad, rows[kept]


def _scalars(uri, decoded, rows, fields) -> tuple[pa.RecordBatch, list, np.ndarray]:
    """One value per row and field: empty lists become nulls, longer lists bad rows."""
    columns, more = [], np.zeros(decoded.num_rows, dtype=bool)
    bad = []
    for field in fields:
        lists = decoded.column(field.input_name)
        lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy()
        for i in np.flatnonzero(lengths > 1):
            if not more[i]:
                bad.append(BadRow(uri, int(rows[i]), field.input_name,
                                  str(lists[int(i)].as_py()[:5]),
                                  "has more than one value; input fields are scalars"))
            more[i] = True
        parents = pc.list_parent_indices(lists).to_numpy()
        single = lengths[parents] == 1
        index = np.full(decoded.num_rows, -1)
        index[parents[single]] = np.arange(int(single.sum()))
        values = pc.list_flatten(lists).filter(pa.array(single))
        columns.append(values.take(pa.array(index, mask=index < 0)))
    scalars = pa.RecordBatch.from_arrays(columns, names=[f.input_name for f in fields])
    if bad:
        scalars = scalars.filter(pa.array(~more))
        rows = rows[~more]
    return scalars, bad, rows


def _as_list(column: pa.ChunkedArray) -> pa.Array:
    """A scalar column as one-value lists (nulls as null lists), as the encoder wants."""
    column = column.combine_chunks()
    kind = (pa.binary() if pa.types.is_string(column.type) else
            pa.float32() if pa.types.is_floating(column.type) else pa.int64())
    column = column.cast(kind)
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(valid)]).astype(np.int64)
    return pa.LargeListArray.from_arrays(offsets, column.drop_null(),
                                         mask=pa.array(~valid))


@contextlib.contextmanager
def _staged(uri: str) -> Iterator[str]:
    """A local path holding ``uri``; a remote file is downloaded and removed afterwards."""
    if not filesystems.is_remote(uri):
        yield filesystems.localize(uri)
        return
    local = filesystems.localize(uri)
    try:
        yield local
    finally:
        shutil.rmtree(os.path.dirname(local), ignore_errors=True)


@contextlib.contextmanager
def _local_output(uri: str) -> Iterator[str]:
    """A local path to write; a remote ``uri`` gets it copied there once written."""
    if not filesystems.is_remote(uri):
        path = filesystems.localize(uri)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        yield path
        return
    folder = tempfile.mkdtemp(prefix="recdistill-tfrecord-")
    try:
        path = os.path.join(folder, uri.rsplit("/", 1)[-1])
        yield path
        filesystems.copy_tree(path, uri)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
