"""Training input: CSV, Parquet or TFRecord files -> a batched, prefetched ``tf.data.Dataset``.

This module owns turning data files into the batches the trainer feeds a model:
``(features, labels)`` where ``features`` maps each raw column the model reads to a ``[B]``
tensor in its serving dtype (string / int64 / float32, the dtypes ``serving_default`` takes)
and ``labels`` maps each label column (hard and soft) to a float32 ``[B]`` tensor.

The format comes from ``data_config.input_type`` through the registry in
``recdistill.data.formats``, the same one the Arrow readers (``recdistill.data.tables``) use.

It also checks the data before any step runs (:func:`check_inputs`): every needed column
exists, every value parses as its field's type, float features and labels are finite, and
there is at least one row. The check reads through ``tables`` so a bad file fails in seconds
with a message naming the file, the line and the column, not after an hour of training (or
with TensorFlow's "record 86" of some batch of some file).

Speed matters more than elegance here: per-row Python or per-row tf.data work would make
input the bottleneck. CSV and TFRecord lines are batched first and decoded per batch
(``tf.io.decode_csv`` / ``tf.io.parse_example`` on ``[B]`` strings), shards are read in
parallel with ``interleave``, and everything is prefetched. Parquet is read by pyarrow in
column batches, and so are remote shards (``gs://``, ``s3://``, ``minio://``): they stream
through local disk one at a time (``filesystems.local_shards``: the next downloads while one
is read, each is deleted once read), because ``tf.io.gfile`` reaches neither S3 nor every GCS
endpoint, and a table bigger than the pod's disk must still train. With a
``session_column`` the needed columns are read into memory and batched whole sessions at a
time (``recdistill.data.sessions``), for pairwise and listwise kd losses.

Cross-fitting (honest soft labels) trains each fold teacher on every row but one fold's:
:class:`ExcludedFold` is a row filter applied while reading (in the graph for CSV and
TFRecord, on Arrow batches otherwise), so no copy of the training table is ever written.

Imports ``recdistill.config``, ``recdistill.features`` (serving dtypes and defaults) and the
rest of ``recdistill.data``; never ``kfp`` or models.
"""

import logging
import os
from typing import Iterable, Mapping, NamedTuple, Optional, Union

import numpy as np
import pyarrow as pa
import tensorflow as tf

from recdistill import config as config_lib
from recdistill import features as features_lib
from recdistill.data import filesystems, folds, formats, sessions, tables
from recdistill.protos import pipeline_pb2

logger = logging.getLogger(__name__)

_DatasetConfig = pipeline_pb2.DatasetConfig
_BOOL = _DatasetConfig.FieldType.Value("BOOL")
_FLOATS = (_DatasetConfig.FLOAT, _DatasetConfig.DOUBLE)
_AUTOTUNE = tf.data.AUTOTUNE
_KEY_TYPES = (_DatasetConfig.INT32, _DatasetConfig.INT64, _DatasetConfig.STRING)


class ExcludedFold(NamedTuple):
    """The rows a fold teacher must not see: fold ``fold`` of ``num_folds`` by ``key``.

    A row's fold is ``folds.buckets(key value, num_folds, salt=folds.FOLD_SALT)``, the same
    in tf.data and in the soft-label job's Arrow batches, so the job can score each row with
    the one teacher that never read it.

    Attributes:
      key: the key column (a user or session id input field, integer or string).
      num_folds: K, the number of folds (>= 2).
      fold: the fold left out, in ``[0, K)``.
    """

    key: str
    num_folds: int
    fold: int

    def check(self, config) -> None:
        """Raises ValueError naming the bad value and the fix (folds, fold or key column)."""
        if isinstance(self.num_folds, bool) or not isinstance(self.num_folds, int) or \
                self.num_folds < 2:
            raise ValueError(f"cross-fitting needs at least 2 folds, got {self.num_folds!r}. "
                             "Pass K >= 2 (or no fold to train on every row).")
        if isinstance(self.fold, bool) or not isinstance(self.fold, int) or \
                not 0 <= self.fold < self.num_folds:
            raise ValueError(f"the fold left out must be in [0, {self.num_folds}), got "
                             f"{self.fold!r}. Pass one of 0..{self.num_folds - 1}.")
        field = config_lib.input_field(config, self.key)  # ValueError listing the fields
        if field.input_type not in _KEY_TYPES:
            raise ValueError(
                f"cross-fit key column {self.key!r} is "
                f"{_DatasetConfig.FieldType.Name(field.input_type)}; fold keys must be "
                "integers or strings (a float's text is not stable). Pick a user or session "
                "id column.")

    def keeps(self, values):
        """Which rows a fold teacher reads: a bool mask (numpy, or a tensor for a tensor)."""
        return folds.buckets(values, self.num_folds, salt=folds.FOLD_SALT,
                             column=self.key) != self.fold

    def describe(self) -> dict:
        """What a fold teacher's ``recdistill.json`` records (``cross_fit``)."""
        return {"key": self.key, "num_folds": self.num_folds, "excluded_fold": self.fold}


