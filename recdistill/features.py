"""Features: turns EasyRec ``FeatureConfig`` entries into Keras layers over raw columns.

This module owns the mapping from a raw input column (as it arrives at serving time: one
tensor of shape ``[B]`` per input field, in its serving dtype) to a dense float32 block of
shape ``[B, d]``. The preprocessing (hashing, vocabulary lookup, bucketising, normalising)
lives inside the layers, so an exported model takes raw columns.

Encoders get everything as values: a vocabulary file is read here, once, by
:func:`vocabulary`, and the list of tokens is handed to the layer. Models never read paths.

Imports: only ``recdistill.config`` and ``recdistill.protos`` (and ``recdistill.data.filesystems`` lazily, for
``vocab_file``); never ``kfp`` or models.
"""

import logging
from typing import Iterable, Mapping, Optional, Sequence

import keras
import tensorflow as tf
from google.protobuf import text_format

from recdistill import config as config_lib
from recdistill.config import feature_name
from recdistill.protos import pipeline_pb2

logger = logging.getLogger(__name__)

_Field = pipeline_pb2.DatasetConfig.Field
_FieldType = pipeline_pb2.DatasetConfig.FieldType
_FeatureConfig = pipeline_pb2.FeatureConfig

#: Serving dtype of each input field type: what ``serving_default`` takes and what
#: ``tf.io.parse_example`` can parse (tf.Example knows only int64, float32 and bytes).
SERVING_DTYPES = {
    _FieldType.Value("STRING"): tf.string,
    _FieldType.Value("INT32"): tf.int64,
    _FieldType.Value("INT64"): tf.int64,
    _FieldType.Value("BOOL"): tf.int64,
    _FieldType.Value("FLOAT"): tf.float32,
    _FieldType.Value("DOUBLE"): tf.float32,
}

#: ``RawFeature.normalizer_fn`` methods and the parameters each takes.
NORMALIZER_METHODS = {
    "log10": ("threshold",),
    "zscore": ("mean", "standard_deviation"),
    "minmax": ("min", "max"),
}


def serving_dtype(field_type: int) -> tf.DType:
    """The serving dtype for a ``DatasetConfig.FieldType`` value (see :data:`SERVING_DTYPES`)."""
    if field_type not in SERVING_DTYPES:
        raise ValueError(f"input_type {field_type} has no serving dtype; valid: "
                         f"{[_FieldType.Name(t) for t in SERVING_DTYPES]}.")
    return SERVING_DTYPES[field_type]


def feature_configs(config: pipeline_pb2.EasyRecConfig) -> dict:
    """Feature name -> FeatureConfig over ``feature_configs`` and ``feature_config.features``."""
    return {feature_name(fc): fc for fc in config_lib.all_features(config)}


def _resolve(config: pipeline_pb2.EasyRecConfig, names: Iterable[str]) -> list:
    by_name = feature_configs(config)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"features {unknown} are not in feature_configs; valid: "
                         f"{sorted(by_name)}. Fix the feature group or add the features.")
    return [by_name[n] for n in names]


def input_field_of(config: pipeline_pb2.EasyRecConfig, fc: _FeatureConfig) -> _Field:
    """The single input field a supported feature reads (its ``input_names[0]``)."""
    if len(fc.input_names) != 1:
        raise ValueError(f"feature {feature_name(fc)!r}: input_names must name exactly one "
                         f"input field, got {list(fc.input_names)}. ComboFeature-style "
                         "features with several inputs are not supported.")
    return config_lib.input_field(config, fc.input_names[0])


def input_columns(config: pipeline_pb2.EasyRecConfig,
                  feature_names: Iterable[str]) -> dict:
    """The raw columns (input name -> serving dtype) that the named features read."""
    columns = {}
    for fc in _resolve(config, list(feature_names)):
        field = input_field_of(config, fc)
        columns[field.input_name] = serving_dtype(field.input_type)
    return columns


def default_value(field: _Field):
    """The value a missing ``field`` takes in a tf.Example: ``default_val`` or 0 / ""."""
    dtype = serving_dtype(field.input_type)
    text = field.default_val
    if dtype == tf.string:
        return text
    if not text:
        return 0 if dtype == tf.int64 else 0.0
    try:
        if field.input_type == _FieldType.Value("BOOL"):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return int(text.lower() in ("true", "1"))
        return int(text) if dtype == tf.int64 else float(text)
    except ValueError:
        raise ValueError(f"input field {field.input_name!r}: default_val {text!r} is not a "
                         f"{_FieldType.Name(field.input_type)}. Fix default_val.") from None


