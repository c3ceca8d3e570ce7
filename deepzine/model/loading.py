"""Find a trained generator on disk (model folder, SavedModel, or original DeepZine TF1 checkpoint) and wrap it for sampling.

`locate_model` works out, before any work, which model a sampling stage will
load and what kind it is (the dry-run prints it; a wrong path fails there,
naming what to point at instead); `load_generator` loads it as a
`PageGenerator`, which owns batching: callers ask for pages.

TensorFlow is imported where a model is loaded: the dry-run imports this module.
"""

import dataclasses
import logging
import os
import re

import numpy as np
from tqdm import tqdm

from deepzine.model.legacy import checkpoint_prefix, load_legacy_networks
from deepzine.model.model_folder import (MODEL_JSON, is_model_folder, load_model_folder, model_folder_path,
                                         read_model_json)
from deepzine.parameters import ConfigError, where_relative_paths_start

logger = logging.getLogger(__name__)

MODEL_FOLDER, SAVED_MODEL, ORIGINAL = 'DeepZine model folder', 'SavedModel', 'original DeepZine checkpoint'
_RUN_CHECKPOINT = re.compile(r'ckpt-\d+(\.index|\.data-\d{5}-of-\d{5})?$')


@dataclasses.dataclass(frozen=True)
class ModelLocation:
    """Which model a sampling stage loads: its folder (or checkpoint prefix), kind, the size it samples at, and the
    collections it is conditioned on (() for an unconditional model; None: known once loaded, a SavedModel)."""
    path: str
    kind: str
    size: int
    collection_names: tuple = ()

    def describe(self):
        return f'the {self.size}px generator of the {self.kind} {self.path}'


def sizes_present(directory):
    """The <size> model folders (or original checkpoints) under `directory`, smallest first."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(int(name) for name in names if name.isdigit() and _kind_of(os.path.join(directory, name), False))


def _kind_of(path, pretrained_model):
    if _RUN_CHECKPOINT.match(os.path.basename(path.rstrip('/'))):
        return None  # a training run's checkpoint: see _explain_wrong_path
    if os.path.isfile(os.path.join(path, 'saved_model.pb')):
        return SAVED_MODEL
    if is_model_folder(path) and not pretrained_model:
        return MODEL_FOLDER
    if os.path.isfile(checkpoint_prefix(path) + '.index'):
        return ORIGINAL  # with pretrained_model: true, or detected: an index and no model.json
    return None


def _explain_wrong_path(key, path):
    """A message for a path that holds no model, saying what to point at instead."""
    name = os.path.basename(path.rstrip('/'))
    parent = os.path.dirname(path.rstrip('/'))
    if _RUN_CHECKPOINT.match(name):
        log_dir = os.path.dirname(parent)
        present = sizes_present(log_dir)
        where = f'; {log_dir} has model folders for sizes {present}' if present else ''
        return (f'{key}={path}: a training checkpoint holds a whole run, not one model; point at a model folder '
                f'<log_dir>/<size> instead (written at the end of each size){where}')
    if name.startswith('model.ckpt') and is_model_folder(parent):
        return f'{key}={path}: point at the model folder {parent} itself (it holds {MODEL_JSON} and model.ckpt)'
    if os.path.isdir(path) and sizes_present(path):
        return (f'{key}={path}: this folder holds models of sizes {sizes_present(path)}; point at one of them '
                f'({path}/<size>), or set inference_model_directory: {path} and gan_output_size')
    return (f'{key}={path}: no model there; expected a DeepZine model folder (with {MODEL_JSON}), a SavedModel folder '
            f'(with saved_model.pb) or an original DeepZine checkpoint (model.ckpt.index and .data); '
            f'{where_relative_paths_start()}')


def locate_model(directory, path, size, pretrained_model=False, key='inference_model_path'):
    """ModelLocation of `path` (a folder or checkpoint prefix), else of `directory/<size>`; ConfigError if none is there.

    Relative paths were made absolute from the current folder when the config
    was read, so messages show where DeepZine actually looked.
    """
    if path:
        kind = _kind_of(path, pretrained_model)
        if kind is None:
            raise ConfigError(_explain_wrong_path(key, path))
        return ModelLocation(path, kind, _size_of(path, kind, size), _collections_of(path, kind))
    folder = model_folder_path(directory, size)
    kind = _kind_of(folder, pretrained_model)
    if kind is None:
        present = sizes_present(directory)
        found = (f'it has models of sizes {", ".join(map(str, present))}: set gan_output_size to one of them'
                 if present else f'it holds no model folders (train one first with train: true; '
                                 f'{where_relative_paths_start()})')
        raise ConfigError(f'inference_model_directory={directory}: no model of gan_output_size={size} at {folder}; '
                          f'{found}')
    return ModelLocation(folder, kind, size, _collections_of(folder, kind))


def conditioned_collections(description):
    """The collection names a model folder's generator is conditioned on (() when it is unconditional)."""
    conditional = description['architecture'].get('collection_count', 1) > 1
    return tuple(description.get('collections', ())) if conditional else ()