def make_dataset(uri: str, config, *, columns: Union[Mapping[str, tf.DType], Iterable[str]],
                 labels: Iterable[str], batch_size: int, shuffle: bool, num_epochs: int,
                 seed: Optional[int] = None, check: bool = True,
                 optional_fields: Iterable[str] = (),
                 session_column: str = "",
                 exclude_fold: Optional[ExcludedFold] = None) -> tf.data.Dataset:
    """Reads data files into batches of ``(features, labels)`` dicts.

    Args:
      uri: a file, a folder of shards or a glob, local or ``gs://``.
      config: the ``EasyRecConfig``; ``data_config`` gives the format (``input_type``),
        column order and types (``input_fields``), separator, header and shuffle buffer.
      columns: the raw columns to return as features, by name (e.g. ``model.input_columns``);
        dtypes, when given, must be the serving dtypes of the fields.
      labels: label columns (hard and soft) to return as float32.
      batch_size: rows per batch (the last batch may be smaller).
      shuffle: shuffle shard order and rows (within ``data_config.shuffle_buffer_size`` rows).
      num_epochs: passes over the data; 0 repeats forever.
      seed: shuffle seed, for reproducible runs.
      check: run :func:`check_inputs` first (one pass over the needed columns).
      optional_fields: input fields the files may lack, e.g. the soft labels of an eval
        table that may carry them (what an EasyRec user has) or not: read with the full
        config, asking for no soft label. Only headerless CSV cares (columns by position).
      session_column: when set, the input field naming each row's session (e.g. a kd
        block's ``session_name``): each session's rows go into one batch and ``shuffle``
        shuffles sessions, not rows (see ``recdistill.data.sessions``). Batches then hold
        at most ``batch_size`` rows, and the needed columns are held in memory.
      exclude_fold: skip the rows of this fold (a cross-fitting fold teacher). Batches are
        refilled to ``batch_size`` rows; the key column is read but returned only when it is
        one of ``columns``.

    Returns:
      A prefetched ``tf.data.Dataset`` of ``({column: [B] tensor}, {label: float32 [B]})``.

    Raises:
      FileNotFoundError: ``uri`` matches no data file.
      ValueError: the data lacks a needed column, a label or float feature is NaN/inf, a
        value does not parse (``tables.DataError``), there are no rows, or ``input_type``
        is not one ``recdistill.data.formats`` reads.
    """
    names = list(columns)
    labels = list(labels)
    fmt = formats.of(config.data_config)
    optional = frozenset(optional_fields)
    if exclude_fold is not None:
        exclude_fold.check(config)
    files = _data_files(uri)
    if check:
        _check_files(files, config, columns=names, labels=labels, optional=optional,
                     exclude_fold=exclude_fold)
    if session_column:
        return _session_dataset(files, config, names, labels, session_column,
                                batch_size=batch_size, shuffle=shuffle, num_epochs=num_epochs,
                                seed=seed, optional=optional, exclude_fold=exclude_fold)
    if fmt is formats.PARQUET or any(filesystems.is_remote(f) for f in files):
        # Remote shards stream through local disk one at a time (filesystems.local_shards).
        return _arrow_dataset(files, config, names, labels, batch_size=batch_size,
                              shuffle=shuffle, num_epochs=num_epochs, seed=seed,
                              optional=optional, exclude_fold=exclude_fold)
    read = names if exclude_fold is None else list(dict.fromkeys(names + [exclude_fold.key]))
    if fmt is formats.CSV:
        reader = _CsvReader(files, config, read, labels, optional)
    else:
        reader = _TfRecordReader(files, config, read, labels)
    dataset = reader.dataset(batch_size=batch_size, shuffle=shuffle, num_epochs=num_epochs,
                             seed=seed)
    if exclude_fold is None:
        return dataset
    return _without_fold(dataset, exclude_fold, names, batch_size)


