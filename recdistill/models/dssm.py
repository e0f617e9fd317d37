"""DSSM: the two-tower student (EasyRec's DSSM semantics).

A user tower and an item tower (DNNs over their feature groups, last layer linear) each
give an embedding; the logit is their similarity (cosine by default), scaled by a learnable
``|w|`` plus a bias when ``scale_simi`` is set, as EasyRec does. Only the features in the two
tower groups are inputs, so a student never needs a teacher-only (privileged) feature.

Imports: ``recdistill.models.layers`` and below; never ``recdistill.data``.
"""

import keras
import tensorflow as tf

from recdistill import config as config_lib
from recdistill.models import layers
from recdistill.protos import pipeline_pb2

#: Similarities DSSM supports (``model_config.dssm.simi_func``).
SIMILARITIES = ("COSINE", "INNER_PRODUCT")


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

    def call(self, features, training=None):
        user_tower_emb = self.user_tower(self.user_group(features), training=training)
        item_tower_emb = self.item_tower(self.item_group(features), training=training)
        user_emb, item_emb = user_tower_emb, item_tower_emb
        if self.similarity == "COSINE":
            user_emb = tf.math.l2_normalize(user_emb, axis=-1)
            item_emb = tf.math.l2_normalize(item_emb, axis=-1)
        logits = tf.reduce_sum(user_emb * item_emb, axis=-1)
        if self.scale_simi:
            logits = logits * tf.abs(self.sim_w) + self.sim_b
        return {"logits": logits, "probs": tf.sigmoid(logits),
                "user_tower_emb": user_tower_emb, "item_tower_emb": item_tower_emb,
                "user_emb": user_emb, "item_emb": item_emb}
