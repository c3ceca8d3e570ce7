"""Where a training run starts: from scratch, from its own checkpoint, from a lower size's model, or from a finished
model to fine-tune (a DeepZine model folder, or an ORIGINAL DeepZine TF1 checkpoint); and loading that start.

Decided once, before any work, from what is on disk (`find_starting_point`,
called by the train stage's validate): the plan says it, the dry-run prints
it, and the trainer does exactly that (`load_starting_networks`). A resume
reads its checkpoint's own description (so a changed config is refused before
anything is written), its position and, with the collapse guard, its health:
when the newest checkpoint was saved unhealthy, the run continues from the
newest healthy one, keeping the newest one's guard state (roll-backs and the
lowered learning rate).

TensorFlow is imported where a model folder is loaded: the params command imports this module.
"""

import dataclasses
import logging
import os

from deepzine.model.architecture import Architecture
from deepzine.model.legacy import is_legacy_checkpoint, load_legacy_networks, read_legacy_architecture
from deepzine.model.model_folder import CHECKPOINT_PREFIX, is_model_folder, model_folder_path, read_model_json
from deepzine.parameters import ConfigError
from deepzine.sizes import sizes_between
from deepzine.training import checkpoints, schedule
from deepzine.training.guard import saved_unhealthy_reason

logger = logging.getLogger(__name__)

FRESH, RESUME, GROW, FINE_TUNE = 'fresh', 'resume', 'grow', 'fine-tune'
ORIGINAL_FOLDER_SUFFIX = '_original'


@dataclasses.dataclass(frozen=True)
class StartingPoint:
    kind: str                              # FRESH, RESUME, GROW or FINE_TUNE
    first_phase_index: int                 # where a run of this config begins when it has no checkpoint
    phase_index: int                       # the phase training continues in (len(phases): everything is trained)
    step: int = 0                          # the step inside it
    folder: str = None                     # the model folder to start from (GROW, FINE_TUNE)
    architecture: Architecture = None      # the networks' own architecture, when it is not the config's
    original_checkpoint: bool = False      # FINE_TUNE from an original DeepZine TF1 checkpoint in `folder`
    checkpoint: str = None                 # RESUME: the checkpoint to restore
    guard_state: dict = None               # RESUME: the collapse guard's state to continue with
    note: str = ''                         # RESUME: why it is not the newest checkpoint

    @property
    def original_kept_at(self):
        """Where an original checkpoint is moved before its size's model folder is written in its place."""
        return self.folder + ORIGINAL_FOLDER_SUFFIX if self.original_checkpoint else None

    def describe(self, phases):
        if self.kind == RESUME:
            where = (f'{phases[self.phase_index].name} step {self.step}' if self.phase_index < len(phases)
                     else 'the end')
            return f'resume from {self.checkpoint} at {where}' + (f': {self.note}' if self.note else '')
        if self.kind == GROW:
            return f'start from the trained lower sizes in {self.folder}'
        if self.kind == FINE_TUNE and self.original_checkpoint:
            return (f'fine-tune the ORIGINAL DeepZine checkpoint in {self.folder} (its own widths); its files move to '
                    f'{self.original_kept_at} first, so the fine-tuned model folder can take its place')
        if self.kind == FINE_TUNE:
            return (f'fine-tune the model in {self.folder} (its own architecture; the model keys of this config do not '
                    f'apply), the stable phase of its size only')
        return 'start from scratch at 4x4'


def check_model_fits_data(where, architecture, collections, data):
    """ConfigError unless a model (of `architecture`, trained on `collections`, None when not recorded) can train on
    the page file `data` (deepzine.data.store.PageFileFacts): its channels, and a conditional model's collections."""
    if architecture.channels != data.channels:
        raise ConfigError(f'{where}: the model makes {architecture.channels}-channel pages but the page file holds '
                          f'{data.channels}-channel pages; pack the data with channels: {architecture.channels}')
    if architecture.conditional and tuple(collections or ()) != tuple(data.collections):
        raise ConfigError(f'{where}: the model was trained on the collections {", ".join(collections or ["?"])}, but '
                          f'data_hdf5={data.path} holds {", ".join(data.collections)}; train it on a page file of '
                          f'the same collections, or use a new log_dir')


