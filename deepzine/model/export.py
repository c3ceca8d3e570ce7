"""Export a generator as a TensorFlow SavedModel that loads with plain `tf.saved_model.load`, no deepzine import."""

import tensorflow as tf

from deepzine.files import staged_folder


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
    with staged_folder(path) as staging:
        tf.saved_model.save(module, staging, signatures={'serving_default': module.generate})
    return path
