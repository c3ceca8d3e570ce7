"""What training shows the user: sample grids, TensorBoard scalars and images, and the loss line.

Sample grids go to `samples_dir/samples_<size>[_Transition]/` (the original
DeepZine's folder names; the files in them differ): `step_<step>.png` from the fixed sample latents through the EMA
generator, and the real pages the critic sees - `reals.png` once per stable
phase, `reals_step_<step>.png` at every sample during a fade-in, where the
blend changes. A conditional run's grids have a row per collection, the real
grid that collection's pages. TensorBoard events go to `log_dir/tensorboard/`,
with the global step (steps since the run began) on the x axis.
"""

import logging
import os

import numpy as np
import tensorflow as tf

from deepzine.model.networks import blend_real_images
from deepzine.sampling.images import grid, save_grid
from deepzine.tensorboard import EventWriter

logger = logging.getLogger(__name__)

TENSORBOARD_FOLDER = 'tensorboard'
SAMPLE_GRID_IMAGES = 16
SAMPLE_ROW_LEAST_IMAGES = 4


def sample_grid_layout(collection_count):
    """(pages per collection, columns) of a sample grid: 16 pages in rows of 4 for one collection, a row per
    collection otherwise (16 pages shared out, at least 4 a row)."""
    if collection_count == 1:
        return SAMPLE_GRID_IMAGES, 4
    per_collection = max(SAMPLE_ROW_LEAST_IMAGES, SAMPLE_GRID_IMAGES // collection_count)
    return per_collection, per_collection


def sample_collections(collection_count):
    """The collection number of each page of a sample grid, row by row: [0, 0, ..., 1, 1, ...]."""
    per_collection, _ = sample_grid_layout(collection_count)
    return np.repeat(np.arange(collection_count), per_collection)
SCALAR_NAMES = {'discriminator_loss': 'loss/discriminator', 'generator_loss': 'loss/generator',
                'wasserstein': 'loss/wasserstein_estimate', 'gradient_penalty': 'loss/gradient_penalty',
                'drift': 'loss/drift'}


def tensorboard_directory(log_dir):
    return os.path.join(log_dir, TENSORBOARD_FOLDER)


HEALTH_LABELS = {'health/discriminator_loss': 'D', 'health/wasserstein': 'W', 'health/gradient_penalty': 'GP',
                 'health/drift': 'drift', 'health/sample_diversity': 'samples', 'health/brightness_gap': 'brightness',
                 'health/ink_gap': 'ink'}
LEARNING_RATE_FACTOR = 'health/learning_rate_factor'


def health_text(health):
    """`health D 1.2 W 0.8 GP 2.1 drift 1.0 samples 0.93 lr x0.5`: each loss in times its recent level (alarm at 10),
    the samples' diversity over the real pages', and the learning-rate factor once a roll-back lowered it."""
    parts = [f'{label} {health[name]:.{2 if label in ("samples", "brightness", "ink") else 1}f}'
             for name, label in HEALTH_LABELS.items() if name in health]
    if health.get(LEARNING_RATE_FACTOR, 1.0) != 1.0:
        parts.append(f'lr x{health[LEARNING_RATE_FACTOR]:g}')
    return 'health ' + ' '.join(parts) if parts else ''


def loss_line(phase, step, metrics, alpha, images_per_second, health=None):
    """`16x16 fade step 400/10000 alpha 0.040: D 1.234 G -0.567 GP 0.012 W 0.345 | health D 1.2 ... | 12.3 img/s`
    (health with the collapse guard, speed once measured)."""
    alpha_text = f' alpha {alpha:.3f}' if phase.fading else ''
    health_part = health_text(health or {})
    health_part = f' | {health_part}' if health_part else ''
    speed = f' | {images_per_second:.1f} img/s' if images_per_second is not None else ''
    return (f'{phase.name} step {step}/{phase.steps}{alpha_text}: D {metrics["discriminator_loss"]:.4f} '
            f'G {metrics["generator_loss"]:.4f} GP {metrics["gradient_penalty"]:.4f} '
            f'W {metrics["wasserstein"]:.4f}{health_part}{speed}')


class TrainingOutputs:
    """TensorBoard writer and sample folders of one run; a non-chief worker writes nothing."""

    def __init__(self, log_dir, samples_dir, chief=True):
        self.samples_dir, self.chief = samples_dir, chief
        self.events = EventWriter(tensorboard_directory(log_dir), enabled=chief)

    def write_scalars(self, global_step, metrics, alpha, phase, images_per_second, extra=None):
        values = {SCALAR_NAMES[name]: value for name, value in metrics.items()}
        values.update({'schedule/alpha': alpha if phase.fading else 1.0, 'schedule/size': phase.size})
        if images_per_second is not None:
            values['speed/images_per_second'] = images_per_second
        values.update(extra or {})
        self.events.scalars(values, global_step)

    def phase_folder(self, phase):
        return os.path.join(self.samples_dir, phase.folder_name)

    @staticmethod
    def sample_pages(phase, generator_ema, sample_latents, alpha, real_images):
        """(generated, real) pages of one sample grid, float [N, S, S, C] in [-1, 1]: the EMA generator's from the
        fixed latents (for the collections of sample_collections), and the real ones as the critic sees them (blended
        during a fade-in). Every worker makes them: the collapse guard judges them, and all workers must take the
        same decisions."""
        alpha_tensor = tf.constant(alpha, tf.float32) if phase.fading else None
        count = generator_ema.architecture.collection_count
        collections = tf.one_hot(sample_collections(count), count)
        fakes = generator_ema(sample_latents, collections, size=phase.size, alpha=alpha_tensor).numpy()
        reals = blend_real_images(tf.constant(real_images), alpha_tensor).numpy() if phase.fading else real_images
        return fakes, reals

    def write_samples(self, phase, step, global_step, fakes, reals, columns=4):
        """The generated grid and the reals grid (one per sample during a fade-in, where the blend changes); paths."""
        if not self.chief:
            return []
        folder = self.phase_folder(phase)
        written = [save_grid(fakes, os.path.join(folder, f'step_{step:06d}.png'), columns)]
        if phase.fading:
            written.append(save_grid(reals, os.path.join(folder, f'reals_step_{step:06d}.png'), columns))
        elif not os.path.exists(os.path.join(folder, 'reals.png')):
            written.append(save_grid(reals, os.path.join(folder, 'reals.png'), columns))
        self.events.image(f'samples/{phase.folder_name}', grid(fakes, columns), global_step)
        self.events.image(f'reals/{phase.folder_name}', grid(reals, columns), global_step)
        return written

    def close(self):
        self.events.close()