def example_spec(config: pipeline_pb2.EasyRecConfig, columns: Mapping[str, tf.DType]) -> dict:
    """``tf.io.parse_example`` spec for raw ``columns`` (input name -> serving dtype).

    One ``FixedLenFeature([], dtype)`` per column, defaulting to the input field's
    :func:`default_value`; serving dtypes are exactly the ones tf.Example stores.
    """
    return {name: tf.io.FixedLenFeature(
                [], dtype, default_value=default_value(config_lib.input_field(config, name)))
            for name, dtype in columns.items()}


def vocabulary(fc: _FeatureConfig) -> list:
    """The tokens of ``vocab_list``, or the lines of ``vocab_file`` (local or gs://)."""
    if fc.vocab_list:
        return list(fc.vocab_list)
    if not fc.vocab_file:
        return []
    from recdistill.data import filesystems  # only here: vocabularies are the one file read

    with filesystems.open_input(fc.vocab_file) as f:
        tokens = [line.strip() for line in f.read().decode("utf-8").splitlines()]
    tokens = [t for t in tokens if t]
    if not tokens:
        raise ValueError(f"feature {feature_name(fc)!r}: vocab_file {fc.vocab_file} is empty. "
                         "Write one token per line.")
    logger.info("Read %d tokens for feature %r from %s", len(tokens), feature_name(fc),
                fc.vocab_file)
    return tokens


def _parse_normalizer(fc: _FeatureConfig) -> tuple:
    """Parses ``normalizer_fn`` ("method=zscore,mean=1,standard_deviation=2") -> (method, params)."""
    items = dict(part.split("=", 1) for part in fc.normalizer_fn.split(",") if "=" in part)
    method = items.pop("method", "")
    where = f"feature {feature_name(fc)!r}: normalizer_fn {fc.normalizer_fn!r}"
    if method not in NORMALIZER_METHODS:
        raise ValueError(f"{where} has method {method!r}; valid: {sorted(NORMALIZER_METHODS)}.")
    unknown = sorted(set(items) - set(NORMALIZER_METHODS[method]))
    if unknown:
        raise ValueError(f"{where} has unknown parameters {unknown}; {method} takes "
                         f"{list(NORMALIZER_METHODS[method])}.")
    try:
        params = {k: float(v) for k, v in items.items()}
    except ValueError:
        raise ValueError(f"{where} has a non-numeric parameter. Use numbers.") from None
    if method == "zscore" and params.get("standard_deviation", 1.0) <= 0:
        raise ValueError(f"{where}: standard_deviation must be > 0.")
    if method == "minmax" and params.get("max", 1.0) <= params.get("min", 0.0):
        raise ValueError(f"{where}: max must be > min.")
    return method, params


def l2_regularizer(weight: float) -> Optional[keras.regularizers.Regularizer]:
    """``keras.regularizers.L2(weight)``, or None (no regularizer) when ``weight`` is 0."""
    return keras.regularizers.L2(weight) if weight > 0 else None


def _embedding(name: str, rows: int, dim: int, regularization: float) -> keras.layers.Embedding:
    return keras.layers.Embedding(rows, dim, embeddings_regularizer=l2_regularizer(regularization),
                                  name=name)


def _as_string(x: tf.Tensor) -> tf.Tensor:
    return x if x.dtype == tf.string else tf.strings.as_string(x)


