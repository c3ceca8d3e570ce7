"""What the inference and interpolation stages share: the model they load, the run folder they write, latents files,
and numbered images.

Every sampling run writes into its own numbered folder inside
inference_output_directory (`run-001`, `run-002`, ...), so a second run never
overwrites or deletes the pages of an earlier one. Inference and
interpolation in the same config share one run folder, so a movie sits next
to the pages it was made from.
"""

import logging
import os
import re

import numpy as np

from deepzine.model.loading import MODEL_FOLDER, ModelLocation, locate_model
from deepzine.model.model_folder import model_folder_path
from deepzine.parameters import ConfigError

logger = logging.getLogger(__name__)

RUN_FOLDER_PATTERN = re.compile(r'run-(\d{3,})$')


def sampling_model(directory, path, size, pretrained_model, earlier):
    """validate(): the ModelLocation a sampling stage loads; a model the train stage of this run will write counts.

    directory: inference_model_directory or log_dir; path: inference_model_path; size: gan_output_size.
    """
    training = earlier.get('train')
    if training is not None and not path and directory == training.model_directory:
        trained = {phase.size for phase in training.trained_phases if not phase.fading}
        if size not in trained:
            raise ConfigError(f'gan_output_size={size}: the train stage of this run writes models of '
                              f'sizes {sorted(trained)} into {directory}')
        return ModelLocation(model_folder_path(directory, size), MODEL_FOLDER, size)
    return locate_model(directory, path, size, pretrained_model)


def next_run_folder(output_directory, earlier):
    """The run folder of this sampling run: an earlier sampling stage's of the same run, else the next free number."""
    for plan in earlier.values():
        folder = getattr(plan, 'run_folder', None)
        if folder and os.path.dirname(folder) == output_directory:
            return folder
    numbers = [int(match.group(1)) for name in (os.listdir(output_directory) if os.path.isdir(output_directory) else [])
               if (match := RUN_FOLDER_PATTERN.match(name))]
    return os.path.join(output_directory, f'run-{max(numbers, default=0) + 1:03d}')


def check_latents_file(key, path):
    """validate(): the .npy named by `key` exists (its shape is checked against the model once it is loaded)."""
    if path is not None and not os.path.isfile(path):
        raise ConfigError(f'{key}={path}: no such file (expected a .npy of latents [N, latent_size], such as the '
                          f'inference_latents.npy an inference run writes)')


def read_latents_file(key, path, latent_size, minimum_count=1, rows=None, rows_key=None):
    """Latents from a .npy file: float32 [N, latent_size] (only `rows`, in that order, when given).

    ConfigError naming the file (or the rows key) when they do not fit the model.
    """
    try:
        latents = np.load(path, allow_pickle=False)  # never unpickle: a .npy from elsewhere could run code
    except (OSError, ValueError) as error:
        raise ConfigError(f'{key}={path}: not a readable .npy array ({error})') from None
    if latents.ndim != 2 or latents.shape[1] != latent_size:
        raise ConfigError(f'{key}={path}: shape {list(latents.shape)} does not fit the model, whose latent_size is '
                          f'{latent_size}; expected [N, {latent_size}]')
    if not np.issubdtype(latents.dtype, np.number) or not np.all(np.isfinite(latents)):
        raise ConfigError(f'{key}={path}: latents must be finite numbers')
    if rows is not None:
        outside = [row for row in rows if not isinstance(row, int) or not 0 <= row < len(latents)]
        if outside:
            raise ConfigError(f'{rows_key}={list(rows)}: rows {outside} are not in {path}, which has rows 0..{len(latents) - 1}')
        latents = latents[list(rows)]
    if len(latents) < minimum_count:
        raise ConfigError(f'{key}={path}: {len(latents)} latent(s), at least {minimum_count} needed')
    return latents.astype(np.float32)


def companion_file(latents_path, name):
    """`X_<name>` beside a latents file `X_latents.npy` (projected_pages.npy beside projected_latents.npy); None when
    the latents file is not named so."""
    directory, file_name = os.path.split(latents_path)
    if not file_name.endswith('_latents.npy'):
        return None
    return os.path.join(directory, file_name[:-len('latents.npy')] + name)


def numbered_name(prefix, index, extension):
    """inference_00000.png and the like: five digits sort correctly up to 100000 files."""
    return f'{prefix}_{index:05d}.{extension}'


def write_numbered_images(generator, latents, directory, prefix, image_format, contrast_stretch=False, keep_images=False,
                          first_index=0):
    """Generate one page per latent and write `<prefix>_<first_index>.<format>`, ... into `directory`.

    Returns the paths, and the pages as uint8 [N, S, S, C] when keep_images
    (for a grid; a quarter of the float size), else None.
    """
    from deepzine.sampling.images import save_image, to_uint8
    os.makedirs(directory, exist_ok=True)
    paths, kept = [], []
    for start, pages in generator.batches(latents, progress_label=prefix):
        for offset, page in enumerate(pages):
            path = os.path.join(directory, numbered_name(prefix, first_index + start + offset, image_format))
            paths.append(save_image(page, path, image_format, contrast_stretch))
        if keep_images:
            kept.append(to_uint8(pages, contrast_stretch))
    return paths, (np.concatenate(kept) if keep_images else None)
