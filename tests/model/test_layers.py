"""PGGAN layers: run-time weight scaling, pixel norm, minibatch stddev, resampling and the fade-in blend."""

import math

import numpy as np
import pytest
import tensorflow as tf

from deepzine.model.layers import (ScaledConv2D, ScaledDense, downscale2d, leaky_relu, lerp, minibatch_stddev,
                                   pixel_norm, upscale2d)


def test_scaled_conv_multiplies_unit_normal_weights_by_he_constant_at_run_time():
    layer = ScaledConv2D(in_channels=8, filters=32, kernel_size=3)
    kernel = layer.kernel.numpy()
    assert abs(kernel.std() - 1.0) < 0.1  # stored N(0, 1): Adam sees every layer on the same scale
    layer.bias.assign(tf.random.normal([32]))
    x = tf.random.normal([2, 5, 5, 8])
    expected = tf.nn.conv2d(x, kernel * math.sqrt(2 / (3 * 3 * 8)), 1, 'SAME') + layer.bias
    np.testing.assert_allclose(layer(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_scaled_conv_scale_follows_the_weights_when_they_change():
    layer = ScaledConv2D(in_channels=1, filters=1, kernel_size=1, gain=1.0)
    layer.kernel.assign(tf.fill([1, 1, 1, 1], 3.0))
    assert float(layer(tf.ones([1, 1, 1, 1]))[0, 0, 0, 0]) == pytest.approx(3.0)  # gain / sqrt(fan_in = 1) = 1
    layer.kernel.assign(tf.fill([1, 1, 1, 1], 5.0))
    assert float(layer(tf.ones([1, 1, 1, 1]))[0, 0, 0, 0]) == pytest.approx(5.0)


def test_unequalized_layers_store_he_initialized_weights_and_use_them_as_is():
    layer = ScaledDense(in_features=512, units=256, equalized=False)
    assert layer.runtime_scale == 1.0
    assert abs(layer.kernel.numpy().std() - math.sqrt(2 / 512)) < 0.005
    x = tf.random.normal([3, 512])
    np.testing.assert_allclose(layer(x).numpy(), (x @ layer.kernel).numpy(), rtol=1e-5, atol=1e-5)


def test_scaled_dense_uses_fan_in_and_gain():
    layer = ScaledDense(in_features=16, units=4, gain=1.0)
    x = tf.random.normal([2, 16])
    np.testing.assert_allclose(layer(x).numpy(), (x @ (layer.kernel / 4.0)).numpy(), rtol=1e-5, atol=1e-6)


def test_pixel_norm_gives_unit_rms_feature_vectors():
    x = tf.random.normal([2, 3, 3, 16]) * 7.0
    rms = tf.sqrt(tf.reduce_mean(tf.square(pixel_norm(x)), axis=-1))
    np.testing.assert_allclose(rms.numpy(), 1.0, rtol=1e-4)


def test_minibatch_stddev_appends_the_mean_group_standard_deviation():
    x = tf.random.normal([8, 4, 4, 3])
    y = minibatch_stddev(x, group_size=4).numpy()
    assert y.shape == (8, 4, 4, 4)
    np.testing.assert_array_equal(y[..., :3], x.numpy())
    # Strided groups: image i is in group i % 2 (batch 8 / group size 4).
    for group in range(2):
        members = x.numpy()[group::2]
        expected = np.sqrt(members.var(axis=0) + 1e-8).mean()
        np.testing.assert_allclose(y[group::2, :, :, 3], expected, rtol=1e-5)


def test_minibatch_stddev_group_zero_uses_the_whole_batch():
    x = tf.random.normal([6, 2, 2, 5])
    expected = np.sqrt(x.numpy().var(axis=0) + 1e-8).mean()
    np.testing.assert_allclose(minibatch_stddev(x, group_size=0).numpy()[..., 5], expected, rtol=1e-5)


def test_minibatch_stddev_of_identical_images_is_near_zero():
    x = tf.tile(tf.random.normal([1, 4, 4, 2]), [4, 1, 1, 1])
    assert float(tf.reduce_max(minibatch_stddev(x, 4)[..., 2])) < 1e-3


def test_upscale_is_nearest_neighbour_and_downscale_averages_it_back():
    x = tf.reshape(tf.range(8, dtype=tf.float32), [1, 2, 2, 2])
    up = upscale2d(x).numpy()
    assert up.shape == (1, 4, 4, 2)
    np.testing.assert_array_equal(up[0, 0:2, 0:2, 1], x.numpy()[0, 0, 0, 1])
    np.testing.assert_allclose(downscale2d(tf.constant(up)).numpy(), x.numpy())
    np.testing.assert_allclose(downscale2d(tf.constant([[[[1.0], [3.0]], [[5.0], [7.0]]]])).numpy(), [[[[4.0]]]])


@pytest.mark.parametrize('alpha, expected', [(0.0, 'old'), (1.0, 'new')])
def test_fade_in_blend_endpoints(alpha, expected):
    old, new = tf.random.normal([2, 4, 4, 3]), tf.random.normal([2, 4, 4, 3])
    blended = lerp(old, new, tf.constant(alpha)).numpy()
    np.testing.assert_allclose(blended, (old if expected == 'old' else new).numpy(), atol=1e-6)


def test_fade_in_blend_midpoint_is_the_average():
    old, new = tf.zeros([1, 2]), tf.ones([1, 2]) * 4
    np.testing.assert_allclose(lerp(old, new, tf.Variable(0.25)).numpy(), 1.0)


def test_leaky_relu_slope():
    np.testing.assert_allclose(leaky_relu(tf.constant([-10.0, 3.0])).numpy(), [-2.0, 3.0])
