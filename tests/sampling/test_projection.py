import numpy as np
import pytest

from deepzine.model.loading import MODEL_FOLDER, ModelLocation
from deepzine.sampling.projection import (ProjectionNetworks, ProjectionSettings, Projector, relative_errors,
                                          rms_errors_255, to_model_range)
from deepzine.sampling.projection_model import load_projection_networks


def tiny_networks(model):
    networks, rendering, collections = load_projection_networks(ModelLocation(model.folder, MODEL_FOLDER, model.size))
    return networks, rendering, collections


def test_relative_error_is_measured_against_the_pages_own_contrast():
    page = np.zeros((1, 4, 4, 1))
    page[0, :2] = 1.0  # mean 0.5, contrast sqrt(16 * 0.25) = 2
    np.testing.assert_allclose(relative_errors(page + 0.25, page), [np.sqrt(16 * 0.0625) / 2])
    np.testing.assert_allclose(rms_errors_255(page + 0.25, page), [127.5 * 0.25])


@pytest.mark.parametrize('critic_feature_weight', [1.0, 0.0])
def test_a_tiny_model_recovers_its_own_pages(tiny_model, critic_feature_weight):
    networks, _, collections = tiny_networks(tiny_model)
    assert networks.critic is not None and collections is None
    latents = np.random.default_rng(5).standard_normal((4, tiny_model.latent_size)).astype(np.float32)
    targets = tiny_model.uint8_pages(latents)
    settings = ProjectionSettings(steps=150, critic_feature_weight=critic_feature_weight, start_candidates=64)
    batch = Projector(networks, settings, seed=0).project(targets)
    assert batch.relative_errors.mean() < 0.05, batch.relative_errors
    assert np.all(batch.rms_errors < batch.start_rms_errors)  # refining beat the nearest random start on every page
    np.testing.assert_allclose(batch.pages, tiny_model.pages(batch.latents), atol=1e-5)
    np.testing.assert_allclose(np.mean(batch.latents ** 2, axis=1), 1.0, atol=0.2)  # the prior kept the norm


def test_a_model_without_critic_projects_with_pixels_and_says_so(tiny_model_without_critic, caplog):
    networks, _, _ = tiny_networks(tiny_model_without_critic)
    assert networks.critic is None
    assert 'kept no critic' in caplog.text
    targets = tiny_model_without_critic.uint8_pages(np.random.default_rng(5).standard_normal((2, 8)))
    batch = Projector(networks, ProjectionSettings(steps=150, start_candidates=64), seed=0).project(targets)
    assert batch.relative_errors.max() < 0.05


class _TwoCollectionGenerator:
    """A conditional generator as the networks will take it: collection 0 draws the page, collection 1 its negative."""

    def __init__(self, generator):
        self.generator = generator

    def __call__(self, latents, collections=None, size=None):
        import tensorflow as tf
        pages = self.generator(latents, size=size)
        sign = 1.0 - 2.0 * tf.cast(collections, tf.float32)[:, 1]
        return pages * sign[:, None, None, None]


def test_each_collection_is_tried_and_every_page_keeps_its_best(tiny_model):
    networks, _, _ = tiny_networks(tiny_model)
    conditional = ProjectionNetworks(_TwoCollectionGenerator(networks.generator), None, networks.size,
                                     networks.latent_size, networks.channels)
    latents = np.random.default_rng(5).standard_normal((2, tiny_model.latent_size)).astype(np.float32)
    targets = np.concatenate([tiny_model.uint8_pages(latents[:1]), 255 - tiny_model.uint8_pages(latents[1:])])
    one_hot = [np.array([1, 0], np.float32), np.array([0, 1], np.float32)]
    batch = Projector(conditional, ProjectionSettings(steps=150, start_candidates=64), seed=0).project(targets, one_hot)
    assert list(batch.collection_indices) == [0, 1]
    assert batch.relative_errors.max() < 0.1
    np.testing.assert_allclose(to_model_range(targets), batch.pages, atol=0.1)
