"""The progressive generator and discriminator, built from an `Architecture` that a run saves next to its models.

Both networks hold the layers of every resolution from the start and are
called with the image `size` to run at (a Python int: one trace per phase) and,
during a fade-in phase, `alpha` (a tensor or tf.Variable, never a Python float).
The same classes represent the original DeepZine models (`deepzine.model.legacy`):
no weight scaling, no latent normalization, one minibatch-stddev group.

Conditioning on the collection a page came from (Architecture.collection_count
above 1) follows StyleGAN2-ADA (Karras et al. 2020): `collections` is a float
[B, collection_count] row per image (one-hot, or a mixture to travel between
collections). The generator embeds it with a dense layer, normalises the
embedding apart from the latent and feeds both to its first layer; the critic
adds a projection term (Miyato & Koyama 2018): the inner product of its last
features with an embedding of the collection. With one collection the networks
are the unconditional ones and `collections` is not needed.
"""

import math

import keras
import tensorflow as tf

from deepzine.model.layers import (ScaledConv2D, ScaledDense, downscale2d, leaky_relu, lerp, minibatch_stddev,
                                   pixel_norm, upscale2d)


def _check_size(architecture, size, alpha, network):
    if size not in architecture.sizes:
        raise ValueError(f'{network} has sizes {architecture.sizes}, asked for {size}')
    if alpha is not None and size == 4:
        raise ValueError('4x4 is the first resolution: it has no fade-in')
    if size not in architecture.rgb_sizes or (alpha is not None and size // 2 not in architecture.rgb_sizes):
        raise ValueError(f'{network} has RGB layers for {architecture.rgb_sizes} only, asked for {size}'
                         + (' with fade-in' if alpha is not None else ''))


class Generator(keras.Model):
    """latent [B, latent_size] -> images [B, size, size, channels], linear output (about [-1, 1])."""

    def __init__(self, architecture, **kwargs):
        super().__init__(**kwargs)
        self.architecture = arch = architecture
        equalized, width = arch.equalized_learning_rate, arch.widths
        inputs = arch.latent_size
        if arch.conditional:
            self.collection_embedding = ScaledDense(arch.collection_count, arch.latent_size, gain=1.0,
                                                    equalized=equalized, name='collection_embedding')
            inputs += arch.latent_size
        # The 4x4 block: a dense layer to 4x4 maps (the paper's gain for it is sqrt(2)/4), then a 3x3 conv.
        self.latent_to_4x4 = ScaledDense(inputs, 16 * width[4], gain=math.sqrt(2) / 4,
                                         equalized=equalized, name='latent_to_4x4')
        self.conv_4x4 = ScaledConv2D(width[4], width[4], 3, equalized=equalized, name='conv_4x4')
        for size in arch.sizes[1:]:
            self._add(ScaledConv2D(width[size // 2], width[size], 3, equalized=equalized, name=f'conv1_{size}x{size}'))
            self._add(ScaledConv2D(width[size], width[size], 3, equalized=equalized, name=f'conv2_{size}x{size}'))
        for size in arch.rgb_sizes:
            self._add(ScaledConv2D(width[size], arch.channels, 1, gain=1.0, equalized=equalized,
                                   name=f'to_rgb_{size}x{size}'))

    def _add(self, layer):
        setattr(self, layer.name, layer)  # plain attributes: tf.train.Checkpoint does not follow Keras' lists

    def _layer(self, kind, size):
        return getattr(self, f'{kind}_{size}x{size}')

    def _upscale_block(self, x, size):
        x = upscale2d(x)
        x = pixel_norm(leaky_relu(self._layer('conv1', size)(x)))
        return pixel_norm(leaky_relu(self._layer('conv2', size)(x)))

    def _input(self, latents, collections):
        """What the first layer takes: the (normalised) latent, and for a conditional network the normalised
        embedding of the collection beside it."""
        arch = self.architecture
        x = tf.cast(latents, self.compute_dtype)
        if arch.normalize_latent:
            x = pixel_norm(x)
        if arch.conditional:
            if collections is None:
                raise ValueError(f'this generator is conditioned on {arch.collection_count} collections: pass '
                                 f'collections [B, {arch.collection_count}]')
            embedding = pixel_norm(self.collection_embedding(tf.cast(collections, self.compute_dtype)))
            x = tf.concat([x, embedding], axis=-1)
        return x

    def features(self, latents, size, collections=None):
        """Feature maps at `size` before toRGB."""
        arch = self.architecture
        x = self._input(latents, collections)
        x = tf.reshape(self.latent_to_4x4(x), [-1, 4, 4, arch.widths[4]])
        x = pixel_norm(leaky_relu(x))
        x = pixel_norm(leaky_relu(self.conv_4x4(x)))
        for block_size in self.architecture.sizes[1:self.architecture.sizes.index(size) + 1]:
            x = self._upscale_block(x, block_size)
        return x

    def call(self, latents, collections=None, size=None, alpha=None):
        size = size or self.architecture.output_size
        _check_size(self.architecture, size, alpha, 'generator')
        if alpha is None:
            return tf.cast(self._layer('to_rgb', size)(self.features(latents, size, collections)), tf.float32)
        previous = self.features(latents, size // 2, collections)
        current = self._upscale_block(previous, size)
        images = lerp(upscale2d(self._layer('to_rgb', size // 2)(previous)), self._layer('to_rgb', size)(current), alpha)
        return tf.cast(images, tf.float32)


class Discriminator(keras.Model):
    """images [B, size, size, channels] -> one logit per image (WGAN critic)."""

    def __init__(self, architecture, **kwargs):
        super().__init__(**kwargs)
        self.architecture = arch = architecture
        equalized, width = arch.equalized_learning_rate, arch.widths
        for size in arch.rgb_sizes:
            self._add(ScaledConv2D(arch.channels, width[size], 1, equalized=equalized, name=f'from_rgb_{size}x{size}'))
        for size in arch.sizes[1:]:
            self._add(ScaledConv2D(width[size], width[size], 3, equalized=equalized, name=f'conv1_{size}x{size}'))
            self._add(ScaledConv2D(width[size], width[size // 2], 3, equalized=equalized, name=f'conv2_{size}x{size}'))
        self.conv_4x4 = ScaledConv2D(width[4] + 1, width[4], 3, equalized=equalized, name='conv_4x4')
        self.dense_logit = ScaledDense(16 * width[4], 1, gain=1.0, equalized=equalized, name='dense_logit')
        if arch.conditional:
            self.collection_projection = ScaledDense(arch.collection_count, 16 * width[4], gain=1.0,
                                                     equalized=equalized, name='collection_projection')

    _add, _layer = Generator._add, Generator._layer

    def _downscale_block(self, x, size):
        x = leaky_relu(self._layer('conv1', size)(x))
        return downscale2d(leaky_relu(self._layer('conv2', size)(x)))

    def call(self, images, collections=None, size=None, alpha=None):
        arch = self.architecture
        size = size or arch.output_size
        _check_size(arch, size, alpha, 'discriminator')
        images = tf.cast(images, self.compute_dtype)
        x = leaky_relu(self._layer('from_rgb', size)(images))
        if size > 4:
            x = self._downscale_block(x, size)
            if alpha is not None:
                x = lerp(leaky_relu(self._layer('from_rgb', size // 2)(downscale2d(images))), x, alpha)
            for lower in reversed(arch.sizes[1:arch.sizes.index(size)]):
                x = self._downscale_block(x, lower)
        x = minibatch_stddev(x, arch.minibatch_group_size)
        x = leaky_relu(self.conv_4x4(x))
        x = tf.reshape(x, [-1, 16 * arch.widths[4]])
        score = self.dense_logit(x)
        if arch.conditional:
            if collections is None:
                raise ValueError(f'this critic is conditioned on {arch.collection_count} collections: pass '
                                 f'collections [B, {arch.collection_count}]')
            projection = self.collection_projection(tf.cast(collections, self.compute_dtype))
            score += tf.reduce_sum(x * projection, axis=-1, keepdims=True) * (1.0 / math.sqrt(16 * arch.widths[4]))
        return tf.cast(score, tf.float32)

    def feature_maps(self, images, size=None):
        """The critic's feature maps of each image on its own, [from_rgb at size, after each block down to 4x4].

        Stops before the minibatch standard deviation, so a page's features do
        not depend on the other pages of its batch: a perceptual measure learnt
        on exactly the pages the model was trained on (deepzine.sampling.projection).
        """
        arch = self.architecture
        size = size or arch.output_size
        _check_size(arch, size, None, 'discriminator')
        x = leaky_relu(self._layer('from_rgb', size)(tf.cast(images, self.compute_dtype)))
        maps = [x]
        for block_size in reversed(arch.sizes[1:arch.sizes.index(size) + 1]):
            x = self._downscale_block(x, block_size)
            maps.append(x)
        return maps


def blend_real_images(images, alpha):
    """Reals during a fade-in: the full-resolution batch blended with its 2x2-averaged, re-upscaled copy.

    The generator's output is itself such a blend, so the discriminator compares
    like with like (the original DeepZine computed this but never fed it).
    """
    return lerp(upscale2d(downscale2d(images)), images, alpha)


def build_networks(architecture):
    """A generator, its exponential-moving-average copy and a discriminator, all variables created."""
    generator = Generator(architecture, name='generator')
    generator_ema = Generator(architecture, name='generator_ema')
    for source, target in zip(generator.weights, generator_ema.weights):
        target.assign(source)
    return generator, generator_ema, Discriminator(architecture, name='discriminator')