def _without_fold(dataset: tf.data.Dataset, exclude_fold: ExcludedFold, columns: list,
                  batch_size: int) -> tf.data.Dataset:
    """Drops the excluded fold's rows from each decoded batch (a vectorised mask in the
    graph, no per-row work) and refills batches to ``batch_size`` rows."""
    def keep(features, labels):
        mask = exclude_fold.keeps(features[exclude_fold.key])
        return ({n: tf.boolean_mask(v, mask) for n, v in features.items() if n in columns},
                {n: tf.boolean_mask(v, mask) for n, v in labels.items()})

    return (dataset.map(keep, num_parallel_calls=_AUTOTUNE, deterministic=True)
            .rebatch(batch_size).prefetch(_AUTOTUNE))


def check_inputs(uri: str, config, *, columns: Iterable[str], labels: Iterable[str],
                 optional_fields: Iterable[str] = ()) -> int:
    """Checks data files before training and returns their number of rows.

    Args:
      uri: a file, a folder of shards or a glob, local or ``gs://``.
      config: the ``EasyRecConfig`` describing them.
      columns: feature columns the model reads.
      labels: label columns (hard and soft).
      optional_fields: input fields the files may lack (see :func:`make_dataset`).

    Returns:
      The total number of rows.

    Raises:
      FileNotFoundError: ``uri`` matches no data file.
      ValueError: a needed column is missing from a file (naming the file, the column, the
        features that read it and the columns the file has), a label or float feature
        column holds NaN or inf (naming file, column, first bad line or row and how many),
        or there are no rows at all.
      tables.DataError: a value does not parse as its field's type, or a file is not in
        the format ``input_type`` names (naming file, line or row, field and fix).
    """
    return _check_files(_data_files(uri), config, columns=columns, labels=labels,
                        optional=frozenset(optional_fields))


def _check_files(files: list, config, *, columns: Iterable[str], labels: Iterable[str],
                 optional: frozenset, exclude_fold: Optional[ExcludedFold] = None) -> int:
    columns, labels = list(columns), list(labels)
    needed = columns + [name for name in labels if name not in columns]
    if exclude_fold is not None and exclude_fold.key not in needed:
        needed.append(exclude_fold.key)
    rows = kept = 0
    for path in filesystems.local_shards(files):  # remote shards one at a time, not all at once
        if os.path.getsize(path) == 0:
            logger.warning("%s is empty", path)
            continue
        _check_columns(path, config, needed, optional)
        file_rows, file_kept = _check_values(path, config, needed, labels, optional,
                                             exclude_fold)
        rows, kept = rows + file_rows, kept + file_kept
    if rows == 0:
        raise ValueError(f"{', '.join(files)}: no rows to read. Check that the step writing this "
                         "data succeeded and that the path points at the right split.")
    logger.info("Checked %d file(s): %d rows, columns %s, labels %s", len(files), rows,
                columns, labels)
    if exclude_fold is not None:
        if kept == 0:
            raise ValueError(
                f"{', '.join(files)}: every one of the {rows} rows is in fold "
                f"{exclude_fold.fold} of {exclude_fold.num_folds} by {exclude_fold.key!r}, so "
                "a teacher trained without that fold has no rows. The key has too few distinct "
                "values: pick a key with many values (a user or session id).")
        logger.info("Cross-fitting: training without fold %d of %d by %r reads %d of %d rows",
                    exclude_fold.fold, exclude_fold.num_folds, exclude_fold.key, kept, rows)
        return kept
    return rows