def _fine_tuning(folder, data, pretrained_model):
    """(folder, architecture, original?) for fine-tuning the model in `folder`, or None when it holds none."""
    if is_model_folder(folder) and not pretrained_model:
        description = read_model_json(folder)
        if 'discriminator' not in description.get('networks', []):
            raise ConfigError(f'{folder}: this model was saved without its discriminator (a sampling-only model), '
                              f'so it cannot be fine-tuned')
        architecture = Architecture(**description['architecture'])
        check_model_fits_data(folder, architecture, description.get('collections'), data)
        return folder, architecture, False
    original = next((place for place in (folder, folder + ORIGINAL_FOLDER_SUFFIX) if is_legacy_checkpoint(place)), None)
    if original is None:
        return None
    if original == folder and os.path.exists(folder + ORIGINAL_FOLDER_SUFFIX):
        raise ConfigError(f'{folder}: holds an original DeepZine checkpoint, and {folder + ORIGINAL_FOLDER_SUFFIX}, '
                          f'where fine-tuning keeps it, exists already; move one of them away')
    architecture = read_legacy_architecture(original)  # moved aside already by a fine-tuning run that was interrupted
    check_model_fits_data(original, architecture, None, data)
    return folder, architecture, True


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


def _resume(latest, phases, first, guard):
    """The StartingPoint continuing the run whose newest checkpoint is `latest`; `guard`: None, or (channels, gradient
    penalty weight) of a run with the collapse guard, which continues from the newest healthy checkpoint."""
    record = checkpoints.read_checkpoint_health(latest)
    healthy_steps, guard_state = record.healthy_steps, record.guard
    chosen, note = latest, ''
    if guard:
        *_, latest_step = checkpoints.read_checkpoint_position(latest)
        directory = os.path.dirname(latest)
        kept = [checkpoints.checkpoint_prefix(directory, step) for step in healthy_steps]
        kept = [prefix for prefix in kept if os.path.exists(prefix + '.index')]
        if latest_step not in healthy_steps and kept:
            chosen = kept[-1]
            reason = saved_unhealthy_reason(guard_state, *guard) or 'not healthy'
            note = (f'{os.path.basename(latest)} was saved unhealthy ({reason}): resuming from the newest healthy '
                    f'checkpoint {os.path.basename(chosen)} instead')
    size, kind, step, _ = checkpoints.read_checkpoint_position(chosen)
    index, step = schedule.resume_position(phases, phases[first].size, size, kind, step)
    return StartingPoint(RESUME, first, index, step, checkpoint=chosen, guard_state=guard_state, note=note)


