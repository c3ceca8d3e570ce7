"""Generator and discriminator: widths, shapes at every size, fade-in endpoints of both networks and of the reals."""

import json

import numpy as np
import pytest
import tensorflow as tf

from deepzine.model.layers import downscale2d, upscale2d
from deepzine.model.architecture import Architecture, filter_widths
from deepzine.model.networks import Discriminator, Generator, blend_real_images, build_networks

LATENT = 16


@pytest.fixture(scope='module')
def architecture():
    return Architecture(latent_size=LATENT, channels=3, output_size=16, widths={4: 16, 8: 16, 16: 8})


@pytest.fixture(scope='module')
def networks(architecture):
    return build_networks(architecture)


@pytest.mark.parametrize('max_filter, transition, original_pretrained, expected', [
    # the original's get_filter_num, read from its code: halving starts AT the transition size
    (128, 64, False, {4: 128, 8: 128, 16: 128, 32: 128, 64: 64, 128: 32, 256: 16, 512: 8, 1024: 4}),
    (128, 128, False, {4: 128, 8: 128, 16: 128, 32: 128, 64: 128, 128: 64, 256: 32, 512: 16, 1024: 8}),
    # its pretrained_model: true rule, with config_preloaded.yaml's values: the widths of the released checkpoints
    (128, 256, True, {4: 128, 8: 128, 16: 128, 32: 128, 64: 128, 128: 128, 256: 64, 512: 16, 1024: 16}),
])
def test_filter_widths_follow_the_original_code(max_filter, transition, original_pretrained, expected):
    assert filter_widths(1024, max_filter, 1, transition, original_pretrained) == expected


def test_the_released_original_checkpoints_have_the_widths_of_the_original_rule():
    """Every index of the original's pretrained_models against the rule with config_preloaded.yaml's keys."""
    import pathlib

    from deepzine.model.legacy import read_legacy_architecture
    fixtures = pathlib.Path(__file__).resolve().parents[1] / 'fixtures' / 'legacy_deepzine' / 'index_only'
    for size in (4, 8, 16, 32, 64, 128, 256, 512, 1024):
        assert read_legacy_architecture(fixtures / str(size)).widths == filter_widths(size, 128, 1, 256, True)


def test_min_filter_is_a_floor():
    assert filter_widths(256, max_filter=128, min_filter=32, filter_num_reduction_transition_size=32) == {
        4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 32, 256: 32}


def test_architecture_round_trips_through_json(architecture):
    assert Architecture(**json.loads(architecture.to_json())) == architecture


def test_every_variable_exists_from_the_start(networks):
    generator, generator_ema, discriminator = networks
    names = {variable.path for variable in generator.trainable_variables}
    assert any('to_rgb_16x16' in name for name in names) and any('conv2_16x16' in name for name in names)
    assert len(generator.trainable_variables) == len(generator_ema.trainable_variables)
    for source, average in zip(generator.weights, generator_ema.weights):
        np.testing.assert_array_equal(source.numpy(), average.numpy())
    assert any('from_rgb_4x4' in variable.path for variable in discriminator.trainable_variables)


@pytest.mark.parametrize('size', [4, 8, 16])
def test_shapes_at_every_size(networks, size):
    generator, _, discriminator = networks
    images = generator(tf.random.normal([4, LATENT]), size=size)
    assert images.shape == (4, size, size, 3) and images.dtype == tf.float32
    assert discriminator(images, size=size).shape == (4, 1)


def test_generator_fade_in_endpoints(networks):
    generator = networks[0]
    latents = tf.random.normal([4, LATENT])
    old = upscale2d(generator(latents, size=8)).numpy()
    new = generator(latents, size=16).numpy()
    np.testing.assert_allclose(generator(latents, size=16, alpha=tf.constant(0.0)).numpy(), old, atol=1e-5)
    np.testing.assert_allclose(generator(latents, size=16, alpha=tf.Variable(1.0)).numpy(), new, atol=1e-5)
    halfway = generator(latents, size=16, alpha=tf.constant(0.5)).numpy()
    np.testing.assert_allclose(halfway, (old + new) / 2, atol=1e-5)


