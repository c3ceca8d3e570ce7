"""A self-contained model folder (`<dir>/<size>/`): model.json + model.ckpt, the layout of the original DeepZine.

Written by training at the end of each resolution and by `convert-legacy`;
read by inference, interpolation, evaluation and fine-tuning. `model.json`
holds the format version, the size the model samples at, its Architecture,
the names of the collections of the pages it learned (in the order of a
conditional model's collection numbers) and the resolved config of the run
that made it; `model.ckpt` (a TF2 object-based
checkpoint, index + data files) holds `generator_ema` and, when kept,
`generator` and `discriminator`.

TensorFlow (and the networks) are imported where a model is written or read: the dry-run imports this module.
"""

import json
import os

from deepzine.files import staged_folder, write_json
from deepzine.model.architecture import Architecture
from deepzine.parameters import ConfigError

FORMAT_VERSION = 1
MODEL_JSON = 'model.json'
CHECKPOINT_PREFIX = 'model.ckpt'


def model_folder_path(directory, size):
    """`<directory>/<size>`: where training puts the model of each size, and where sampling looks for it."""
    return os.path.join(directory, str(size))


def is_model_folder(folder):
    return os.path.isfile(os.path.join(folder, MODEL_JSON))


def save_model_folder(folder, architecture, size, generator_ema, generator=None, discriminator=None, config=None,
                      collections=None):
    """Write the folder under a temporary name, then swap it in, so a reader never sees half a model."""
    import tensorflow as tf
    networks = {'generator_ema': generator_ema, 'generator': generator, 'discriminator': discriminator}
    with staged_folder(folder) as staging:
        tf.train.Checkpoint(**{name: net for name, net in networks.items() if net is not None}).write(
            os.path.join(staging, CHECKPOINT_PREFIX))
        description = {'format_version': FORMAT_VERSION, 'size': size,
                       'architecture': json.loads(architecture.to_json()),
                       'networks': [name for name, net in networks.items() if net is not None],
                       'collections': list(collections or ()), 'config': config or {}}
        write_json(os.path.join(staging, MODEL_JSON), description)
    return folder


def read_model_json(folder):
    path = os.path.join(folder, MODEL_JSON)
    try:
        with open(path, encoding='utf-8') as handle:
            description = json.load(handle)
    except FileNotFoundError:
        raise ConfigError(f'{folder}: not a DeepZine model folder (no {MODEL_JSON})') from None
    except json.JSONDecodeError as error:
        raise ConfigError(f'{path}: unreadable ({error})') from None
    if description.get('format_version', 0) > FORMAT_VERSION:
        raise ConfigError(f'{path}: format version {description["format_version"]} is newer than this DeepZine '
                          f'reads ({FORMAT_VERSION}); upgrade DeepZine')
    return description


def load_model_folder(folder, with_discriminator=False):
    """(architecture, size, generator_ema, discriminator or None, description) with every needed weight restored."""
    import tensorflow as tf

    from deepzine.model.networks import Discriminator, Generator
    description = read_model_json(folder)
    architecture = Architecture(**description['architecture'])
    generator_ema = Generator(architecture, name='generator_ema')
    discriminator = Discriminator(architecture, name='discriminator') if with_discriminator else None
    prefix = os.path.join(folder, CHECKPOINT_PREFIX)
    if not os.path.exists(prefix + '.index'):
        raise ConfigError(f'{prefix}.index: missing (the model folder is incomplete)')
    if with_discriminator and 'discriminator' not in description.get('networks', []):
        raise ConfigError(f'{folder}: this model was saved without its discriminator, so it cannot be fine-tuned')
    networks = {'generator_ema': generator_ema}
    if discriminator is not None:
        networks['discriminator'] = discriminator
    try:
        tf.train.Checkpoint(**networks).read(prefix).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        raise ConfigError(f'{prefix}: does not match {MODEL_JSON} ({str(error).splitlines()[0][:300]})') from None
    return architecture, description['size'], generator_ema, discriminator, description