def _check_values(path: str, config, needed: list, labels: list, optional: frozenset,
                  exclude_fold: Optional[ExcludedFold] = None) -> tuple:
    """Reads every needed column once: each value must parse as its field's type (else
    ``tables.DataError`` names the line), and float features and labels must be finite.

    Returns:
      The file's number of rows, and how many of them ``exclude_fold`` keeps (all without).
    """
    soft = set(config_lib.soft_label_fields(config))
    checked = [name for name in needed
               if name in labels or config_lib.input_field(config, name).input_type in _FLOATS]
    rows = kept = 0
    bad: dict = {}  # column -> [count, first row number, first value]
    for numbered in tables.numbered_batches(path, config.data_config, fields=needed,
                                            optional_fields=optional):
        rows += numbered.batch.num_rows
        kept += (numbered.batch.num_rows if exclude_fold is None else
                 int(exclude_fold.keeps(numbered.batch.column(exclude_fold.key)).sum()))
        for name in checked:
            values = numbered.batch.column(name).to_numpy(zero_copy_only=False)
            found = np.flatnonzero(~np.isfinite(values.astype(np.float64)))
            if found.size:
                entry = bad.setdefault(name, [0, int(numbered.rows[found[0]]), values[found[0]]])
                entry[0] += found.size
    if bad:
        name, (count, row, value) = min(bad.items(), key=lambda item: item[1][1])
        kind = ("soft label" if name in soft else "label" if name in labels else "feature")
        fix = ("Regenerate the soft labels (check the teacher's outputs) or drop those rows"
               if name in soft else "Fix or drop those rows (or fill them with a finite value)")
        raise ValueError(
            f"{path}: {kind} column {name!r} has {count} NaN/inf value(s), first at "
            f"{_row_word(config)} {row} ({value}). {fix} before training.")
    return rows, kept


def _row_word(config) -> str:
    """How a file's rows are numbered: by line for CSV (header included), else by record."""
    return "line" if formats.of(config.data_config) is formats.CSV else "row"


def _data_files(uri: str) -> list:
    """The data files under ``uri`` (FileNotFoundError naming it when none): local ones as
    paths, remote ones as URIs (read shard by shard, never all downloaded first)."""
    return [f if filesystems.is_remote(f) else filesystems.localize(f)
            for f in filesystems.expand(uri)]


def _check_columns(path: str, config, needed: list, optional: frozenset) -> None:
    """Raises ValueError naming the file, the missing columns and the features reading them."""
    for name in needed:
        config_lib.input_field(config, name)  # the column must at least be declared
    available, note = tables.file_columns(path, config.data_config, optional)
    missing = [name for name in needed if name not in available]
    if not missing:
        return
    readers = {}
    for fc in config_lib.all_features(config):
        for name in fc.input_names:
            readers.setdefault(name, []).append(config_lib.feature_name(fc))
    labels = set(config_lib.label_fields(config))
    described = ", ".join(
        f"{name!r} (read by feature {', '.join(readers[name])})" if name in readers
        else f"{name!r} (a label)" if name in labels else repr(name) for name in missing)
    raise ValueError(f"{path}: column(s) {described} missing from the data; the file has "
                     f"{available}. Add the column to the data, or remove the feature from the "
                     "config (and from its feature groups)." + (f" {note}" if note else ""))


def _tf_compression(path: tf.Tensor) -> tf.Tensor:
    """GZIP for a path tensor ending in ``.gz`` (as the Arrow readers decide), inside
    ``interleave``."""
    return tf.where(tf.strings.regex_full_match(path, r".*\.gz"), "GZIP", "")


class _LineReader:
    """Shared tf.data plumbing for line-oriented formats: shards -> lines -> batches -> dicts."""

    def __init__(self, files: list, config, columns: list, labels: list):
        self.files = files
        self.config = config
        self.columns = columns
        self.labels = labels

    def _lines(self, path: tf.Tensor) -> tf.data.Dataset:
        raise NotImplementedError

    def _decode(self, lines: tf.Tensor):
        raise NotImplementedError

    def dataset(self, *, batch_size: int, shuffle: bool, num_epochs: int,
                seed: Optional[int]) -> tf.data.Dataset:
        files = tf.data.Dataset.from_tensor_slices(self.files)
        if shuffle:
            files = files.shuffle(len(self.files), seed=seed, reshuffle_each_iteration=True)
        files = files.repeat() if num_epochs == 0 else files.repeat(num_epochs)
        # Unshuffled data keeps file order (shard by shard); shuffled data reads shards in
        # parallel. Decoding, the costly part, runs in parallel either way.
        lines = files.interleave(self._lines,
                                 cycle_length=min(len(self.files), 8) if shuffle else 1,
                                 block_length=batch_size, num_parallel_calls=_AUTOTUNE,
                                 deterministic=not shuffle)
        if shuffle:
            lines = lines.shuffle(max(self.config.data_config.shuffle_buffer_size, 1), seed=seed)
        batches = lines.batch(batch_size).map(self._decode, num_parallel_calls=_AUTOTUNE,
                                              deterministic=not shuffle)
        return batches.prefetch(_AUTOTUNE)


