"""What the inference and interpolation stages share: find and load the model, read latents files, write numbered images."""

import logging
import os
import re

import numpy as np
from tqdm import tqdm

from deepzine.parameters import ConfigError

logger = logging.getLogger(__name__)


def model_location(stage):
    """The model folder or checkpoint prefix a sampling stage will load: for --dry-run and messages."""
    if stage.inference_model_path:
        return stage.inference_model_path
    return os.path.join(stage.inference_model_directory or stage.log_dir, str(stage.gan_output_size))


def check_model_exists(stage):
    """validate(): the model is on disk already, unless the train stage of this same run writes it first."""
    location = model_location(stage)
    if 'train' in stage.earlier_stages or os.path.exists(location) or os.path.exists(location + '.index'):
        return
    key = 'inference_model_path' if stage.inference_model_path else 'inference_model_directory'
    raise ConfigError(f'{key}: no model at {location} (train one first with train: true, or point {key} '
                      f'at a trained model; gan_output_size={stage.gan_output_size} picks the <size> folder)')


def load_page_generator(stage):
    """The stage's generator via deepzine.model.loading (its architecture comes from the run, not from the config)."""
    from deepzine.model.loading import load_generator
    generator = load_generator(stage.inference_model_directory or stage.log_dir, stage.inference_model_path,
                               stage.gan_output_size, pretrained_model=stage.pretrained_model,
                               batch_size=stage.inference_batch_size)
    logger.info('loaded %s: %dx%d pages, %d channel(s), latent size %d', generator.description or model_location(stage),
                generator.size, generator.size, generator.channels, generator.latent_size)
    return generator


def check_latents_file(key, path):
    """validate(): the .npy named by `key` exists (its shape is checked against the model once it is loaded)."""
    if path is not None and not os.path.isfile(path):
        raise ConfigError(f'{key}={path}: no such file (expected a .npy of latents [N, latent_size])')


def read_latents_file(key, path, latent_size, minimum_count=1):
    """Latents from a .npy file: float32 [N, latent_size], N >= minimum_count; ConfigError naming the file otherwise."""
    try:
        latents = np.load(path, allow_pickle=False)  # never unpickle: a .npy from elsewhere could run code
    except (OSError, ValueError) as error:
        raise ConfigError(f'{key}={path}: not a readable .npy array ({error})') from None
    if latents.ndim != 2 or latents.shape[1] != latent_size or len(latents) < minimum_count:
        raise ConfigError(f'{key}={path}: shape {list(latents.shape)} does not fit the model, whose latent_size is '
                          f'{latent_size}; expected [N, {latent_size}] with N >= {minimum_count}')
    if not np.issubdtype(latents.dtype, np.number) or not np.all(np.isfinite(latents)):
        raise ConfigError(f'{key}={path}: latents must be finite numbers')
    return latents.astype(np.float32)


def numbered_name(prefix, index, extension):
    """inference_00000.png and the like: five digits sort correctly up to 100000 files."""
    return f'{prefix}_{index:05d}.{extension}'


def remove_stale_numbered_files(directory, prefix, extensions, keep_count, keep_extension):
    """Delete `<prefix>_NNNNN.<ext>` files an earlier run left: index >= keep_count, or another of `extensions`.

    Without this a folder would mix two runs (and a movie made from it would play
    old frames at the end). Only names of exactly our pattern are touched.
    """
    pattern = re.compile(rf'^{re.escape(prefix)}_(\d{{5,}})\.({"|".join(map(re.escape, extensions))})$')
    removed = 0
    for name in os.listdir(directory):
        match = pattern.match(name)
        if match and (int(match.group(1)) >= keep_count or match.group(2) != keep_extension):
            os.remove(os.path.join(directory, name))
            removed += 1
    if removed:
        logger.info('removed %d %s_* files left in %s by an earlier run', removed, prefix, directory)


def generate_numbered_images(generator, latents, directory, prefix, image_format, batch_size, keep_images=False):
    """Run `generator` over `latents` in batches and write `<prefix>_00000.<format>`, ... into `directory`.

    Exactly one file per latent, no padding. Returns the paths, and the images as
    uint8 [N, S, S, C] when keep_images (for a grid; a quarter of the float size), else None.
    """
    from deepzine.sampling.images import save_image, to_uint8
    os.makedirs(directory, exist_ok=True)
    paths, kept = [], []
    starts = range(0, len(latents), batch_size)
    for start in tqdm(starts, desc=prefix, unit='batch', disable=None):
        images = generator.generate(latents[start:start + batch_size])
        for offset, image in enumerate(images):
            path = os.path.join(directory, numbered_name(prefix, start + offset, image_format))
            paths.append(save_image(image, path, image_format))
        if keep_images:
            kept.append(to_uint8(images))
    return paths, (np.concatenate(kept) if keep_images else None)
