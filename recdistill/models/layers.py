"""Building blocks shared by the Keras models: feature groups, DNN towers, Cross, FM, heads.

Each layer does one thing and is registered with Keras (package "recdistill").
:class:`RecModel` is the base the three Keras models share: it parses the pipeline config,
builds feature groups, and owns the attributes the trainer and exporter read
(``input_columns``, ``prediction_names``, ``targets``).

Imports: ``recdistill.features``, ``recdistill.config``, ``recdistill.protos``; never
``recdistill.data`` (models get vocabularies as values) or ``kfp``.
"""

from typing import Optional, Sequence, Union

import keras
import tensorflow as tf
from google.protobuf import text_format

from recdistill import config as config_lib
from recdistill import features as features_lib
from recdistill.protos import pipeline_pb2

#: Activation names accepted in ``DNN.activation`` (EasyRec writes "tf.nn.relu").
ACTIVATIONS = ("relu", "elu", "selu", "gelu", "sigmoid", "tanh", "swish", "leaky_relu",
               "relu6", "softplus", "linear")

_l2 = features_lib.l2_regularizer


def activation(name: str):
    """The Keras activation for an EasyRec name such as "tf.nn.relu" or "relu"."""
    short = name.split(".")[-1] if name else "relu"
    if short not in ACTIVATIONS:
        raise ValueError(f"DNN.activation {name!r} is not supported; valid: "
                         f"{', '.join(ACTIVATIONS)} (optionally prefixed 'tf.nn.').")
    return keras.activations.get(short)


@keras.saving.register_keras_serializable(package="recdistill")
class FeatureGroup(keras.layers.Layer):
    """Encodes the raw columns of one feature group.

    ``call`` returns the encoders' blocks concatenated, ``[B, sum(d_i)]``; ``call(...,
    stacked=True)`` returns them stacked, ``[B, F, d]``, which needs every feature to have the
    same width (FM's input; see :meth:`check_equal_widths`).

    Args:
      encoders: one :class:`recdistill.features.FeatureEncoder` per feature, in group order.
    """

    def __init__(self, encoders: Sequence[keras.layers.Layer], **kwargs):
        super().__init__(**kwargs)
        self.encoders = [keras.saving.deserialize_keras_object(e) if isinstance(e, dict) else e
                         for e in encoders]
        if not self.encoders:
            raise ValueError(f"feature group {self.name!r} has no features. Add feature_names.")
        self.output_dim = sum(e.output_dim for e in self.encoders)

    @property
    def input_names(self) -> list:
        """The raw column each encoder reads, in group order."""
        return [e.fc.input_names[0] for e in self.encoders]

    def call(self, features, stacked: bool = False):
        blocks = [enc(features[name]) for enc, name in zip(self.encoders, self.input_names)]
        return tf.stack(blocks, axis=1) if stacked else tf.concat(blocks, axis=1)

    def check_equal_widths(self, why: str) -> None:
        """Raises ValueError unless every feature has the same width (``stacked`` needs it)."""
        widths = {config_lib.feature_name(e.fc): e.output_dim for e in self.encoders}
        if len(set(widths.values())) != 1:
            raise ValueError(f"feature group {self.name!r}: {why} needs every feature to have "
                             f"the same embedding_dim, got {widths}. Give them one "
                             "embedding_dim.")

    def get_config(self):
        config = super().get_config()
        config["encoders"] = [keras.saving.serialize_keras_object(e) for e in self.encoders]
        return config