class _CsvReader(_LineReader):
    """CSV shards: ``tf.io.decode_csv`` on whole batches of lines, only the needed columns."""

    def __init__(self, files, config, columns, labels, optional: frozenset):
        super().__init__(files, config, columns, labels)
        data_config = config.data_config
        if len(data_config.separator) != 1:
            raise ValueError(f"data_config.separator must be one character for CSV input, got "
                             f"{data_config.separator!r}.")
        order = self._layout(files, data_config, optional)
        wanted = set(columns) | set(labels)
        self._selected = [(index, name) for index, name in enumerate(order) if name in wanted]
        self._defaults = [self._record_default(name) for _, name in self._selected]

    @staticmethod
    def _layout(files, data_config, optional: frozenset) -> list:
        """The column names all shards share (columns are selected by position)."""
        csv_format = formats.CSV.module
        layouts = {path: csv_format.column_names(path, data_config, optional) for path in files
                   if os.path.getsize(path) > 0}
        if not layouts:
            return [field.input_name for field in data_config.input_fields]
        first_path, first = next(iter(layouts.items()))
        what = "header" if data_config.with_header else "columns"
        for path, layout in layouts.items():
            if layout != first:
                raise ValueError(f"{path}: {what} {layout} differs from {first_path}'s {first}. "
                                 "Write every shard with the same columns in the same order.")
        return first

    def _record_default(self, name: str):
        field = config_lib.input_field(self.config, name)
        if name not in self.columns:
            return tf.constant([0.0], tf.float32)  # a label
        if field.input_type == _BOOL:
            return tf.constant([str(features_lib.default_value(field))])  # "true"/"1" -> 1 below
        value = features_lib.default_value(field)
        return tf.constant([value], features_lib.serving_dtype(field.input_type))

    def _lines(self, path):
        lines = tf.data.TextLineDataset(path, compression_type=_tf_compression(path))
        return lines.skip(1) if self.config.data_config.with_header else lines

    def _decode(self, lines):
        values = tf.io.decode_csv(lines, self._defaults,
                                  field_delim=self.config.data_config.separator,
                                  select_cols=[index for index, _ in self._selected])
        decoded = {name: value for (_, name), value in zip(self._selected, values)}
        features = {}
        for name in self.columns:
            value = decoded[name]
            if config_lib.input_field(self.config, name).input_type == _BOOL:
                lowered = tf.strings.lower(tf.strings.strip(value))
                value = tf.cast((lowered == "true") | (lowered == "1"), tf.int64)
            features[name] = value
        labels = {name: tf.cast(decoded[name], tf.float32) for name in self.labels}
        return features, labels


class _TfRecordReader(_LineReader):
    """TFRecord shards of ``tf.Example``: ``tf.io.parse_example`` on whole batches."""

    def __init__(self, files, config, columns, labels):
        super().__init__(files, config, columns, labels)
        self._spec = {}
        for name in columns:
            field = config_lib.input_field(config, name)
            self._spec[name] = tf.io.FixedLenFeature(
                [], features_lib.serving_dtype(field.input_type),
                features_lib.default_value(field))
        for name in labels:
            field = config_lib.input_field(config, name)
            self._spec.setdefault(name, tf.io.FixedLenFeature(
                [], features_lib.serving_dtype(field.input_type)))

    def _lines(self, path):
        return tf.data.TFRecordDataset(path, compression_type=_tf_compression(path))

    def _decode(self, records):
        parsed = tf.io.parse_example(records, self._spec)
        return ({name: parsed[name] for name in self.columns},
                {name: tf.cast(parsed[name], tf.float32) for name in self.labels})


