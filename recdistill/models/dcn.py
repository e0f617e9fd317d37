"""DCN: the Deep & Cross Network teacher (EasyRec's DCN, with DCN-V2 cross layers).

``deep_tower`` (a DNN over one feature group) and ``cross_tower`` (``cross_num`` stacked
:class:`~recdistill.models.layers.Cross` layers over another) are concatenated, run through
``final_dnn`` and end in one logit per target (``task_towers`` give one head each).

Imports: ``recdistill.models.layers`` and below; never ``recdistill.data``.
"""

import keras
import tensorflow as tf

from recdistill.models import layers


@keras.saving.register_keras_serializable(package="recdistill")
class DCN(layers.RecModel):
    """Deep & Cross Network (Wang et al. 2017/2021).

    Outputs (float32, ``[B]``): ``logits``/``probs``, or ``logits_<tower>``/``probs_<tower>``
    per task tower.

    Args:
      pipeline_config: an EasyRecConfig (or its text) whose model_config has a ``dcn`` block.
    """

    def __init__(self, pipeline_config, **kwargs):
        super().__init__(pipeline_config, **kwargs)
        dcn = self.model_config.dcn
        l2 = dcn.l2_regularization
        if dcn.cross_tower.cross_num < 1:
            raise ValueError(f"model_config.dcn.cross_tower.cross_num must be >= 1, got "
                             f"{dcn.cross_tower.cross_num}.")
        self.deep_group = self.feature_group(dcn.deep_tower.input, name="deep_features")
        self.cross_group = self.feature_group(dcn.cross_tower.input, name="cross_features")
        self.deep_tower = layers.Tower.from_proto(dcn.deep_tower.dnn, l2, name="deep_dnn")
        self.crosses = [layers.Cross(l2, name=f"cross_{i}")
                        for i in range(dcn.cross_tower.cross_num)]
        self.final_dnn = layers.Tower.from_proto(dcn.final_dnn, l2, name="final_dnn")
        self.logit_layers = self.heads(l2)
        self.prediction_names = self.head_prediction_names()

    def call(self, features, training=None):
        deep = self.deep_tower(self.deep_group(features), training=training)
        x0 = x = self.cross_group(features)
        for cross in self.crosses:
            x = cross(x0, x)
        hidden = self.final_dnn(tf.concat([deep, x], axis=1), training=training)
        return self.head_outputs([head(hidden) for head in self.logit_layers])