def test_discriminator_fade_in_endpoints(networks):
    discriminator = networks[2]
    images = tf.random.uniform([4, 16, 16, 3], -1, 1)
    old = discriminator(downscale2d(images), size=8).numpy()
    new = discriminator(images, size=16).numpy()
    np.testing.assert_allclose(discriminator(images, size=16, alpha=tf.constant(0.0)).numpy(), old, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(discriminator(images, size=16, alpha=tf.constant(1.0)).numpy(), new, rtol=1e-4, atol=1e-5)
    assert not np.allclose(old, new)


def test_blended_reals_endpoints():
    images = tf.random.uniform([2, 8, 8, 1], -1, 1)
    coarse = upscale2d(downscale2d(images)).numpy()
    np.testing.assert_allclose(blend_real_images(images, tf.constant(0.0)).numpy(), coarse, atol=1e-6)
    np.testing.assert_allclose(blend_real_images(images, tf.constant(1.0)).numpy(), images.numpy(), atol=1e-6)


def test_latent_is_pixel_normalized_so_its_scale_does_not_matter(networks):
    generator = networks[0]
    latents = tf.random.normal([2, LATENT])
    np.testing.assert_allclose(generator(latents * 10.0, size=8).numpy(), generator(latents, size=8).numpy(), atol=1e-4)


def test_wrong_size_or_fade_at_four_is_refused(architecture):
    generator = Generator(architecture)
    with pytest.raises(ValueError, match='sizes'):
        generator(tf.zeros([1, LATENT]), size=32)
    with pytest.raises(ValueError, match='no fade-in'):
        Discriminator(architecture)(tf.zeros([1, 4, 4, 3]), size=4, alpha=tf.constant(0.5))


def test_one_collection_is_the_unconditional_network_and_several_add_an_embedding_and_a_projection(architecture):
    """The unconditional network is the ordinary case: the same variables as before conditioning existed."""
    import dataclasses
    plain = {variable.path for network in build_networks(architecture) for variable in network.weights}
    conditional = dataclasses.replace(architecture, collection_count=3)
    generator, _, discriminator = build_networks(conditional)
    added = {variable.path for network in (generator, discriminator) for variable in network.weights} - plain
    assert added == {'collection_embedding/kernel', 'collection_embedding/bias', 'collection_projection/kernel',
                     'collection_projection/bias'}
    assert generator.latent_to_4x4.kernel.shape[0] == 2 * LATENT  # the latent and the collection's embedding


def test_a_conditional_network_needs_the_collection_and_its_pages_depend_on_it(architecture):
    import dataclasses
    generator, _, discriminator = build_networks(dataclasses.replace(architecture, collection_count=2))
    latents = tf.random.normal([3, LATENT], seed=1)
    first, second = (generator(latents, tf.one_hot([index] * 3, 2), size=8) for index in (0, 1))
    assert float(tf.reduce_max(tf.abs(first - second))) > 1e-3
    halfway = generator(latents, tf.fill([3, 2], 0.5), size=8)  # a mixture is a valid input: movies travel through it
    assert halfway.shape == (3, 8, 8, 3) and bool(tf.reduce_all(tf.math.is_finite(halfway)))
    with pytest.raises(ValueError, match='conditioned on 2 collections: pass collections'):
        generator(latents, size=8)
    scores = [discriminator(first, tf.one_hot([index] * 3, 2), size=8) for index in (0, 1)]
    assert float(tf.reduce_max(tf.abs(scores[0] - scores[1]))) > 0  # the projection term
    with pytest.raises(ValueError, match='conditioned on 2 collections: pass collections'):
        discriminator(first, size=8)