def _arrow_dataset(files, config, columns, labels, *, batch_size, shuffle, num_epochs, seed,
                   optional, exclude_fold: Optional[ExcludedFold]):
    """Shards of any format read by pyarrow in column batches (no per-row work): Parquet, and
    remote shards, which are downloaded one ahead and deleted once read, so training never
    holds more than two shards on local disk."""
    dtypes = _feature_dtypes(config, columns)
    fields = list(dict.fromkeys(columns + labels + ([exclude_fold.key] if exclude_fold else [])))
    window = batch_size * max(1, -(-config.data_config.shuffle_buffer_size // batch_size))

    def batches():
        rng = np.random.default_rng(seed)
        epoch = 0
        while num_epochs == 0 or epoch < num_epochs:
            epoch += 1
            order = rng.permutation(len(files)) if shuffle else range(len(files))
            for path in filesystems.local_shards([files[index] for index in order]):
                for batch in tables.iter_batches(path, config.data_config,
                                                 batch_size=window if shuffle else batch_size,
                                                 fields=fields, optional_fields=optional):
                    if exclude_fold is not None:
                        batch = batch.filter(pa.array(
                            exclude_fold.keeps(batch.column(exclude_fold.key))))
                    features = {n: _to_numpy(batch, n, d) for n, d in dtypes.items()}
                    targets = {n: _to_numpy(batch, n, tf.float32) for n in labels}
                    rows = np.arange(batch.num_rows)
                    if shuffle:
                        rows = rng.permutation(batch.num_rows)
                    for start in range(0, batch.num_rows, batch_size):
                        take = rows[start:start + batch_size]
                        yield ({n: v[take] for n, v in features.items()},
                               {n: v[take] for n, v in targets.items()})

    dataset = tf.data.Dataset.from_generator(batches,
                                             output_signature=_signature(dtypes, labels))
    if exclude_fold is not None:  # refill the batches the filter thinned
        dataset = dataset.rebatch(batch_size)
    return dataset.prefetch(_AUTOTUNE)


def _session_dataset(files, config, columns, labels, session_column, *, batch_size, shuffle,
                     num_epochs, seed, optional, exclude_fold: Optional[ExcludedFold]):
    """The needed columns of all files in memory, batched whole sessions at a time."""
    dtypes = _feature_dtypes(config, columns)
    fields = list(dict.fromkeys(columns + labels + [session_column] +
                                ([exclude_fold.key] if exclude_fold else [])))
    table = pa.concat_tables(tables.read_table(path, config.data_config, fields=fields,
                                               optional_fields=optional) for path in files)
    if exclude_fold is not None:
        table = table.filter(pa.array(exclude_fold.keeps(table.column(exclude_fold.key))))
    features = {n: _to_numpy(table, n, d) for n, d in dtypes.items()}
    targets = {n: _to_numpy(table, n, tf.float32) for n in labels}
    ids = table.column(session_column).to_numpy(zero_copy_only=False)
    plan = sessions.session_batches(ids, batch_size,
                                    np.random.default_rng(seed) if shuffle else None)
    logger.info("Session-grouped batches on %r: %d sessions in %d batches, %.1f pairs per "
                "batch, %.1f%% of sessions kept whole", session_column, plan.sessions,
                len(plan.batches), plan.pairs_per_batch, 100 * plan.kept_whole)
    if plan.split_sessions:
        logger.warning("%d of %d sessions have more rows than batch_size %d and are split over "
                       "batches (pairs across the pieces are lost); raise batch_size to keep "
                       "them whole", plan.split_sessions, plan.sessions, batch_size)

    def batches():
        rng = np.random.default_rng(seed)
        epoch = 0
        while num_epochs == 0 or epoch < num_epochs:
            epoch += 1
            packed = sessions.session_batches(ids, batch_size, rng if shuffle else None)
            for take in packed.batches:
                yield ({n: v[take] for n, v in features.items()},
                       {n: v[take] for n, v in targets.items()})

    return tf.data.Dataset.from_generator(
        batches, output_signature=_signature(dtypes, labels)).prefetch(_AUTOTUNE)


def _feature_dtypes(config, columns) -> dict:
    return {name: features_lib.serving_dtype(config_lib.input_field(config, name).input_type)
            for name in columns}


def _signature(dtypes: dict, labels: list) -> tuple:
    return ({n: tf.TensorSpec([None], d) for n, d in dtypes.items()},
            {n: tf.TensorSpec([None], tf.float32) for n in labels})


def _to_numpy(batch, name: str, dtype: tf.DType) -> np.ndarray:
    """A typed column (defaults already filled by ``tables``) as the numpy a tensor takes."""
    values = batch.column(name).to_numpy(zero_copy_only=False)
    return values.astype(object) if dtype == tf.string else values.astype(dtype.as_numpy_dtype)
