"""DSSM: the two-tower student (EasyRec's DSSM semantics).

A user tower and an item tower (DNNs over their feature groups, last layer linear) each
give an embedding; the logit is their similarity (cosine by default), scaled by a learnable
``|w|`` plus a bias when ``scale_simi`` is set, as EasyRec does. Only the features in the two
tower groups are inputs, so a student never needs a teacher-only (privileged) feature.

Pre-ranking serves the towers apart: item embeddings are computed once for the catalogue and
the user embedding once per request, and the logit is their similarity. So the model exposes
each tower on its own (:meth:`DSSM.tower_signatures`, exported as the ``user_embedding`` and
``item_embedding`` signatures) and the numbers a server needs to combine them
(:meth:`DSSM.two_tower_metadata`, recorded in ``recdistill.json``); :meth:`DSSM.call` is built
from the same three pieces, so the combined towers equal the joint ``logits``.

Imports: ``recdistill.models.layers`` and below; never ``recdistill.data``.
"""

import keras
import tensorflow as tf

from recdistill import config as config_lib
from recdistill.models import layers
from recdistill.protos import pipeline_pb2

#: Similarities DSSM supports (``model_config.dssm.simi_func``).
SIMILARITIES = ("COSINE", "INNER_PRODUCT")
#: The export signatures that run one tower each (see :meth:`DSSM.tower_signatures`).
USER_SIGNATURE = "user_embedding"
ITEM_SIGNATURE = "item_embedding"


