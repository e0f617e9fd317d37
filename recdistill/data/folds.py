"""Row splits: by a key column (cross-fitting folds, the user holdout) or by time.

A row's part is a hash of its key value (a user or session id), never its position or a
random draw, so that every rerun, every parallel worker and every engine (tf.data in
training, Arrow in the soft-label job and evaluation) puts the same row in the same part,
and all rows of one key land together: a teacher that never saw a fold never saw any row of
that fold's users either.

The hash is FarmHash Fingerprint64 of ``"<salt>:<value>"`` (``tf.strings.to_hash_bucket_fast``),
stable across TF versions and platforms; outside tf.data it is computed by
``recdistill.data.farmhash``, the same function without importing TensorFlow. Different
salts give independent splits, so the validation holdout is not correlated with the
cross-fitting folds.

Float keys are refused: their text form is not stable across writers (``1.0`` vs ``1``).

:func:`split_latest` splits by time instead: the latest fraction of the rows (by a time
column, or by row order for a table written in time order), the validation holdout that
looks like the eval table (later rows of known users).
"""

import contextlib
import logging
import sys
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recdistill.data import farmhash, filesystems, tables

logger = logging.getLogger(__name__)

#: Salt of the cross-fitting folds.
FOLD_SALT = "recdistill-fold"
#: Salt of the validation holdout carved from the training window.
HOLDOUT_SALT = "recdistill-holdout"
#: Rows per shard written by ``split_table``.
SHARD_ROWS = 262_144


def buckets(values, num_buckets: int, *, salt: str, column: str = "key") -> np.ndarray:
    """The bucket in ``[0, num_buckets)`` of each key value.

    Args:
        values: a pyarrow array/chunked array, a numpy array, a list, or a ``tf.Tensor`` of
            integer or string keys.
        num_buckets: number of buckets (folds), ≥ 1.
        salt: ``FOLD_SALT``, ``HOLDOUT_SALT`` or another constant naming the split.
        column: the key column's name, for error messages.

    Returns:
        int64 numpy array, or an int64 ``tf.Tensor`` when ``values`` is one (graph mode too).

    Raises:
        ValueError: ``num_buckets`` < 1, or keys that are neither integers nor strings.
    """
    if num_buckets < 1:
        raise ValueError(f"num_buckets must be >= 1, got {num_buckets}.")
    tf = sys.modules.get("tensorflow")  # a tf.Tensor means TF is loaded; never load it here
    if tf is not None and isinstance(values, tf.Tensor):
        return tf.strings.to_hash_bucket_fast(
            tf.strings.join([salt + ":", _tf_text(values, column)]), num_buckets)
    text = _arrow_text(values, column)
    distinct = pc.unique(text)
    # Each distinct key is hashed once; str() of a null is "None", as numpy's str cast gives.
    keyed = [f"{salt}:{value}".encode() for value in distinct.to_pylist()]
    hashed = farmhash.fingerprint64(keyed) % np.uint64(num_buckets)
    position = pc.index_in(text, value_set=distinct)
    if isinstance(position, pa.ChunkedArray):
        position = position.combine_chunks()
    return hashed[position.to_numpy(zero_copy_only=False)].astype(np.int64)


def _tf_text(values, column: str):
    import tensorflow as tf

    if values.dtype == tf.string:
        return values
    if values.dtype.is_integer:
        return tf.strings.as_string(values)
    raise ValueError(f"split key column '{column}' must hold integers or strings, got "
                     f"{values.dtype.name}; pick a user or session id column.")


def _arrow_text(values, column: str) -> pa.Array:
    array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
    if pa.types.is_integer(array.type) or pa.types.is_string(array.type) or \
            pa.types.is_large_string(array.type):
        return pc.cast(array, pa.string())
    raise ValueError(f"split key column '{column}' must hold integers or strings, got "
                     f"{array.type}; pick a user or session id column.")


def split_table(input_uri: str, data_config, *, key: str, num_buckets: int, salt: str,
                parts: Mapping[str, tuple], max_bad_rows_fraction: float = 0.0) -> dict:
    """Streams the table at ``input_uri`` into one output folder per part, by key bucket.

    Row order within each part is the input's, so session-grouped input stays grouped. Each
    output folder is published atomically (``filesystems.atomic_dir``): a failed split leaves
    no part behind.

    Args:
        input_uri: a file, folder or glob of the training table.
        data_config: the table's ``data_config`` (format and fields).
        key: the key column (an input field).
        num_buckets: number of buckets.
        salt: the split's salt.
        parts: output URI → the buckets it keeps, e.g. ``{"train": (1, 2, 3), "valid": (0,)}``.
            A bucket may be in several parts (cross-fitting: every bucket but one).
        max_bad_rows_fraction: malformed input rows tolerated (see ``tables.read_table``).

    Returns:
        Rows written per output URI.

    Raises:
        ValueError: ``key`` is not an input field, or a bucket outside ``[0, num_buckets)``.
    """
    _check_field(input_uri, data_config, key, "split key", "a user or session id column")
    for uri, kept in parts.items():
        bad = [b for b in kept if not 0 <= b < num_buckets]
        if bad:
            raise ValueError(f"part {uri} keeps buckets {bad} outside [0, {num_buckets}).")

    def masks(batch, first_row):
        del first_row
        bucket = buckets(batch.column(key), num_buckets, salt=salt, column=key)
        return {uri: np.isin(bucket, list(kept)) for uri, kept in parts.items()}

    rows = _write_parts(input_uri, data_config, list(parts), masks, max_bad_rows_fraction)
    logger.info("split %s by %s into %d buckets: %s", input_uri, key, num_buckets,
                ", ".join(f"{uri}: {n} rows" for uri, n in rows.items()))
    return rows


