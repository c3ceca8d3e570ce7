"""Model folders: what is saved comes back number for number, the swap is atomic, broken folders are named."""

import json
import os
import stat

import numpy as np
import pytest
import tensorflow as tf

from deepzine.model.model_folder import load_model_folder, read_model_json, save_model_folder
from deepzine.model.architecture import Architecture
from deepzine.model.networks import build_networks
from deepzine.parameters import ConfigError

ARCHITECTURE = Architecture(latent_size=8, channels=1, output_size=8, widths={4: 8, 8: 4})


@pytest.fixture(scope='module')
def networks():
    return build_networks(ARCHITECTURE)


def save(folder, networks, **extra):
    generator, discriminator = networks[0], networks[-1]
    return save_model_folder(str(folder), ARCHITECTURE, 8, generator, discriminator=discriminator, **extra)


def test_round_trip_gives_the_same_pages(tmp_path, networks):
    latents = tf.random.stateless_normal([3, 8], seed=[1, 2])
    expected = networks[0](latents, size=8).numpy()
    save(tmp_path / '8', networks, config={'gan_output_size': 8})
    architecture, size, generator, discriminator, description = load_model_folder(str(tmp_path / '8'),
                                                                                  with_discriminator=True)
    assert architecture == ARCHITECTURE and size == 8 and description['config'] == {'gan_output_size': 8}
    np.testing.assert_allclose(generator(latents, size=8).numpy(), expected, rtol=1e-6, atol=1e-6)
    assert discriminator is not None


def test_folder_is_readable_by_others_and_a_resave_leaves_no_temporaries(tmp_path, networks):
    save(tmp_path / '8', networks)
    save(tmp_path / '8', networks)
    assert stat.S_IMODE(os.stat(tmp_path / '8').st_mode) == 0o755
    assert sorted(os.listdir(tmp_path)) == ['8']


def test_missing_weights_are_named(tmp_path, networks):
    folder = save(tmp_path / '8', networks)
    for name in os.listdir(folder):
        if name.startswith('model.ckpt'):
            os.remove(os.path.join(folder, name))
    with pytest.raises(ConfigError, match='model.ckpt.index: missing'):
        load_model_folder(folder)


def test_a_newer_format_is_refused_with_advice(tmp_path, networks):
    folder = save(tmp_path / '8', networks)
    path = os.path.join(folder, 'model.json')
    description = json.load(open(path))
    description['format_version'] = 99
    json.dump(description, open(path, 'w'))
    with pytest.raises(ConfigError, match='upgrade DeepZine'):
        read_model_json(folder)


def test_fine_tuning_needs_the_discriminator(tmp_path, networks):
    folder = save_model_folder(str(tmp_path / '8'), ARCHITECTURE, 8, networks[0])
    with pytest.raises(ConfigError, match='without its discriminator'):
        load_model_folder(folder, with_discriminator=True)
