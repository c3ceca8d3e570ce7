"""Tiny generators exported as real SavedModels (the loading path users take), and stage construction from raw keys."""

import numpy as np
import pytest

from tests.stages import prepare_stage

LATENT_SIZE = 8
PAGE_SIZE = 8


def _tiny_generator(channels, seed):
    """latents [N, 8] -> [N, 8, 8, channels], linear and scaled up so outputs leave [-1, 1] (clipping is visible)."""
    import keras
    initializer = keras.initializers.RandomNormal(stddev=1.0, seed=seed)
    return keras.Sequential([keras.Input((LATENT_SIZE,)),
                             keras.layers.Dense(PAGE_SIZE * PAGE_SIZE * channels, kernel_initializer=initializer,
                                                bias_initializer=initializer),
                             keras.layers.Reshape((PAGE_SIZE, PAGE_SIZE, channels))])


class ExportedGenerator:
    """The Keras model (to compute expected outputs independently) and the SavedModel folder the stages load."""

    latent_size, size = LATENT_SIZE, PAGE_SIZE

    def __init__(self, keras_model, path):
        self.keras_model, self.path = keras_model, str(path)

    def raw_output(self, latents):
        return np.asarray(self.keras_model(np.asarray(latents, np.float32), training=False))


def _export(tmp_path_factory, channels, seed):
    from deepzine.model.export import export_saved_model
    keras_model = _tiny_generator(channels, seed)
    path = tmp_path_factory.mktemp(f'model_{channels}ch') / str(PAGE_SIZE)
    export_saved_model(keras_model, LATENT_SIZE, str(path))
    return ExportedGenerator(keras_model, path)


@pytest.fixture(scope='session')
def rgb_generator(tmp_path_factory):
    return _export(tmp_path_factory, channels=3, seed=1)


@pytest.fixture(scope='session')
def grayscale_generator(tmp_path_factory):
    return _export(tmp_path_factory, channels=1, seed=2)


@pytest.fixture
def build_stage():
    return prepare_stage


TINY_SIZE = 16


class TinyModel:
    """A 16x16 DeepZine model folder (generator_ema and, unless sampling_only, discriminator), untrained but exact:
    its own pages are targets whose latents are known. The toRGB weights are scaled so pages stay inside [-1, 1]."""

    latent_size, size = LATENT_SIZE, TINY_SIZE

    def __init__(self, folder, generator):
        self.folder, self.path, self.generator = str(folder), str(folder), generator

    def pages(self, latents):
        return np.asarray(self.generator(np.asarray(latents, np.float32), size=self.size))

    def uint8_pages(self, latents):
        return np.clip(np.rint((self.pages(latents) + 1) * 127.5), 0, 255).astype(np.uint8)


def _tiny_model(folder, keep_critic):
    import keras

    from deepzine.model.architecture import Architecture
    from deepzine.model.model_folder import save_model_folder
    from deepzine.model.networks import build_networks
    keras.utils.set_random_seed(3)
    architecture = Architecture(latent_size=LATENT_SIZE, channels=1, output_size=TINY_SIZE, widths={4: 8, 8: 8, 16: 8})
    generator, generator_ema, discriminator = build_networks(architecture)
    to_rgb = generator_ema.to_rgb_16x16
    to_rgb.kernel.assign(to_rgb.kernel * 0.25)
    save_model_folder(str(folder), architecture, TINY_SIZE, generator_ema,
                      generator if keep_critic else None, discriminator if keep_critic else None,
                      config={'square_mode': 'stretch'})
    return TinyModel(folder, generator_ema)


@pytest.fixture(scope='session')
def tiny_model(tmp_path_factory):
    return _tiny_model(tmp_path_factory.mktemp('tiny_model') / str(TINY_SIZE), keep_critic=True)


@pytest.fixture(scope='session')
def tiny_model_without_critic(tmp_path_factory):
    return _tiny_model(tmp_path_factory.mktemp('tiny_sampling_only') / str(TINY_SIZE), keep_critic=False)
