"""What the inference and interpolation stages share: the model they load, the run folder they write, latents files
and their collections, and numbered images.

Every sampling run writes into its own numbered folder inside
inference_output_directory (`run-001`, `run-002`, ...), so a second run never
overwrites or deletes the pages of an earlier one. Inference and
interpolation in the same config share one run folder, so a movie sits next
to the pages it was made from.

A latents file of a conditional model has a companion naming each row's
collection: `<name>_latents.npy` beside `<name>_collections.json`
({"collections": [every collection of the model], "rows": [the collection of
each row]}), so a saved run reproduces the same pages. The latents file stays
the plain [N, latent_size] array any tool reads.
"""

import json
import logging
import os
import re

import numpy as np

from deepzine.files import write_json
from deepzine.model.loading import MODEL_FOLDER, ModelLocation, locate_model
from deepzine.model.model_folder import model_folder_path
from deepzine.parameters import ConfigError
from deepzine.sampling.images import save_image, to_uint8

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
        return ModelLocation(model_folder_path(directory, size), MODEL_FOLDER, size, training.model_collections)
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
    """`X_<name>` beside a latents file `X_latents.npy` (projected_pages.npy beside projected_latents.npy), or
    `<latents file>_<name>` for a latents file named otherwise."""
    directory, file_name = os.path.split(latents_path)
    stem = file_name[:-len('latents.npy')] if file_name.endswith('_latents.npy') else file_name + '_'
    return os.path.join(directory, stem + name)


def collections_file_for(latents_path):
    """The companion naming the collection of each row of a latents file (see the module docstring)."""
    return companion_file(latents_path, 'collections.json')


def write_collections_file(latents_path, collection_names, rows):
    """Save the collection of each latents row beside `latents_path` (see the module docstring)."""
    write_json(collections_file_for(latents_path), {'collections': list(collection_names), 'rows': list(rows)})


def read_collections_file(latents_path, collection_names, key, rows=None):
    """The collection names of the rows of `latents_path` (only `rows`, in that order, when given) from its
    companion file, or None when it has none. ConfigError naming the file when they are not the model's."""
    path = collections_file_for(latents_path)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as handle:
            saved = json.load(handle)
        names = [str(name) for name in saved['rows']]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f'{path}: unreadable collections file ({error}); delete it to sample without it') from None
    unknown = sorted(set(names) - set(collection_names))
    if unknown:
        known = ', '.join(collection_names) or 'none: the model is not conditional'
        raise ConfigError(f'{key}={latents_path}: its collections file {path} names {", ".join(unknown)}, which the '
                          f'model does not know (it knows {known})')
    return [names[row] for row in rows] if rows is not None else names


def check_collection_names(key, requested, known):
    """The requested collection names (a list; ['all'] or None: every one), checked against a model's `known` ones;
    ConfigError naming the key and the known names. () for an unconditional model asked for nothing."""
    requested = [requested] if isinstance(requested, str) else list(requested or ['all'])
    if requested == ['all']:
        return tuple(known)
    if not known:
        raise ConfigError(f'{key}={requested}: the model is not conditioned on collections; leave {key} unset')
    repeated = sorted({name for name in requested if requested.count(name) > 1})
    if repeated:
        raise ConfigError(f'{key}={requested}: {", ".join(map(str, repeated))} given twice')
    unknown = [str(name) for name in requested if name not in known]
    if unknown:
        raise ConfigError(f'{key}={requested}: {", ".join(unknown)} not a collection of the model; it knows '
                          f'{", ".join(known)} (or all)')
    return tuple(requested)


def numbered_name(prefix, index, extension, collection=None):
    """inference_00000.png and the like (inference_00000_music.png for a conditional model's page of `music`): five
    digits sort correctly up to 100000 files."""
    suffix = f'_{collection}' if collection else ''
    return f'{prefix}_{index:05d}{suffix}.{extension}'


def write_numbered_images(generator, latents, directory, prefix, image_format, contrast_stretch=False, keep_images=False,
                          collections=None, collection_of_page=None, first_index=0):
    """Generate one page per latent (of `collections`, float [N, collection_count], for a conditional generator) and
    write `<prefix>_<first_index>.<format>`, ... into `directory`; `collection_of_page` (names, one per page) goes
    into the file names.

    Returns the paths, and the pages as uint8 [N, S, S, C] when keep_images
    (for a grid; a quarter of the float size), else None.
    """
    os.makedirs(directory, exist_ok=True)
    paths, kept = [], []
    for start, pages in generator.batches(latents, collections, progress_label=prefix):
        for offset, page in enumerate(pages):
            name = collection_of_page[start + offset] if collection_of_page else None
            path = os.path.join(directory, numbered_name(prefix, first_index + start + offset, image_format, name))
            paths.append(save_image(page, path, image_format, contrast_stretch))
        if keep_images:
            kept.append(to_uint8(pages, contrast_stretch))
    return paths, (np.concatenate(kept) if keep_images else None)