def _collections_of(path, kind):
    if kind == MODEL_FOLDER:
        return conditioned_collections(read_model_json(path))
    return None if kind == SAVED_MODEL else ()


def _size_of(path, kind, size):
    """The size a model given by path samples at (model.json tells; other kinds are checked when loaded)."""
    if kind == MODEL_FOLDER:
        return int(read_model_json(path)['size'])
    return size


class PageGenerator:
    """A generator ready for sampling: latents [N, latent_size] (and each page's collection) -> raw float32 pages
    [N, size, size, channels].

    `generate_batch` is any callable taking float32 latents [B, latent_size] and
    collections [B, collection_count] (one-hot rows, or mixtures between
    collections) and returning [B, size, size, channels] in roughly [-1, 1]
    (unclipped). `collection_names` are the collections a conditional generator
    is conditioned on; an unconditional one has none and takes a row of one 1.
    `batches` is the one place that cuts latents into generator calls, so a
    caller that streams pages to disk never holds more than a batch.
    """

    def __init__(self, generate_batch, latent_size, size, channels, batch_size=16, description='',
                 collection_names=()):
        self.generate_batch = generate_batch
        self.latent_size, self.size, self.channels = latent_size, size, channels
        self.batch_size = batch_size
        self.description = description
        self.collection_names = tuple(collection_names)

    @property
    def collection_count(self):
        return max(1, len(self.collection_names))

    def one_hot(self, numbers):
        """float32 [N, collection_count] rows of the collections numbered `numbers` (indices of collection_names)."""
        return np.eye(self.collection_count, dtype=np.float32)[np.asarray(numbers, dtype=np.int64)]

    def _checked(self, latents, collections):
        latents = np.asarray(latents, dtype=np.float32)
        if latents.ndim != 2 or latents.shape[1] != self.latent_size:
            raise ValueError(f'latents must have shape [N, {self.latent_size}], got {list(latents.shape)}')
        if collections is None:
            if self.collection_names:
                raise ValueError(f'this generator is conditioned on {", ".join(self.collection_names)}: give each '
                                 f'page its collection')
            collections = np.ones((len(latents), 1), np.float32)
        collections = np.asarray(collections, dtype=np.float32)
        if collections.shape != (len(latents), self.collection_count):
            raise ValueError(f'collections must have shape [{len(latents)}, {self.collection_count}], got '
                             f'{list(collections.shape)}')
        return latents, collections

    def batches(self, latents, collections=None, progress_label=None):
        """Yield (index of the first page, float32 pages) for consecutive batches of `latents` (of `collections`,
        float [N, collection_count]; None for an unconditional generator)."""
        latents, collections = self._checked(latents, collections)
        starts = range(0, len(latents), self.batch_size)
        for start in tqdm(starts, desc=progress_label, unit='batch', disable=None if progress_label else True):
            end = start + self.batch_size
            yield start, np.asarray(self.generate_batch(latents[start:end], collections[start:end]), dtype=np.float32)

    def generate(self, latents, collections=None):
        """All pages at once (for few latents; stream many with `batches`)."""
        pages = [batch for _, batch in self.batches(latents, collections)]
        if not pages:
            return np.zeros((0, self.size, self.size, self.channels), np.float32)
        return np.concatenate(pages)


