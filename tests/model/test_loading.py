"""Finding a generator on disk: model folder, SavedModel and nothing at all; PageGenerator batching."""

import numpy as np
import pytest
import tensorflow as tf

from deepzine.model.export import export_saved_model
from deepzine.model.loading import PageGenerator, load_generator, locate_model
from deepzine.model.architecture import Architecture
from deepzine.model.model_folder import save_model_folder
from deepzine.model.networks import build_networks
from deepzine.parameters import ConfigError

ARCHITECTURE = Architecture(latent_size=8, channels=3, output_size=8, widths={4: 8, 8: 4})
LATENTS = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)


@pytest.fixture(scope='module')
def generator():
    return build_networks(ARCHITECTURE)[1]


@pytest.fixture(scope='module')
def expected(generator):
    return generator(tf.constant(LATENTS), size=8).numpy()


def test_model_folder_under_the_directory_by_size(tmp_path, generator, expected):
    save_model_folder(str(tmp_path / '8'), ARCHITECTURE, 8, generator)
    loaded = load_generator(locate_model(str(tmp_path), None, 8), batch_size=2)
    assert (loaded.latent_size, loaded.size, loaded.channels) == (8, 8, 3)
    np.testing.assert_allclose(loaded.generate(LATENTS), expected, rtol=1e-5, atol=1e-6)


def test_saved_model_by_path(tmp_path, generator, expected):
    path = export_saved_model(generator, 8, str(tmp_path / 'saved_model'))
    loaded = load_generator(locate_model(None, path, 8), batch_size=4)
    assert (loaded.latent_size, loaded.size, loaded.channels) == (8, 8, 3)
    np.testing.assert_allclose(loaded.generate(LATENTS), expected, rtol=1e-5, atol=1e-6)


def test_nothing_there_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match=f'inference_model_directory={tmp_path}: no model of gan_output_size=64 at '
                                          f'{tmp_path}/64; it holds no model folders'):
        locate_model(str(tmp_path), None, 64)
    with pytest.raises(ConfigError, match=f'inference_model_path={tmp_path}/8: no model there; expected a DeepZine '
                                          f'model folder'):
        locate_model(None, str(tmp_path / '8'), 8)


def test_page_generator_batches_any_count_and_checks_the_latent_shape():
    calls = []

    def generate_batch(latents, collections):
        calls.append(len(latents))
        assert collections.shape == (len(latents), 1) and np.all(collections == 1)  # unconditional: a row of one 1
        return np.zeros((len(latents), 4, 4, 1))

    pages = PageGenerator(generate_batch, latent_size=3, size=4, channels=1, batch_size=2)
    assert pages.generate(np.zeros((5, 3))).shape == (5, 4, 4, 1) and calls == [2, 2, 1]
    assert pages.generate(np.zeros((0, 3))).shape == (0, 4, 4, 1)
    with pytest.raises(ValueError, match=r'\[N, 3\]'):
        pages.generate(np.zeros((2, 4)))


def test_a_conditional_page_generator_takes_each_page_s_collection_and_insists_on_it():
    seen = []

    def generate_batch(latents, collections):
        seen.append(collections.copy())
        return np.zeros((len(latents), 4, 4, 1))

    pages = PageGenerator(generate_batch, latent_size=3, size=4, channels=1, batch_size=2,
                          collection_names=('manuals', 'music', 'cards'))
    assert pages.collection_count == 3
    pages.generate(np.zeros((3, 3)), pages.one_hot([2, 0, 1]))
    np.testing.assert_array_equal(np.concatenate(seen), np.eye(3)[[2, 0, 1]])
    with pytest.raises(ValueError, match='give each page its collection'):
        pages.generate(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r'collections must have shape \[3, 3\]'):
        pages.generate(np.zeros((3, 3)), np.ones((3, 2)))