@keras.saving.register_keras_serializable(package="recdistill")
class DSSM(layers.RecModel):
    """Two-tower retrieval/ranking model.

    Outputs (float32): ``user_tower_emb``, ``item_tower_emb`` ``[B, d]`` (tower outputs);
    ``user_emb``, ``item_emb`` ``[B, d]`` (L2-normalised for COSINE, else the tower outputs);
    ``logits`` ``[B]`` = ``simi(user_emb, item_emb) * |sim_w| + sim_b`` with ``sim_w`` = 1 and
    ``sim_b`` = 0 at init (just the similarity when ``scale_simi`` is false); ``probs`` =
    ``sigmoid(logits)``.

    Args:
      pipeline_config: an EasyRecConfig (or its text) whose model_config has a ``dssm`` block.
    """

    def __init__(self, pipeline_config, **kwargs):
        super().__init__(pipeline_config, **kwargs)
        dssm = self.model_config.dssm
        if self.model_config.task_towers:
            raise ValueError("model_config.task_towers is not supported for DSSM (one similarity "
                             "logit). Remove task_towers or use DCN/DeepFM for multi-task.")
        self.similarity = pipeline_pb2.Similarity.Name(dssm.simi_func)
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"model_config.dssm.simi_func {self.similarity} is not supported; "
                             f"valid: {', '.join(SIMILARITIES)}.")
        for tower in ("user_tower", "item_tower"):
            if not getattr(dssm, tower).dnn.hidden_units:
                raise ValueError(f"model_config.dssm.{tower}.dnn.hidden_units is empty. Set the "
                                 "tower widths, e.g. [64, 32]; the last is the embedding size.")
        if dssm.user_tower.dnn.hidden_units[-1] != dssm.item_tower.dnn.hidden_units[-1]:
            raise ValueError("model_config.dssm: the last hidden_units of user_tower "
                             f"({dssm.user_tower.dnn.hidden_units[-1]}) and item_tower "
                             f"({dssm.item_tower.dnn.hidden_units[-1]}) must match: they are the "
                             "embeddings compared.")
        cfg = self.pipeline_config
        self.user_group = self.feature_group(config_lib.dssm_tower_group(cfg, "user_tower"),
                                             name="user_features")
        self.item_group = self.feature_group(config_lib.dssm_tower_group(cfg, "item_tower"),
                                             name="item_features")
        self.user_tower = layers.Tower.from_proto(dssm.user_tower.dnn, dssm.l2_regularization,
                                                  name="user_dnn", last_linear=True)
        self.item_tower = layers.Tower.from_proto(dssm.item_tower.dnn, dssm.l2_regularization,
                                                  name="item_dnn", last_linear=True)
        self.scale_simi = dssm.scale_simi
        if self.scale_simi:
            self.sim_w = self.add_weight(name="sim_w", shape=(1,), initializer="ones")
            self.sim_b = self.add_weight(name="sim_b", shape=(1,), initializer="zeros")
        self.prediction_names = ["logits", "probs", "user_tower_emb", "item_tower_emb",
                                 "user_emb", "item_emb"]

    def user_embedding(self, features, training=None) -> dict:
        """The user tower alone: ``user_tower_emb`` and ``user_emb`` from the user columns."""
        return self._embed(self.user_group, self.user_tower, "user", features, training)

    def item_embedding(self, features, training=None) -> dict:
        """The item tower alone: ``item_tower_emb`` and ``item_emb`` from the item columns."""
        return self._embed(self.item_group, self.item_tower, "item", features, training)

    def _embed(self, group, tower, side, features, training):
        tower_emb = tower(group(features), training=training)
        emb = tf.math.l2_normalize(tower_emb, axis=-1) if self.similarity == "COSINE" else tower_emb
        return {f"{side}_tower_emb": tower_emb, f"{side}_emb": emb}

    def combine(self, user_emb, item_emb):
        """The logit ``<user_emb, item_emb> * |sim_w| + sim_b`` (``user_emb``/``item_emb`` are
        already normalised for COSINE, so the inner product is the cosine)."""
        logits = tf.reduce_sum(user_emb * item_emb, axis=-1)
        if self.scale_simi:
            logits = logits * tf.abs(self.sim_w) + self.sim_b
        return logits

    def call(self, features, training=None):
        outputs = {**self.user_embedding(features, training=training),
                   **self.item_embedding(features, training=training)}
        logits = self.combine(outputs["user_emb"], outputs["item_emb"])
        return {"logits": logits, "probs": tf.sigmoid(logits), **outputs}

    def tower_signatures(self) -> dict:
        """Signature name -> ``(input columns, function)`` for each tower served on its own.

        The input columns (raw column -> serving dtype) are only that tower's, so the item
        side can be precomputed from the catalogue without any user column and back.
        """
        return {
            USER_SIGNATURE: (self._columns(self.user_group), self.user_embedding),
            ITEM_SIGNATURE: (self._columns(self.item_group), self.item_embedding),
        }

    def _columns(self, group) -> dict:
        return {name: self.input_columns[name] for name in group.input_names}

    def two_tower_metadata(self) -> dict:
        """What a server needs to turn the two signatures' outputs into the joint logit.

        ``logits = sum(user_emb * item_emb) * scale + bias`` and ``probs = sigmoid(logits)``,
        with the learned ``scale`` (``|sim_w|``) and ``bias`` (``sim_b``) read now (1 and 0
        without ``scale_simi``). ``normalized`` says ``user_emb``/``item_emb`` are already
        L2-normalised (COSINE), so the inner product above is the cosine.
        """
        scale, bias = 1.0, 0.0
        if self.scale_simi:
            scale = float(tf.abs(self.sim_w)[0])
            bias = float(self.sim_b[0])
        columns = self.tower_signatures()
        return {
            "user_signature": USER_SIGNATURE,
            "user_inputs": {n: d.name for n, d in columns[USER_SIGNATURE][0].items()},
            "user_output": "user_emb",
            "item_signature": ITEM_SIGNATURE,
            "item_inputs": {n: d.name for n, d in columns[ITEM_SIGNATURE][0].items()},
            "item_output": "item_emb",
            "similarity": self.similarity,
            "normalized": self.similarity == "COSINE",
            "scale": scale,
            "bias": bias,
            "logits": "sum(user_emb * item_emb) * scale + bias",
            "probs": "sigmoid(logits)",
        }