@keras.saving.register_keras_serializable(package="recdistill")
class Tower(keras.layers.Layer):
    """An MLP as EasyRec's DNN: per hidden layer Dense -> BatchNorm (use_bn) -> activation -> Dropout.

    With ``last_linear=True`` the last layer is a plain Dense (no BN, activation or dropout),
    as EasyRec's DSSM towers end, so the tower output can take any sign.

    Shapes: ``[B, d_in] -> [B, hidden_units[-1]]`` (``[B, d_in]`` unchanged when empty).

    Args:
      hidden_units: width of each layer.
      dropout_ratio: one rate per layer, one rate for all, or empty for none.
      activation_name: e.g. "tf.nn.relu".
      use_bn: batch-normalise before the activation (the Dense then has no bias).
      l2_regularization: L2 weight on every Dense kernel.
      last_linear: see above.
    """

    def __init__(self, hidden_units: Sequence[int], dropout_ratio: Sequence[float] = (),
                 activation_name: str = "tf.nn.relu", use_bn: bool = True,
                 l2_regularization: float = 0.0, last_linear: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = [int(u) for u in hidden_units]
        self.dropout_ratio = [float(r) for r in dropout_ratio]
        if len(self.dropout_ratio) not in (0, 1, len(self.hidden_units)):
            raise ValueError(f"{self.name}: dropout_ratio needs 0, 1 or {len(self.hidden_units)} "
                             f"values (one per hidden unit), got {self.dropout_ratio}.")
        if any(not 0 <= r < 1 for r in self.dropout_ratio):
            raise ValueError(f"{self.name}: dropout_ratio values must be in [0, 1), got "
                             f"{self.dropout_ratio}.")
        self.activation_name = activation_name
        self.use_bn = bool(use_bn)
        self.l2_regularization = float(l2_regularization)
        self.last_linear = bool(last_linear)
        act = activation(activation_name)
        rates = (self.dropout_ratio * len(self.hidden_units) if len(self.dropout_ratio) == 1
                 else self.dropout_ratio or [0.0] * len(self.hidden_units))
        self.steps = []  # flat, so Keras tracks every sublayer
        for i, (units, rate) in enumerate(zip(self.hidden_units, rates)):
            linear = self.last_linear and i == len(self.hidden_units) - 1
            self.steps.append(keras.layers.Dense(units, use_bias=linear or not self.use_bn,
                                                 kernel_regularizer=_l2(self.l2_regularization),
                                                 name=f"{self.name}_dense_{i}"))
            if linear:
                continue
            if self.use_bn:
                self.steps.append(keras.layers.BatchNormalization(name=f"{self.name}_bn_{i}"))
            self.steps.append(keras.layers.Activation(act, name=f"{self.name}_act_{i}"))
            if rate > 0:
                self.steps.append(keras.layers.Dropout(rate, name=f"{self.name}_dropout_{i}"))

    @classmethod
    def from_proto(cls, dnn: pipeline_pb2.DNN, l2_regularization: float, name: str,
                   last_linear: bool = False) -> "Tower":
        """A Tower from a ``DNN`` config block."""
        return cls(dnn.hidden_units, dnn.dropout_ratio, dnn.activation, dnn.use_bn,
                   l2_regularization, last_linear, name=name)

    def call(self, x, training=None):
        for layer in self.steps:
            x = layer(x, training=training)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(hidden_units=self.hidden_units, dropout_ratio=self.dropout_ratio,
                      activation_name=self.activation_name, use_bn=self.use_bn,
                      l2_regularization=self.l2_regularization, last_linear=self.last_linear)
        return config


@keras.saving.register_keras_serializable(package="recdistill")
class Cross(keras.layers.Layer):
    """One cross layer of a Deep & Cross Network: ``x_{l+1} = x0 * (W x_l + b) + x_l``.

    ``W`` is a full ``[d, d]`` matrix (DCN-V2, Wang et al. 2021, https://arxiv.org/abs/2008.13535;
    as ``tfrs.layers.dcn.Cross`` without the low-rank option), ``*`` is element-wise, so
    stacking ``n`` layers models feature crosses up to degree ``n + 1``.

    Shapes: ``x0, x_l: [B, d] -> [B, d]``.

    Example:
      >>> cross = Cross()
      >>> x0 = tf.ones([2, 3])
      >>> y = cross(x0, cross(x0))  # two stacked layers

    Args:
      l2_regularization: L2 weight on ``W``.
    """

    def __init__(self, l2_regularization: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if l2_regularization < 0:
            raise ValueError(f"Cross: l2_regularization must be >= 0, got {l2_regularization}.")
        self.l2_regularization = float(l2_regularization)
        self.dense = None

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim is None:
            raise ValueError("Cross: the last dimension of x0 must be known.")
        self.dense = keras.layers.Dense(dim, kernel_regularizer=_l2(self.l2_regularization),
                                        name=f"{self.name}_dense")
        self.dense.build(input_shape)

    def call(self, x0, x=None):
        x = x0 if x is None else x
        return x0 * self.dense(x) + x

    def get_config(self):
        config = super().get_config()
        config["l2_regularization"] = self.l2_regularization
        return config


@keras.saving.register_keras_serializable(package="recdistill")
class FM(keras.layers.Layer):
    """Factorisation-machine second-order term: ``0.5 * ((sum_i v_i)^2 - sum_i v_i^2)``.

    Summed over the embedding axis it equals ``sum_{i<j} <v_i, v_j>`` (Rendle 2010), the
    pairwise interaction in DeepFM (Guo et al. 2017, https://arxiv.org/abs/1703.04247),
    computed in ``O(F k)``.

    Shapes: ``[B, F, k] -> [B, k]`` (EasyRec keeps ``k``; sum it for the scalar term).

    Example:
      >>> v = tf.constant([[[1., 2.], [3., 4.]]])    # one row, two features, k=2
      >>> FM()(v)                                    # [[1*3, 2*4]] = [[3., 8.]]
    """

    def call(self, embeddings):
        square_of_sum = tf.square(tf.reduce_sum(embeddings, axis=1))
        sum_of_square = tf.reduce_sum(tf.square(embeddings), axis=1)
        return 0.5 * (square_of_sum - sum_of_square)


def _parse_pipeline_config(pipeline_config) -> pipeline_pb2.EasyRecConfig:
    if isinstance(pipeline_config, pipeline_pb2.EasyRecConfig):
        return pipeline_config
    return text_format.Parse(pipeline_config, pipeline_pb2.EasyRecConfig())


class RecModel(keras.Model):
    """Base of the Keras models: config parsing, feature groups, heads and the contract attributes.

    Subclasses create their layers in ``__init__`` (after calling this one) and implement
    ``call(features, training=None) -> dict[str, Tensor]`` over raw columns.

    Attributes:
      pipeline_config: the EasyRecConfig the model was built from.
      input_columns: raw column -> serving dtype, over the features in the groups it reads.
      prediction_names: the names ``call`` returns.
      targets: ``(pred_name, label_name, weight)`` per hard-label head.
    """

    def __init__(self, pipeline_config: Union[str, pipeline_pb2.EasyRecConfig], **kwargs):
        super().__init__(**kwargs)
        self.pipeline_config = _parse_pipeline_config(pipeline_config)
        self.model_config = self.pipeline_config.model_config
        self._groups = {g.group_name: g for g in self.model_config.feature_groups}
        self.input_columns = {}
        self.targets = self._targets()
        self.prediction_names = []

    def _targets(self) -> list:
        towers = self.model_config.task_towers
        if towers:
            names = [t.tower_name for t in towers]
            if any(not n for n in names) or len(set(names)) != len(names):
                raise ValueError(f"model_config.task_towers: tower_name must be set and unique, "
                                 f"got {names}.")
            return [(f"logits_{t.tower_name}", t.label_name, float(t.weight)) for t in towers]
        labels = config_lib.hard_label_fields(self.pipeline_config)
        if not labels:
            raise ValueError("data_config.label_fields holds no hard label (only kd soft labels, "
                             "or none); the model needs one. Add the click/label column to "
                             "label_fields.")
        return [("logits", labels[0], 1.0)]

    @property
    def head_suffixes(self) -> list:
        """"" for a single-task model, else "_<tower_name>" per task tower."""
        return [pred[len("logits"):] for pred, _, _ in self.targets]

    def feature_group(self, group_name: str, *, embedding_dim: Optional[int] = None,
                      name: Optional[str] = None) -> FeatureGroup:
        """Builds a FeatureGroup for ``group_name`` and adds its columns to ``input_columns``."""
        if group_name not in self._groups:
            raise ValueError(f"model_config.feature_groups has no group {group_name!r}; valid: "
                             f"{sorted(self._groups)}. Add the group or fix the reference.")
        names = list(self._groups[group_name].feature_names)
        layer_name = name or f"group_{group_name}"
        encoders = [features_lib.build_encoder(
            self.pipeline_config, n, embedding_dim=embedding_dim,
            embedding_regularization=self.model_config.embedding_regularization,
            layer_name=f"{layer_name}_{n}") for n in names]
        self.input_columns.update(features_lib.input_columns(self.pipeline_config, names))
        return FeatureGroup(encoders, name=layer_name)

    def heads(self, l2_regularization: float) -> list:
        """One ``Dense(1)`` logit layer per target."""
        return [keras.layers.Dense(1, kernel_regularizer=_l2(l2_regularization),
                                   name=f"head{suffix or '_logits'}")
                for suffix in self.head_suffixes]

    def head_outputs(self, logits: Sequence[tf.Tensor]) -> dict:
        """``{"logits<suffix>": [B], "probs<suffix>": [B]}`` from one ``[B]`` or ``[B, 1]`` logit per head."""
        outputs = {}
        for suffix, logit in zip(self.head_suffixes, logits):
            logit = tf.reshape(tf.cast(logit, tf.float32), [-1])
            outputs[f"logits{suffix}"] = logit
            outputs[f"probs{suffix}"] = tf.sigmoid(logit)
        return outputs

    def head_prediction_names(self) -> list:
        """The output names :meth:`head_outputs` gives."""
        return [f"{kind}{suffix}" for suffix in self.head_suffixes for kind in ("logits", "probs")]

    def get_config(self):
        return {"pipeline_config": text_format.MessageToString(self.pipeline_config),
                "name": self.name}
