"""PGGAN building blocks (Karras et al. 2018): weight-scaled conv and dense, pixel norm, minibatch stddev, resampling.

Layers create their weights in the constructor (input width is given), so a
network holds every variable from the start: checkpoints and optimizers see
one fixed set of variables for the whole progressive run.
"""

import math

import keras
import tensorflow as tf

LEAKY_RELU_SLOPE = 0.2


def leaky_relu(x):
    return tf.nn.leaky_relu(x, LEAKY_RELU_SLOPE)


def pixel_norm(x, epsilon=1e-8):
    """Normalize each pixel's feature vector to unit RMS (paper section 4.2)."""
    return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + epsilon)


def upscale2d(x):
    """Nearest-neighbour x2, as a broadcast (cheaper than a resize op and exact)."""
    _, height, width, channels = x.shape  # static: keeps shapes known to XLA and to exported signatures
    x = tf.reshape(x, [-1, height, 1, width, 1, channels])
    x = tf.tile(x, [1, 1, 2, 1, 2, 1])
    return tf.reshape(x, [-1, height * 2, width * 2, channels])


def downscale2d(x):
    """2x2 average pooling, the inverse of upscale2d on piecewise-constant images."""
    return tf.nn.avg_pool2d(x, ksize=2, strides=2, padding='VALID')


def lerp(old, new, alpha):
    """Fade-in blend: alpha 0 gives the old path, alpha 1 the new one."""
    alpha = tf.cast(alpha, new.dtype)
    return old + (new - old) * alpha


def minibatch_stddev(x, group_size):
    """Append one feature map: the mean standard deviation of features across each group of images.

    `group_size` 0 uses the whole batch as one group (the original DeepZine).
    Groups are strided (image i belongs to group i % (batch / group)), as in the
    paper's code. Computed in float32 for mixed precision.
    """
    batch = tf.shape(x)[0]
    group = batch if group_size == 0 else tf.minimum(group_size, batch)
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    y = tf.reshape(tf.cast(x, tf.float32), [group, -1, height, width, channels])
    y = y - tf.reduce_mean(y, axis=0, keepdims=True)
    y = tf.sqrt(tf.reduce_mean(tf.square(y), axis=0) + 1e-8)
    y = tf.reduce_mean(y, axis=[1, 2, 3])                           # [batch / group]
    y = tf.reshape(y, [-1, 1, 1, 1])
    y = tf.tile(y, [group, height, width, 1])
    return tf.concat([x, tf.cast(y, x.dtype)], axis=-1)


class _ScaledWeights(keras.layers.Layer):
    """Shared part of the weight-scaled layers: the kernel and its run-time He scale.

    With `equalized` the kernel is drawn N(0, 1) and multiplied by gain/sqrt(fan_in)
    at every call, so Adam's per-weight step sizes are equal for all layers
    (equalized learning rate). Without it the kernel is drawn He-normal and used
    as is (the original DeepZine).
    """

    def __init__(self, kernel_shape, fan_in, gain, equalized, **kwargs):
        super().__init__(**kwargs)
        he_std = gain / math.sqrt(fan_in)
        self.runtime_scale = he_std if equalized else 1.0
        self.kernel = self.add_weight(name='kernel', shape=kernel_shape,
                                      initializer=keras.initializers.RandomNormal(0.0, 1.0 if equalized else he_std))
        self.bias = self.add_weight(name='bias', shape=(kernel_shape[-1],), initializer='zeros')
        self.built = True

    def scaled_kernel(self):
        return self.kernel * self.runtime_scale if self.runtime_scale != 1.0 else self.kernel


class ScaledConv2D(_ScaledWeights):
    """k x k convolution, SAME padding, stride 1, with bias."""

    def __init__(self, in_channels, filters, kernel_size, gain=math.sqrt(2), equalized=True, **kwargs):
        super().__init__((kernel_size, kernel_size, in_channels, filters), kernel_size * kernel_size * in_channels,
                         gain, equalized, **kwargs)

    def call(self, x):
        # bias_add, not +: grappler's remapper then fuses convolution, bias and activation into one oneDNN kernel
        # (2.5% faster steps at 128x128, bench/README.md)
        return tf.nn.bias_add(tf.nn.conv2d(x, self.scaled_kernel(), strides=1, padding='SAME'), self.bias)


class ScaledDense(_ScaledWeights):
    def __init__(self, in_features, units, gain=math.sqrt(2), equalized=True, **kwargs):
        super().__init__((in_features, units), in_features, gain, equalized, **kwargs)

    def call(self, x):
        return tf.matmul(x, self.scaled_kernel()) + self.bias
