"""Tests for recdistill.models.layers: Cross, FM and Tower checked with hand-set weights."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow as tf

from recdistill.models import layers


def test_cross_layer_computes_x0_times_affine_of_x_plus_x():
    x0 = np.array([[1.0, 2.0], [0.5, -1.0]], np.float32)
    x = np.array([[3.0, -1.0], [2.0, 0.0]], np.float32)
    w = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    b = np.array([0.5, -0.5], np.float32)
    cross = layers.Cross()
    cross(x0)
    cross.dense.kernel.assign(w)
    cross.dense.bias.assign(b)
    out = cross(tf.constant(x0), tf.constant(x)).numpy()
    # Row 0: x @ w = [3-3, 6-4] = [0, 2]; + b = [0.5, 1.5]; * x0 = [0.5, 3]; + x = [3.5, 2].
    np.testing.assert_allclose(out[0], [3.5, 2.0])
    np.testing.assert_allclose(out, x0 * (x @ w + b) + x, rtol=1e-6)
    # Without x the layer crosses x0 with itself.
    np.testing.assert_allclose(cross(tf.constant(x0)).numpy(), x0 * (x0 @ w + b) + x0,
                               rtol=1e-6)


def test_cross_regularises_its_kernel_and_round_trips_config():
    cross = layers.Cross(l2_regularization=0.5)
    cross(tf.ones([1, 3]))
    kernel = cross.dense.kernel.numpy()
    assert len(cross.losses) == 1
    np.testing.assert_allclose(float(cross.losses[0]), 0.5 * np.sum(kernel ** 2), rtol=1e-5)
    assert layers.Cross.from_config(cross.get_config()).l2_regularization == 0.5
    with pytest.raises(ValueError, match="l2_regularization.*-1"):
        layers.Cross(l2_regularization=-1)


def test_fm_equals_sum_of_pairwise_products():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(3, 4, 2)).astype(np.float32)
    out = layers.FM()(tf.constant(v)).numpy()
    expected = sum(v[:, i] * v[:, j] for i in range(4) for j in range(i + 1, 4))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layers.FM()(tf.constant([[[1., 2.], [3., 4.]]])).numpy(),
                               [[3., 8.]])


def test_tower_with_ones_weights_and_relu():
    tower = layers.Tower([2, 1], use_bn=False, activation_name="tf.nn.relu")
    x = tf.constant([[1.0, -3.0]])
    tower(x)
    for layer in tower.steps:
        if hasattr(layer, "kernel"):
            layer.kernel.assign(tf.ones_like(layer.kernel))
            layer.bias.assign(tf.ones_like(layer.bias))
    # Layer 0: relu(1 - 3 + 1) = 0 per unit; layer 1: relu(0 + 0 + 1) = 1.
    np.testing.assert_allclose(tower(x).numpy(), [[1.0]])
    tower_neg = layers.Tower([1], use_bn=False, last_linear=True)
    tower_neg(x)
    tower_neg.steps[0].kernel.assign(tf.ones([2, 1]))
    np.testing.assert_allclose(tower_neg(x).numpy(), [[-2.0]])  # no relu on the last layer


def test_tower_layout_follows_use_bn_and_dropout():
    tower = layers.Tower([4, 3], dropout_ratio=[0.5], use_bn=True, l2_regularization=0.1,
                         last_linear=True)
    kinds = [type(layer).__name__ for layer in tower.steps]
    assert kinds == ["Dense", "BatchNormalization", "Activation", "Dropout", "Dense"]
    out = tower(tf.ones([5, 2]), training=True)
    assert out.shape == (5, 3)
    assert len(tower.losses) == 2
    clone = layers.Tower.from_config(tower.get_config())
    assert [type(layer).__name__ for layer in clone.steps] == kinds


def test_tower_rejects_bad_dropout_and_activation():
    with pytest.raises(ValueError, match="dropout_ratio needs 0, 1 or 2"):
        layers.Tower([4, 3], dropout_ratio=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="'tf.nn.crelu'.*valid"):
        layers.Tower([4], activation_name="tf.nn.crelu")
