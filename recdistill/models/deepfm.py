"""DeepFM: wide (first-order) + FM (second-order) + DNN teacher (EasyRec's DeepFM).

Feature groups follow EasyRec: group ``wide`` gives each feature a ``wide_output_dim``-wide
embedding whose sum is the first-order term; group ``deep`` gives the embeddings the FM
term pairs up and the DNN reads. Without ``final_dnn`` each head's logit is
``wide + fm + Dense(dnn)`` as in EasyRec; with it, ``[wide, fm, dnn]`` is concatenated and
run through ``final_dnn`` before each head's Dense.

Imports: ``recdistill.models.layers`` and below; never ``recdistill.data``.
"""

import keras
import tensorflow as tf

from recdistill.models import layers

#: The feature groups DeepFM reads (EasyRec's names).
WIDE_GROUP = "wide"
DEEP_GROUP = "deep"


@keras.saving.register_keras_serializable(package="recdistill")
class DeepFM(layers.RecModel):
    """DeepFM (Guo et al. 2017, https://arxiv.org/abs/1703.04247).

    Outputs (float32, ``[B]``): ``logits``/``probs``, or ``logits_<tower>``/``probs_<tower>``
    per task tower.

    Args:
      pipeline_config: an EasyRecConfig (or its text) whose model_config has a ``deepfm`` block.
    """

    def __init__(self, pipeline_config, **kwargs):
        super().__init__(pipeline_config, **kwargs)
        deepfm = self.model_config.deepfm
        l2 = deepfm.l2_regularization
        if deepfm.wide_output_dim < 1:
            raise ValueError(f"model_config.deepfm.wide_output_dim must be >= 1, got "
                             f"{deepfm.wide_output_dim}.")
        self.wide_group = self.feature_group(WIDE_GROUP, embedding_dim=deepfm.wide_output_dim,
                                             name="wide_features")
        self.deep_group = self.feature_group(DEEP_GROUP, name="deep_features")
        self.deep_group.check_equal_widths("DeepFM's FM term")
        self.fm = layers.FM(name="fm")
        self.dnn = layers.Tower.from_proto(deepfm.dnn, l2, name="dnn")
        self.use_final_dnn = bool(deepfm.final_dnn.hidden_units)
        self.final_dnn = (layers.Tower.from_proto(deepfm.final_dnn, l2, name="final_dnn")
                          if self.use_final_dnn else None)
        self.logit_layers = self.heads(l2)
        self.prediction_names = self.head_prediction_names()

    def call(self, features, training=None):
        wide = tf.reduce_sum(self.wide_group(features), axis=1, keepdims=True)
        embeddings = self.deep_group(features, stacked=True)
        fm = self.fm(embeddings)
        batch = tf.shape(embeddings)[0]
        deep = self.dnn(tf.reshape(embeddings, [batch, -1]), training=training)
        if self.use_final_dnn:
            hidden = self.final_dnn(tf.concat([wide, fm, deep], axis=1), training=training)
            logits = [head(hidden) for head in self.logit_layers]
        else:
            shared = wide + tf.reduce_sum(fm, axis=1, keepdims=True)
            logits = [shared + head(deep) for head in self.logit_layers]
        return self.head_outputs(logits)
