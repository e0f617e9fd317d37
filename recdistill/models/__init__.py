"""Keras models recdistill trains: the DSSM student and the DCN / DeepFM teachers.

``build_model(config)`` resolves ``model_config.model_class`` through one explicit dict, so
the set of models is visible in one place. The GBDT teacher is not a Keras model and lives in
``recdistill.models.gbdt``.

Imports: ``recdistill.features``, ``recdistill.config``, ``recdistill.protos``; never
``recdistill.data`` or ``kfp``.
"""

import keras

from recdistill.models.dcn import DCN
from recdistill.models.deepfm import DeepFM
from recdistill.models.dssm import DSSM
from recdistill.protos import pipeline_pb2

#: model_class -> Keras model class.
MODELS = {"DSSM": DSSM, "DCN": DCN, "DeepFM": DeepFM}


def build_model(config: pipeline_pb2.EasyRecConfig) -> keras.Model:
    """Builds the Keras model ``config.model_config.model_class`` names.

    The model is not yet built (weights are created on the first call); call it once on a
    batch of raw columns (``model.input_columns``) before reading ``model.losses``.

    Raises:
      ValueError: model_class is GBDT (not a Keras model) or unknown.
    """
    model_class = config.model_config.model_class
    if model_class == "GBDT":
        raise ValueError("model_config.model_class 'GBDT' is not a Keras model; train it with "
                         "recdistill.models.gbdt.")
    if model_class not in MODELS:
        raise ValueError(f"model_config.model_class {model_class!r} is unknown; valid: "
                         f"{', '.join(sorted(MODELS) + ['GBDT'])}.")
    return MODELS[model_class](config, name=model_class.lower())
