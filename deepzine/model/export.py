"""Export a generator as a TensorFlow SavedModel that loads with plain `tf.saved_model.load`, no deepzine import."""

import tensorflow as tf

from deepzine.files import staged_folder


class _ExportedGenerator(tf.Module):
    """The generator's weights and one signature. The Keras model itself is not an attribute: saving it would make
    Keras export its own call, which a conditional generator cannot make without the collections."""

    def __init__(self, generator, latent_size, collection_names):
        super().__init__()
        self.generator_weights = list(generator.weights)

        def images(*inputs):  # (latents) or (latents, collections): any Keras model of latents exports alike
            return {'images': tf.cast(generator(*inputs, training=False), tf.float32)}

        latents = tf.TensorSpec([None, latent_size], tf.float32, name='latents')
        if collection_names:
            self.collection_names = tf.Variable(list(collection_names), trainable=False, name='collection_names')
            collections = tf.TensorSpec([None, len(collection_names)], tf.float32, name='collections')
            self.generate = tf.function(lambda latents, collections: images(latents, collections),
                                        input_signature=[latents, collections])
        else:
            self.generate = tf.function(lambda latents: images(latents), input_signature=[latents])


def export_saved_model(generator, latent_size, path, collection_names=()):
    """Write `generator` (latents [N, latent_size] -> images [N,S,S,C] in [-1, 1]) to `path`, atomically.

    Signature `serving_default`: input `latents` (and, for a generator
    conditioned on collections, `collections` [N, len(collection_names)]:
    one-hot rows in the order of the module's `collection_names`, or mixtures),
    output `images`. Load with
    `tf.saved_model.load(path).signatures['serving_default'](latents=z)['images']`.
    """
    module = _ExportedGenerator(generator, latent_size, tuple(collection_names))
    with staged_folder(path) as staging:
        tf.saved_model.save(module, staging, signatures={'serving_default': module.generate})
    return path
