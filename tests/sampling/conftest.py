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
