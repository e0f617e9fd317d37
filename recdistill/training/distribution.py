"""Which ``tf.distribute`` strategy a training run uses."""

import logging

import tensorflow as tf

logger = logging.getLogger(__name__)


def choose_strategy():
    """MirroredStrategy across every local GPU when there are several, else the default."""
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        logger.info("Training on %d GPUs with MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
