"""Find a trained generator on disk (native run, SavedModel or original DeepZine TF1 checkpoint) and wrap it for sampling."""

import os

import numpy as np

from deepzine.model.legacy import is_legacy_checkpoint
from deepzine.model.model_folder import is_model_folder, load_model_folder
from deepzine.parameters import ConfigError


class PageGenerator:
    """A generator ready for sampling: latents [N, latent_size] -> raw float32 pages [N, size, size, channels].

    `generate_batch` is any callable taking a float32 array or tensor [B, latent_size]
    and returning [B, size, size, channels] in roughly [-1, 1] (unclipped). The
    wrapper batches, so callers never think about batch sizes.
    """

    def __init__(self, generate_batch, latent_size, size, channels, batch_size=16, description=''):
        self.generate_batch = generate_batch
        self.latent_size, self.size, self.channels = latent_size, size, channels
        self.batch_size = batch_size
        self.description = description

    def generate(self, latents):
        latents = np.asarray(latents, dtype=np.float32)
        if latents.ndim != 2 or latents.shape[1] != self.latent_size:
            raise ValueError(f'latents must have shape [N, {self.latent_size}], got {list(latents.shape)}')
        outputs = [np.asarray(self.generate_batch(latents[start:start + self.batch_size]), dtype=np.float32)
                   for start in range(0, len(latents), self.batch_size)]
        if not outputs:
            return np.zeros((0, self.size, self.size, self.channels), np.float32)
        return np.concatenate(outputs)


def load_saved_model(path, batch_size=16):
    """A generator exported by `deepzine.model.export.export_saved_model` (signature latents -> images)."""
    import tensorflow as tf
    if not os.path.exists(os.path.join(path, 'saved_model.pb')):
        raise ConfigError(f'{path}: not a SavedModel folder (no saved_model.pb)')
    signature = tf.saved_model.load(path).signatures['serving_default']
    latent_size = signature.structured_input_signature[1]['latents'].shape[1]
    _, size, _, channels = signature.structured_outputs['images'].shape
    if size is None:  # shapes not static in the signature: ask the model once
        _, size, _, channels = signature(latents=tf.zeros([1, latent_size]))['images'].shape
    return PageGenerator(lambda latents: signature(latents=tf.convert_to_tensor(latents))['images'].numpy(),
                         latent_size, size, channels, batch_size, description=f'SavedModel {path}')


def load_native_generator(folder, batch_size=16):
    """The EMA generator of a DeepZine model folder (model.json + model.ckpt)."""
    import tensorflow as tf
    architecture, size, generator, _, _ = load_model_folder(folder)
    generate = tf.function(lambda latents: generator(latents, size=size),
                           input_signature=[tf.TensorSpec([None, architecture.latent_size], tf.float32)])
    return PageGenerator(lambda latents: generate(latents).numpy(), architecture.latent_size, size,
                         architecture.channels, batch_size, description=f'DeepZine model {folder}')


def load_generator(model_directory, model_path, size, pretrained_model=False, batch_size=16):
    """The generator of `size` from `model_path` (a folder or checkpoint prefix) or `model_directory/<size>/`.

    Raises ConfigError naming the path when nothing usable is there.
    """
    path = model_path or os.path.join(model_directory, str(size))
    if os.path.exists(os.path.join(path, 'saved_model.pb')):
        return load_saved_model(path, batch_size)
    if is_model_folder(path) and not pretrained_model:
        return load_native_generator(path, batch_size)
    if pretrained_model or is_legacy_checkpoint(path):
        from deepzine.model.legacy import load_legacy_generator
        return load_legacy_generator(path, size, batch_size)
    raise ConfigError(f'{path}: no model found (expected a DeepZine model folder with model.json, an original '
                      f'DeepZine model.ckpt, or a SavedModel)')
