"""Where a training run starts: from scratch, from its own latest checkpoint, from a lower size's model, or from a
finished model to fine-tune (a DeepZine model folder, or an ORIGINAL DeepZine TF1 checkpoint).

Worked out once, before any work, from what is on disk: the plan says it, the
dry-run prints it, and the trainer does exactly that.
"""

import dataclasses
import os

from deepzine.model.architecture import Architecture
from deepzine.model.legacy import is_legacy_checkpoint, read_legacy_architecture
from deepzine.model.model_folder import is_model_folder, model_folder_path, read_model_json
from deepzine.parameters import ConfigError
from deepzine.sizes import sizes_between
from deepzine.training import checkpoints

FRESH, RESUME, GROW, FINE_TUNE = 'fresh', 'resume', 'grow', 'fine-tune'
ORIGINAL_FOLDER_SUFFIX = '_original'


@dataclasses.dataclass(frozen=True)
class StartingPoint:
    kind: str                              # FRESH, RESUME, GROW or FINE_TUNE
    folder: str = None                     # the model folder to start from (GROW, FINE_TUNE)
    architecture: Architecture = None      # the networks' own architecture, when it is not the config's
    original_checkpoint: bool = False      # FINE_TUNE from an original DeepZine TF1 checkpoint in `folder`

    @property
    def original_kept_at(self):
        """Where an original checkpoint is moved before its size's model folder is written in its place."""
        return self.folder + ORIGINAL_FOLDER_SUFFIX if self.original_checkpoint else None

    def describe(self, log_dir):
        if self.kind == RESUME:
            return f'resume: continues from the latest checkpoint in {checkpoints.checkpoint_directory(log_dir)}'
        if self.kind == GROW:
            return f'start from the trained lower sizes in {self.folder}'
        if self.kind == FINE_TUNE and self.original_checkpoint:
            return (f'fine-tune the ORIGINAL DeepZine checkpoint in {self.folder} (its own widths); its files move to '
                    f'{self.original_kept_at} first, so the fine-tuned model folder can take its place')
        if self.kind == FINE_TUNE:
            return (f'fine-tune the model in {self.folder} (its own architecture; the model keys of this config do not '
                    f'apply), the stable phase of its size only')
        return 'start from scratch at 4x4'


def _check_channels(folder, architecture, channels):
    if architecture.channels != channels:
        raise ConfigError(f'{folder}: the model makes {architecture.channels}-channel pages but the page file holds '
                          f'{channels}-channel pages; pack the data with channels: {architecture.channels}')


def _fine_tuning(folder, channels, pretrained_model):
    """The StartingPoint for fine-tuning the model in `folder`, or None when it holds none."""
    if is_model_folder(folder) and not pretrained_model:
        description = read_model_json(folder)
        if 'discriminator' not in description.get('networks', []):
            raise ConfigError(f'{folder}: this model was saved without its discriminator (a sampling-only model), '
                              f'so it cannot be fine-tuned')
        architecture = Architecture(**description['architecture'])
        _check_channels(folder, architecture, channels)
        return StartingPoint(FINE_TUNE, folder, architecture)
    original = next((place for place in (folder, folder + ORIGINAL_FOLDER_SUFFIX) if is_legacy_checkpoint(place)), None)
    if original == folder + ORIGINAL_FOLDER_SUFFIX:  # moved aside by a fine-tuning run that was interrupted
        architecture = read_legacy_architecture(original)
        _check_channels(original, architecture, channels)
        return StartingPoint(FINE_TUNE, folder, architecture, original_checkpoint=True)
    if original:
        architecture = read_legacy_architecture(folder)
        _check_channels(folder, architecture, channels)
        if os.path.exists(folder + ORIGINAL_FOLDER_SUFFIX):
            raise ConfigError(f'{folder}: holds an original DeepZine checkpoint, and {folder + ORIGINAL_FOLDER_SUFFIX}, '
                              f'where fine-tuning keeps it, exists already; move one of them away')
        return StartingPoint(FINE_TUNE, folder, architecture, original_checkpoint=True)
    return None


def _refuse_to_replace_foreign_folders(log_dir, sizes, start):
    """Model folders are replaced whole at each size's end: never a folder of something else the user made."""
    for size in sizes:
        folder = model_folder_path(log_dir, size)
        if not os.path.exists(folder) or is_model_folder(folder) or (start.original_checkpoint and folder == start.folder):
            continue
        what = 'an original DeepZine checkpoint' if is_legacy_checkpoint(folder) else 'files that are not a DeepZine model'
        raise ConfigError(f'{folder}: holds {what}, which training would replace with its {size}x{size} model; '
                          f'use another log_dir (to fine-tune an original model, set gan_starting_size and '
                          f'gan_output_size to its size)')


def find_starting_point(log_dir, starting_size, output_size, configured, channels, pretrained_model, settings):
    """The StartingPoint of a run of `configured` (the config's Architecture) from starting_size to output_size.

    A run with checkpoints resumes them, with the networks they hold, provided
    the config still describes those networks (the settings saved beside the
    checkpoints are compared; ConfigError naming what differs).
    """
    fine_tuning = None
    if starting_size == output_size > 4:
        fine_tuning = _fine_tuning(model_folder_path(log_dir, output_size), channels, pretrained_model)
    saved = checkpoints.read_run_config(log_dir)
    if os.path.exists(os.path.join(checkpoints.checkpoint_directory(log_dir), 'checkpoint')) and saved:
        expected = fine_tuning.architecture if fine_tuning else configured
        checkpoints.check_same_run(saved, expected, settings, channels, log_dir)
        start = StartingPoint(RESUME, architecture=checkpoints.saved_architecture(saved))
    elif fine_tuning:
        start = fine_tuning
    elif starting_size > 4:
        lower = model_folder_path(log_dir, starting_size // 2)
        if not is_model_folder(lower):
            raise ConfigError(f'gan_starting_size={starting_size}: the lower sizes must be trained already, but {lower} '
                              f'holds no DeepZine model and {log_dir} no checkpoint; start at 4')
        saved = Architecture(**read_model_json(lower)['architecture'])
        if saved != configured:
            raise ConfigError(f'{lower}: its networks were built with other model keys than this config; use the '
                              f'config of the run that made it (stored in {lower}/model.json)')
        start = StartingPoint(GROW, lower)
    else:
        start = StartingPoint(FRESH)
    _refuse_to_replace_foreign_folders(log_dir, sizes_between(starting_size, output_size), start)
    return start