def split_latest(input_uri: str, data_config, *, fraction: float, earlier_uri: str,
                 latest_uri: str, time_column: str = "",
                 max_bad_rows_fraction: float = 0.0) -> dict:
    """Streams the table into its earlier rows and its latest ``fraction`` of rows by time.

    Two passes over the input: the first finds where the latest fraction starts, the second
    writes both parts (input order kept, each folder published atomically).

    Args:
        input_uri: a file, folder or glob of the training table.
        data_config: the table's ``data_config``.
        fraction: the share of rows for ``latest_uri``, in (0, 1).
        earlier_uri: where the other rows go.
        latest_uri: where the latest rows go.
        time_column: an integer, float or (ISO 8601) string time column: rows at or after
            the time that leaves ``fraction`` of the rows after it go to ``latest_uri`` (ties
            at that time too, so the share may be larger). '' = row order: the table is in
            time order (the sample and MovieLens tables are) and its last rows are the latest.
            The first pass keeps the column's values (8 bytes a row for numbers); row order
            keeps nothing.
        max_bad_rows_fraction: malformed input rows tolerated (see ``tables.read_table``).

    Returns:
        Rows written per output URI.

    Raises:
        ValueError: ``fraction`` outside (0, 1), or ``time_column`` not an input field or of
            another type.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"the latest fraction must be in (0, 1), got {fraction}.")
    if time_column:
        _check_field(input_uri, data_config, time_column, "time column",
                     "an integer, float or ISO 8601 string column")
        values = [_time_values(batch.column(0), time_column) for batch in tables.iter_batches(
            input_uri, data_config, batch_size=SHARD_ROWS, fields=[time_column],
            max_bad_rows_fraction=max_bad_rows_fraction)]
        values = np.concatenate(values) if values else np.array([])
        latest = max(1, round(len(values) * fraction))
        cutoff = np.partition(values, len(values) - latest)[len(values) - latest] \
            if len(values) else None

        def masks(batch, first_row):
            del first_row
            late = _time_values(batch.column(time_column), time_column) >= cutoff
            return {earlier_uri: ~late, latest_uri: late}
        where = f"{time_column} >= {cutoff}"
    else:  # every field read, so that bad rows are dropped as in the second pass
        total = sum(batch.num_rows for batch in tables.iter_batches(
            input_uri, data_config, batch_size=SHARD_ROWS,
            max_bad_rows_fraction=max_bad_rows_fraction))
        start = total - max(1, round(total * fraction))

        def masks(batch, first_row):
            late = np.arange(first_row, first_row + batch.num_rows) >= start
            return {earlier_uri: ~late, latest_uri: late}
        where = f"row >= {start} of {total}"
    rows = _write_parts(input_uri, data_config, [earlier_uri, latest_uri], masks,
                        max_bad_rows_fraction)
    logger.info("split %s by time (%s): %s", input_uri, where,
                ", ".join(f"{uri}: {n} rows" for uri, n in rows.items()))
    return rows


def copy_table(input_uri: str, data_config, out_uri: str, *,
               max_bad_rows_fraction: float = 0.0) -> dict:
    """Streams every row into ``out_uri`` (a split with nothing held out); rows written."""
    return _write_parts(input_uri, data_config, [out_uri],
                        lambda batch, first_row: {out_uri: np.ones(batch.num_rows, bool)},
                        max_bad_rows_fraction)


def _time_values(values, column: str) -> np.ndarray:
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or \
            pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return array.to_numpy(zero_copy_only=False)
    raise ValueError(f"time column '{column}' must hold integers, floats or ISO 8601 strings, "
                     f"got {array.type}; pick the event time column.")


def _check_field(input_uri: str, data_config, name: str, what: str, hint: str) -> None:
    fields = [f.input_name for f in data_config.input_fields]
    if name not in fields:
        raise ValueError(f"{what} '{name}' is not an input field of {input_uri} "
                         f"(fields: {', '.join(fields)}); name {hint}.")


def _write_parts(input_uri: str, data_config, uris, masks, max_bad_rows_fraction) -> dict:
    """Streams the table into ``uris``: ``masks(batch, first_row)`` says which rows of each
    batch go to each part. Every folder is published atomically once all are written."""
    rows = {uri: 0 for uri in uris}
    with contextlib.ExitStack() as stack:
        staging = {uri: stack.enter_context(filesystems.atomic_dir(uri)) for uri in uris}
        pending = {uri: [] for uri in uris}
        shards = {uri: 0 for uri in uris}

        def flush(uri, force=False):
            if not pending[uri] or (not force and sum(len(b) for b in pending[uri]) < SHARD_ROWS):
                return
            tables.write_table(pa.Table.from_batches(pending[uri]), staging[uri], data_config,
                               shard=f"part-{shards[uri]:05d}")
            shards[uri] += 1
            pending[uri] = []

        first_row = 0
        for batch in tables.iter_batches(input_uri, data_config, batch_size=SHARD_ROWS // 4,
                                         max_bad_rows_fraction=max_bad_rows_fraction):
            for uri, kept in masks(batch, first_row).items():
                chosen = batch.filter(pa.array(kept))
                if chosen.num_rows:
                    pending[uri].append(chosen)
                    rows[uri] += chosen.num_rows
                flush(uri)
            first_row += batch.num_rows
        for uri in uris:
            flush(uri, force=True)
            if not shards[uri]:
                logger.warning("split of %s: part %s got no rows", input_uri, uri)
    return rows
