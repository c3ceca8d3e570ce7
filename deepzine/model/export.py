"""Export a generator as a TensorFlow SavedModel that loads with plain `tf.saved_model.load`, no deepzine import."""

import os
import shutil
import tempfile

import tensorflow as tf


class _ExportedGenerator(tf.Module):
    def __init__(self, generator, latent_size):
        super().__init__()
        self.generator = generator
        self.generate = tf.function(
            lambda latents: {'images': tf.cast(self.generator(latents, training=False), tf.float32)},
            input_signature=[tf.TensorSpec([None, latent_size], tf.float32, name='latents')])


def export_saved_model(generator, latent_size, path):
    """Write `generator` (latents [N, latent_size] -> images [N,S,S,C] in [-1, 1]) to `path`, atomically.

    Signature `serving_default`: input `latents`, output `images`. Load with
    `tf.saved_model.load(path).signatures['serving_default'](latents=z)['images']`.
    """
    module = _ExportedGenerator(generator, latent_size)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix='.saved_model-', dir=parent)
    os.chmod(staging, 0o755)  # mkdtemp makes it private; it is an ordinary output folder
    tf.saved_model.save(module, staging, signatures={'serving_default': module.generate})
    if os.path.exists(path):
        shutil.rmtree(path)
    os.replace(staging, path)
    return path