def generator_of(network, architecture, size, batch_size=16, description='', collection_names=()):
    """A PageGenerator over a Keras generator network at `size`, traced once for every batch size."""
    import tensorflow as tf
    generate = tf.function(lambda latents, collections: network(latents, collections, size=size),
                           input_signature=[tf.TensorSpec([None, architecture.latent_size], tf.float32),
                                            tf.TensorSpec([None, architecture.collection_count], tf.float32)])
    return PageGenerator(lambda latents, collections: generate(latents, collections).numpy(), architecture.latent_size,
                         size, architecture.channels, batch_size, description,
                         collection_names if architecture.conditional else ())


def load_saved_model(path, batch_size=16):
    """A generator exported by `deepzine.model.export.export_saved_model` (signature latents [and collections] ->
    images)."""
    import tensorflow as tf
    if not os.path.exists(os.path.join(path, 'saved_model.pb')):
        raise ConfigError(f'{path}: not a SavedModel folder (no saved_model.pb)')
    loaded = tf.saved_model.load(path)
    signature = loaded.signatures['serving_default']
    inputs = signature.structured_input_signature[1]
    latent_size = inputs['latents'].shape[1]
    names = ()
    if 'collections' in inputs:
        names = tuple(name.decode('utf-8') for name in loaded.collection_names.numpy())

    def generate(latents, collections):
        given = {'latents': tf.convert_to_tensor(latents)}
        if names:
            given['collections'] = tf.convert_to_tensor(collections)
        return signature(**given)['images'].numpy()

    _, size, _, channels = signature.structured_outputs['images'].shape
    if size is None:  # shapes not static in the signature: ask the model once
        _, size, _, channels = generate(np.zeros([1, latent_size], np.float32),
                                        np.eye(max(1, len(names)), dtype=np.float32)[:1]).shape
    return PageGenerator(generate, latent_size, size, channels, batch_size, description=f'SavedModel {path}',
                         collection_names=names)


def load_native_generator(folder, batch_size=16):
    """The EMA generator of a DeepZine model folder (model.json + model.ckpt)."""
    architecture, size, generator, _, description = load_model_folder(folder)
    return generator_of(generator, architecture, size, batch_size, description=f'DeepZine model {folder}',
                        collection_names=conditioned_collections(description))


def load_legacy_generator(path, size=None, batch_size=16):
    """An original checkpoint's generator (folder or model.ckpt prefix)."""
    architecture, generator, _ = load_legacy_networks(path, size)
    return generator_of(generator, architecture, architecture.output_size, batch_size,
                        description=f'original DeepZine checkpoint {checkpoint_prefix(path)}')


def load_generator(location, batch_size=16):
    """The PageGenerator of a ModelLocation; ConfigError naming the path when what is there cannot be loaded."""
    if location.kind == SAVED_MODEL:
        generator = load_saved_model(location.path, batch_size)
    elif location.kind == MODEL_FOLDER:
        generator = load_native_generator(location.path, batch_size)
    else:
        generator = load_legacy_generator(location.path, location.size, batch_size)
    collections = (f', conditioned on {len(generator.collection_names)} collections: '
                   f'{", ".join(generator.collection_names)}' if generator.collection_names else '')
    logger.info('loaded %s: %dx%d pages, %d channel(s), latent size %d%s', generator.description, generator.size,
                generator.size, generator.channels, generator.latent_size, collections)
    return generator