@keras.saving.register_keras_serializable(package="recdistill")
class FeatureEncoder(keras.layers.Layer):
    """Encodes one raw column into a float32 block ``[B, output_dim]``.

    IdFeature (one categorical value per row; string or integer column):
      * ``hash_bucket_size``: ``tf.strings.to_hash_bucket_fast`` (FarmHash, deterministic
        across processes) of the value's string form, as EasyRec does;
      * ``vocab_list`` / ``vocab_file``: index in the vocabulary, out-of-vocabulary -> row 0,
        tokens -> rows 1..V;
      * ``num_buckets``: the integer id itself; ids outside ``[0, num_buckets)`` are wrapped
        with ``floormod`` (so -1 -> num_buckets-1) rather than clipped, which would pile them
        all into the edge buckets.
      Then an embedding of ``embedding_dim`` rows.

    RawFeature (one number per row): cast to float32, then
      * ``boundaries``: bucket ``i`` with ``boundaries[i-1] <= x < boundaries[i]`` (the
        ``numpy.digitize`` convention), then an embedding when ``embedding_dim > 0`` else a
        one-hot of ``len(boundaries) + 1`` columns;
      * otherwise min-max (``(x - min_val) / (max_val - min_val)`` when ``max_val > min_val``)
        or ``normalizer_fn`` (log10 of ``max(x, threshold)``, zscore, minmax); the value is
        the output, or is multiplied by a learned ``embedding_dim`` vector when that is > 0.

    TagFeature (a string of tokens joined by ``separator``): split, empty tokens dropped,
    each token hashed / looked up as for IdFeature, embedded, and pooled with ``combiner``
    ("mean" or "sum"; a row without tokens gives zeros).

    Example:
      >>> fc = text_format.Parse('input_names: "cat" hash_bucket_size: 10 embedding_dim: 4',
      ...                        pipeline_pb2.FeatureConfig())
      >>> enc = FeatureEncoder(text_format.MessageToString(fc), vocab=[])
      >>> enc(tf.constant(["a", "b"])).shape
      TensorShape([2, 4])

    Args:
      feature_config: the FeatureConfig, as text format (so the layer serialises as text).
      vocab: the vocabulary tokens (values, never a path); empty when unused.
      embedding_dim: overrides the config's ``embedding_dim`` (DeepFM's wide part uses
        ``wide_output_dim``); None keeps it.
      embedding_regularization: L2 weight on the embedding table.
    """

    def __init__(self, feature_config: str, vocab: Sequence[str] = (),
                 embedding_dim: Optional[int] = None, embedding_regularization: float = 0.0,
                 **kwargs):
        fc = text_format.Parse(feature_config, _FeatureConfig())
        kwargs.setdefault("name", f"encode_{feature_name(fc)}")
        super().__init__(**kwargs)
        self._fc_text = feature_config
        self.fc = fc
        self.vocab = list(vocab)
        self.embedding_dim = fc.embedding_dim if embedding_dim is None else int(embedding_dim)
        self._embedding_dim_override = embedding_dim
        self.embedding_regularization = float(embedding_regularization)
        self._where = f"feature {feature_name(fc)!r}"
        kind = _FeatureConfig.FeatureType.Name(fc.feature_type)
        if kind in ("IdFeature", "TagFeature"):
            self._init_categorical(kind)
        elif kind == "RawFeature":
            self._init_raw()
        else:
            raise ValueError(f"{self._where}: feature_type {kind} is not supported; valid: "
                             "IdFeature, RawFeature, TagFeature.")

    # ------------------------------------------------------------------ construction
    def _init_categorical(self, kind: str) -> None:
        fc = self.fc
        modes = [m for m, on in (("hash_bucket_size", fc.hash_bucket_size > 0),
                                 ("vocab", bool(self.vocab)),
                                 ("num_buckets", fc.num_buckets > 0)) if on]
        if len(modes) != 1:
            raise ValueError(f"{self._where}: set exactly one of hash_bucket_size, "
                             f"vocab_list/vocab_file, num_buckets; got {modes or 'none'}.")
        if self.embedding_dim <= 0:
            raise ValueError(f"{self._where}: {kind} needs embedding_dim > 0, got "
                             f"{self.embedding_dim}. Set embedding_dim.")
        if kind == "TagFeature" and fc.combiner not in ("mean", "sum"):
            raise ValueError(f"{self._where}: combiner {fc.combiner!r} is not supported; "
                             "valid: mean, sum.")
        self.mode = modes[0]
        self.lookup = None
        if self.mode == "hash_bucket_size":
            rows = fc.hash_bucket_size
        elif self.mode == "num_buckets":
            rows = fc.num_buckets
        else:
            self.lookup = keras.layers.StringLookup(vocabulary=self.vocab, num_oov_indices=1,
                                                    name=f"{self.name}_vocab")
            rows = len(self.vocab) + 1
        self.embedding = _embedding(f"{self.name}_emb", rows, self.embedding_dim,
                                    self.embedding_regularization)
        self.output_dim = self.embedding_dim

    def _init_raw(self) -> None:
        fc = self.fc
        if fc.raw_input_dim != 1:
            raise ValueError(f"{self._where}: raw_input_dim must be 1, got {fc.raw_input_dim}. "
                             "Split multi-valued raw inputs into one field per value.")
        self.boundaries = list(fc.boundaries)
        if self.boundaries != sorted(self.boundaries):
            raise ValueError(f"{self._where}: boundaries must be ascending, got "
                             f"{self.boundaries}.")
        if fc.normalizer_fn:
            self.normalizer = _parse_normalizer(fc)
        elif fc.max_val > fc.min_val:
            self.normalizer = ("minmax", {"min": fc.min_val, "max": fc.max_val})
        elif fc.max_val != fc.min_val:
            raise ValueError(f"{self._where}: max_val ({fc.max_val}) must be > min_val "
                             f"({fc.min_val}) for min-max normalisation.")
        else:
            self.normalizer = None
        self.embedding = self.projection = None
        if self.boundaries:
            buckets = len(self.boundaries) + 1
            if self.embedding_dim > 0:
                self.embedding = _embedding(f"{self.name}_emb", buckets, self.embedding_dim,
                                            self.embedding_regularization)
                self.output_dim = self.embedding_dim
            else:
                self.output_dim = buckets
        elif self.embedding_dim > 0:
            self.projection = keras.layers.Dense(self.embedding_dim, use_bias=False,
                                                 kernel_regularizer=l2_regularizer(
                                                     self.embedding_regularization),
                                                 name=f"{self.name}_proj")
            self.output_dim = self.embedding_dim
        else:
            self.output_dim = 1

    # ------------------------------------------------------------------ encoding
    def _ids(self, values: tf.Tensor) -> tf.Tensor:
        """Row indices into the embedding table for a 1-D tensor of raw values."""
        if self.mode == "hash_bucket_size":
            return tf.strings.to_hash_bucket_fast(_as_string(values), self.fc.hash_bucket_size)
        if self.mode == "vocab":
            return tf.cast(self.lookup(_as_string(values)), tf.int64)
        ids = values
        if ids.dtype == tf.string:
            ids = tf.strings.to_number(ids, out_type=tf.int64)
        return tf.math.floormod(tf.cast(ids, tf.int64), self.fc.num_buckets)

    def _normalize(self, x: tf.Tensor) -> tf.Tensor:
        method, p = self.normalizer
        if method == "log10":
            return tf.math.log(tf.maximum(x, p.get("threshold", 1e-10))) / tf.math.log(10.0)
        if method == "zscore":
            return (x - p.get("mean", 0.0)) / p.get("standard_deviation", 1.0)
        return (x - p.get("min", 0.0)) / (p.get("max", 1.0) - p.get("min", 0.0))

    def call(self, values):
        values = tf.reshape(values, [-1])
        kind = _FeatureConfig.FeatureType.Name(self.fc.feature_type)
        if kind == "IdFeature":
            return self.embedding(self._ids(values))
        if kind == "TagFeature":
            return self._pool(values)
        x = tf.cast(values, tf.float32) if values.dtype != tf.string else \
            tf.strings.to_number(values, tf.float32)
        if self.boundaries:
            buckets = tf.raw_ops.Bucketize(input=x, boundaries=self.boundaries)
            if self.embedding is not None:
                return self.embedding(buckets)
            return tf.one_hot(buckets, self.output_dim, dtype=self.compute_dtype)
        if self.normalizer is not None:
            x = self._normalize(x)
        # Bucketised and normalised in float32 for exact boundaries; emitted in the layer's
        # compute dtype (float16 under mixed precision) so feature blocks concatenate.
        x = tf.cast(x[:, None], self.compute_dtype)
        return self.projection(x) if self.projection is not None else x

    def _pool(self, values: tf.Tensor) -> tf.Tensor:
        tokens = tf.strings.split(_as_string(values), self.fc.separator)
        tokens = tf.ragged.boolean_mask(tokens, tf.strings.length(tokens) > 0)
        vectors = tokens.with_flat_values(self.embedding(self._ids(tokens.flat_values)))
        total = tf.reduce_sum(vectors, axis=1)
        if self.fc.combiner == "sum":
            return total
        count = tf.cast(tokens.row_lengths(), total.dtype)[:, None]
        return total / tf.maximum(count, 1.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(feature_config=self._fc_text, vocab=self.vocab,
                      embedding_dim=self._embedding_dim_override,
                      embedding_regularization=self.embedding_regularization)
        return config


def build_encoder(config: pipeline_pb2.EasyRecConfig, name: str, *,
                  embedding_dim: Optional[int] = None,
                  embedding_regularization: float = 0.0,
                  layer_name: Optional[str] = None) -> FeatureEncoder:
    """A :class:`FeatureEncoder` for feature ``name`` of ``config`` (reads its vocab_file)."""
    (fc,) = _resolve(config, [name])
    input_field_of(config, fc)  # fails early, naming the feature, if its input is missing
    kwargs = {"name": layer_name} if layer_name else {}
    return FeatureEncoder(text_format.MessageToString(fc), vocab=vocabulary(fc),
                          embedding_dim=embedding_dim,
                          embedding_regularization=embedding_regularization, **kwargs)

