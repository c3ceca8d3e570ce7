"""TensorBoard event files written with TensorFlow alone: scalars and images, for training and evaluation.

`tf.summary.scalar` and `tf.summary.image` live in the tensorboard package,
which TensorFlow 2.21 no longer installs; `tf.summary.write` with the plugins'
metadata writes the identical records (viewing them still needs tensorboard:
`tensorboard --logdir <log_dir>` shows training and evaluation together).
"""

import tensorflow as tf


def _metadata(plugin_name, data_class):
    return tf.compat.v1.SummaryMetadata(plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name=plugin_name),
                                        data_class=data_class)


class EventWriter:
    """One event folder; a disabled writer (a non-chief worker of a multi-machine run) writes nothing."""

    def __init__(self, folder, enabled=True):
        self.writer = tf.summary.create_file_writer(folder) if enabled else tf.summary.create_noop_writer()

    def scalars(self, values, step):
        """{tag: number} at `step`."""
        with self.writer.as_default():
            for tag, value in values.items():
                tf.summary.write(tag, tf.constant(value, tf.float32), step=step,
                                 metadata=_metadata('scalars', 'DATA_CLASS_SCALAR'))
        self.writer.flush()

    def image(self, tag, image, step):
        """One uint8 image [H, W, C] as a PNG, in the images plugin's layout (width, height, encoded image)."""
        height, width = image.shape[:2]
        tensor = tf.stack([tf.constant(str(width)), tf.constant(str(height)), tf.io.encode_png(image)])
        with self.writer.as_default():
            tf.summary.write(tag, tensor, step=step, metadata=_metadata('images', 'DATA_CLASS_BLOB_SEQUENCE'))
        self.writer.flush()

    def close(self):
        self.writer.close()
