"""What training shows the user: sample grids, TensorBoard scalars and images, and the loss line.

Sample grids go to `samples_dir/<size>[_transition]/` (the original DeepZine's
folders): `step_<step>.png` from the fixed sample latents through the EMA
generator, and the real pages the critic sees - `reals.png` once per stable
phase, `reals_step_<step>.png` at every sample during a fade-in, where the
blend changes. TensorBoard events go to `log_dir/tensorboard/`, with the
global step (steps since the run began) on the x axis.
"""

import logging
import os

from deepzine.sampling.images import grid, save_grid

logger = logging.getLogger(__name__)

TENSORBOARD_FOLDER = 'tensorboard'
SAMPLE_GRID_IMAGES = 16
SCALAR_NAMES = {'discriminator_loss': 'loss/discriminator', 'generator_loss': 'loss/generator',
                'wasserstein': 'loss/wasserstein_estimate', 'gradient_penalty': 'loss/gradient_penalty',
                'drift': 'loss/drift'}


def _summary_metadata(plugin_name, data_class):
    """The record TensorBoard's own summary ops would write: tf.summary.scalar/image need the tensorboard
    package, which TensorFlow 2.21 no longer installs; tf.summary.write with this metadata needs only TensorFlow."""
    import tensorflow as tf
    return tf.compat.v1.SummaryMetadata(plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name=plugin_name),
                                        data_class=data_class)


def write_scalar(tag, value, step):
    import tensorflow as tf
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step,
                     metadata=_summary_metadata('scalars', 'DATA_CLASS_SCALAR'))


def write_image(tag, image, step):
    """One uint8 image [H, W, C] as a PNG, in the images plugin's layout (width, height, encoded image)."""
    import tensorflow as tf
    height, width = image.shape[:2]
    tensor = tf.stack([tf.constant(str(width)), tf.constant(str(height)), tf.io.encode_png(image)])
    tf.summary.write(tag, tensor, step=step, metadata=_summary_metadata('images', 'DATA_CLASS_BLOB_SEQUENCE'))


def tensorboard_directory(log_dir):
    return os.path.join(log_dir, TENSORBOARD_FOLDER)


def loss_line(phase, step, metrics, alpha, images_per_second):
    """`16x16 fade step 400/10000 alpha 0.040: D 1.234 G -0.567 GP 0.012 W 0.345 | 12.3 img/s` (speed once measured)."""
    alpha_text = f' alpha {alpha:.3f}' if phase.fading else ''
    speed = f' | {images_per_second:.1f} img/s' if images_per_second is not None else ''
    return (f'{phase.name} step {step}/{phase.steps}{alpha_text}: D {metrics["discriminator_loss"]:.4f} '
            f'G {metrics["generator_loss"]:.4f} GP {metrics["gradient_penalty"]:.4f} '
            f'W {metrics["wasserstein"]:.4f}{speed}')


class TrainingOutputs:
    """TensorBoard writer and sample folders of one run; a non-chief worker writes nothing."""

    def __init__(self, log_dir, samples_dir, chief=True):
        import tensorflow as tf
        self.samples_dir, self.chief = samples_dir, chief
        self.writer = (tf.summary.create_file_writer(tensorboard_directory(log_dir)) if chief
                       else tf.summary.create_noop_writer())

    def write_scalars(self, global_step, metrics, alpha, phase, images_per_second):
        with self.writer.as_default():
            for name, value in metrics.items():
                write_scalar(SCALAR_NAMES[name], value, global_step)
            write_scalar('schedule/alpha', alpha if phase.fading else 1.0, global_step)
            write_scalar('schedule/size', phase.size, global_step)
            if images_per_second is not None:
                write_scalar('speed/images_per_second', images_per_second, global_step)
        self.writer.flush()

    def phase_folder(self, phase):
        return os.path.join(self.samples_dir, phase.folder_name)

    def write_samples(self, phase, step, global_step, generator_ema, sample_latents, alpha, real_images):
        """Generated grid from the fixed latents, and the reals grid (blended during a fade-in); paths written."""
        import tensorflow as tf
        from deepzine.model.networks import blend_real_images
        if not self.chief:
            return []
        alpha_tensor = tf.constant(alpha, tf.float32) if phase.fading else None
        fakes = generator_ema(sample_latents, size=phase.size, alpha=alpha_tensor).numpy()
        folder = self.phase_folder(phase)
        written = [save_grid(fakes, os.path.join(folder, f'step_{step:06d}.png'))]
        reals = real_images
        if phase.fading:
            reals = blend_real_images(tf.constant(real_images), alpha_tensor).numpy()
            written.append(save_grid(reals, os.path.join(folder, f'reals_step_{step:06d}.png')))
        elif not os.path.exists(os.path.join(folder, 'reals.png')):
            written.append(save_grid(reals, os.path.join(folder, 'reals.png')))
        with self.writer.as_default():
            write_image(f'samples/{phase.folder_name}', grid(fakes), global_step)
            write_image(f'reals/{phase.folder_name}', grid(reals), global_step)
        self.writer.flush()
        return written

    def close(self):
        self.writer.close()