def find_starting_point(log_dir, phases, starting_size, configured, data, pretrained_model, settings, guard=None,
                        conditional=None):
    """(StartingPoint, the Architecture to train) of a run of `configured` (the config's Architecture) over `phases`
    from starting_size on (a fine-tuning run: the stable phase of its size only); `guard`: (channels, gradient
    penalty weight) with the collapse guard on, else None. `data`: the PageFileFacts of the pages to train on.
    `conditional`: the key; left unset (None), the networks already trained decide whether the run is conditional.

    A run with checkpoints resumes them, with the networks they hold, provided
    the config still describes those networks (the newest checkpoint's own
    description is compared; ConfigError naming what differs).
    """
    output_size = phases[-1].size
    first = schedule.first_phase_index(phases, starting_size)
    fine_tuning = None
    if starting_size == output_size > 4:
        fine_tuning = _fine_tuning(model_folder_path(log_dir, output_size), data, pretrained_model)
    latest = checkpoints.latest_checkpoint(log_dir) if os.path.isdir(checkpoints.checkpoint_directory(log_dir)) else None
    if fine_tuning:
        first += 1  # a finished size: its stable phase only
    if latest:
        saved = checkpoints.read_checkpoint_description(latest)
        expected = fine_tuning[1] if fine_tuning else configured
        if conditional is None:
            expected = dataclasses.replace(expected,
                                           collection_count=checkpoints.saved_architecture(saved).collection_count)
        checkpoints.check_same_run(saved, expected, settings, data.channels, log_dir)
        check_model_fits_data(f'log_dir={log_dir}', checkpoints.saved_architecture(saved), saved.get('collections'),
                              data)
        start, architecture = _resume(latest, phases, first, guard), checkpoints.saved_architecture(saved)
    elif fine_tuning:
        folder, architecture, original = fine_tuning
        start = StartingPoint(FINE_TUNE, first, first, folder=folder, architecture=architecture,
                              original_checkpoint=original)
    elif starting_size > 4:
        lower = model_folder_path(log_dir, starting_size // 2)
        if not is_model_folder(lower):
            raise ConfigError(f'gan_starting_size={starting_size}: the lower sizes must be trained already, but {lower} '
                              f'holds no DeepZine model and {log_dir} no checkpoint; start at 4')
        description = read_model_json(lower)
        lower_architecture = Architecture(**description['architecture'])
        if conditional is None:
            configured = dataclasses.replace(configured, collection_count=lower_architecture.collection_count)
        if lower_architecture != configured:
            raise ConfigError(f'{lower}: its networks were built with other model keys than this config; use the '
                              f'config of the run that made it (stored in {lower}/model.json)')
        check_model_fits_data(lower, configured, description.get('collections'), data)
        start, architecture = StartingPoint(GROW, first, first, folder=lower), configured
    else:
        start, architecture = StartingPoint(FRESH, first, first), configured
    _refuse_to_replace_foreign_folders(log_dir, sizes_between(starting_size, output_size), start)
    return start, architecture


def load_starting_networks(start, models, architecture, chief=True):
    """Put the networks of a GROW or FINE_TUNE start into `models` (step.TrainingModels); an original DeepZine
    checkpoint is first moved aside to `original_kept_at`, so the fine-tuned model folder can take its place."""
    if start.kind == FINE_TUNE and start.original_checkpoint:
        if chief and os.path.isdir(start.folder) and not os.path.exists(start.original_kept_at):
            os.replace(start.folder, start.original_kept_at)
            logger.info('moved the original DeepZine checkpoint %s to %s (its size\'s model folder takes its place)',
                        start.folder, start.original_kept_at)
        _load_original_checkpoint(start.original_kept_at, models)
    elif start.kind in (FINE_TUNE, GROW):
        _load_model_folder(start.folder, models, architecture)
    else:
        return
    logger.info('%s from the model in %s', 'fine-tuning' if start.kind == FINE_TUNE else 'growing', start.folder)


def _load_original_checkpoint(folder, models):
    """An ORIGINAL DeepZine TF1 checkpoint's generator (also as the EMA copy) and discriminator."""
    _, generator, discriminator = load_legacy_networks(folder)
    for source, targets in ((generator, (models.generator, models.generator_ema)),
                            (discriminator, (models.discriminator,))):
        for target in targets:
            for source_weight, target_weight in zip(source.weights, target.weights):
                target_weight.assign(source_weight)


def _load_model_folder(folder, models, architecture):
    """A per-resolution model folder's generator, EMA and discriminator (growing or fine-tuning)."""
    import tensorflow as tf
    saved = read_model_json(folder)
    missing = {'generator', 'generator_ema', 'discriminator'} - set(saved.get('networks', []))
    if missing:
        raise ConfigError(f'{folder}: saved without {", ".join(sorted(missing))}, so training cannot continue from it')
    if Architecture(**saved['architecture']) != architecture:
        raise ConfigError(f'{folder}: its networks were built with other model parameters than this config; '
                          f'use the config of the run that made it (stored in {folder}/model.json)')
    networks = tf.train.Checkpoint(generator=models.generator, generator_ema=models.generator_ema,
                                   discriminator=models.discriminator)
    networks.read(os.path.join(folder, CHECKPOINT_PREFIX)).expect_partial().assert_existing_objects_matched()
