"""Run checkpoints in `log_dir/checkpoints/`: everything needed to resume a run exactly, and the check that it is the same run.

A checkpoint (`tf.train.Checkpoint`, TF2 object-based) holds the three
networks, both optimizers, the RNG state, the position (phase size, kind, step
inside the phase), the global step, the run's seed, the fixed sample latents and
the run description (format version, resolved config, data channels) as a
string variable, and the training health state (deepzine.training.health: the
collapse guard's roll-backs and learning-rate factor, and whether the
checkpoint is healthy) as another. `run_config.yaml` beside it repeats the
description in YAML, so `validate()` can refuse a mismatched config before
anything is written, and a user can copy the saved settings back.

`CheckpointList` keeps the newest few checkpoints and, however old, the one
the collapse guard would roll back to; a roll-back forgets the checkpoints of
the abandoned path.
"""

import glob
import json
import logging
import os
import shutil
import tempfile

import yaml

from deepzine import files
from deepzine.files import OutOfSpace, is_out_of_space
from deepzine.model.architecture import Architecture
from deepzine.parameter_groups import ModelParameters
from deepzine.parameters import ConfigError
from deepzine.sizes import sizes_between

logger = logging.getLogger(__name__)

FORMAT_VERSION = 3  # 3: checkpoints hold the health state; 2: the description holds the Architecture; 1: config keys
CHECKPOINT_FOLDER = 'checkpoints'
RUN_CONFIG_FILE = 'run_config.yaml'
INDEX_FILE = 'checkpoint'  # TensorFlow's name: tf.train.latest_checkpoint reads it
CHECKPOINTS_TO_KEEP = 3  # the newest ones; the protected ones (the collapse guard's healthy ones) come on top
HEALTH_STATE = 'health_state'
SHAPE_KEYS = tuple(ModelParameters.declared()) + ('channels',)
KIND_CODES = {'stable': 0, 'fade': 1}
KIND_NAMES = {code: name for name, code in KIND_CODES.items()}


def checkpoint_directory(log_dir):
    return os.path.join(log_dir, CHECKPOINT_FOLDER)


def run_description(settings, channels, architecture):
    """What identifies a run: the format version, the train stage's keys, the data's channels and the networks."""
    return {'format_version': FORMAT_VERSION, 'channels': channels, 'config': dict(settings),
            'architecture': json.loads(architecture.to_json())}


def read_run_config(log_dir):
    """The description stored beside the checkpoints as YAML, or None when the run has none yet."""
    path = os.path.join(checkpoint_directory(log_dir), RUN_CONFIG_FILE)
    try:
        with open(path, encoding='utf-8') as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f'{path}: unreadable ({str(error).splitlines()[0]}); restore it or use a new log_dir') from None


def _widths_of_format_1(config):
    """Filter widths as runs of format 1 built them: max_filter up to the transition size, halved above it."""
    widths = {}
    for size in sizes_between(4, config['gan_output_size']):
        halvings = max(0, (size // config['filter_num_reduction_transition_size']).bit_length() - 1)
        widths[size] = max(config['min_filter'], config['max_filter'] >> halvings)
    return widths


def saved_architecture(saved):
    """The Architecture of the run described by `saved` (run_config.yaml or a checkpoint's description)."""
    if saved.get('architecture'):
        return Architecture(**saved['architecture'])
    config = saved['config']
    return Architecture(latent_size=config['latent_size'], channels=saved['channels'],
                        output_size=config['gan_output_size'], widths=_widths_of_format_1(config),
                        equalized_learning_rate=config['equalized_learning_rate'],
                        minibatch_group_size=config['minibatch_group_size'])


def architecture_differences(saved, current):
    """['max_filter widths: saved {...}, now {...}', ...] for every field of two Architectures that differs."""
    return [f'{name}: saved {getattr(saved, name)!r}, now {getattr(current, name)!r}'
            for name in ('latent_size', 'channels', 'output_size', 'widths', 'equalized_learning_rate',
                         'normalize_latent', 'minibatch_group_size', 'rgb_sizes')
            if getattr(saved, name) != getattr(current, name)]


def _key_differences(saved, settings, channels):
    """For runs of format 1: ['max_filter: saved 128, now 64', ...] over the shape-defining keys and the channels."""
    saved_values = dict(saved.get('config', {}), channels=saved.get('channels'))
    current = dict(settings, channels=channels)
    return [f'{key}: saved {saved_values.get(key)!r}, now {current.get(key)!r}'
            for key in SHAPE_KEYS if saved_values.get(key) != current.get(key)]


def check_same_run(saved, architecture, settings, channels, log_dir):
    """ConfigError naming what differs, unless the config (its networks, its data's channels) continues the saved run."""
    if saved is None:
        return
    if saved.get('format_version', 0) > FORMAT_VERSION:
        raise ConfigError(f'log_dir={log_dir}: its checkpoints were written by a newer DeepZine (format '
                          f'{saved["format_version"]}, this one reads {FORMAT_VERSION}); update DeepZine')
    if saved.get('architecture'):
        differences = architecture_differences(saved_architecture(saved), architecture)
    else:
        differences = _key_differences(saved, settings, channels)
    if differences:
        where = os.path.join(checkpoint_directory(log_dir), RUN_CONFIG_FILE)
        raise ConfigError(f'log_dir={log_dir} holds a run with other networks ({"; ".join(differences)}): use a new '
                          f'log_dir, or set the model keys back to the run\'s (its settings are in {where})')


def remove_leftovers(log_dir):
    """Delete what a run killed while saving left behind (TensorFlow's `ckpt-N_temp` folders, our `.partial` files)."""
    directory = checkpoint_directory(log_dir)
    for name in os.listdir(directory) if os.path.isdir(directory) else []:
        if name.endswith('_temp') and os.path.isdir(os.path.join(directory, name)):
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
    files.remove_leftovers(directory)
    files.remove_leftovers(log_dir)


def read_checkpoint_description(prefix):
    """The run description stored inside a checkpoint, read without building any network."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(prefix)
    return json.loads(reader.get_tensor('run_description/.ATTRIBUTES/VARIABLE_VALUE').decode('utf-8'))


def read_checkpoint_position(prefix):
    """(phase size, phase kind, step inside the phase, global step) stored in a checkpoint, read without building
    any network."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(prefix)

    def value(name):
        return int(reader.get_tensor(f'{name}/.ATTRIBUTES/VARIABLE_VALUE'))

    return value('phase_size'), KIND_NAMES[value('phase_kind')], value('phase_step'), value('global_step')


def latest_checkpoint(log_dir):
    import tensorflow as tf
    return tf.train.latest_checkpoint(checkpoint_directory(log_dir))


def checkpoint_prefix(directory, global_step):
    return os.path.join(directory, f'ckpt-{global_step}')


def _delete_checkpoint_files(prefix):
    for path in [prefix + '.index'] + glob.glob(glob.escape(prefix) + '.data-?????-of-?????'):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


class CheckpointList:
    """The checkpoints of a run in the order they were saved, recorded in TensorFlow's index file `checkpoint`.

    Keeps the newest CHECKPOINTS_TO_KEEP and the `protected` ones however old:
    the healthy checkpoints the collapse guard may roll back to. Not
    tf.train.CheckpointManager: it deletes the oldest whatever they are and
    cannot forget the checkpoints of a path a roll-back abandoned. The index is
    rewritten (atomically) before any file is deleted, so it never names a
    missing checkpoint. Workers other than the chief only read (a roll-back in
    a multi-machine run needs log_dir on a filesystem they share).
    """

    def __init__(self, directory, writable=True):
        import tensorflow as tf
        self.directory, self.writable = directory, writable
        state = tf.train.get_checkpoint_state(directory) if os.path.isdir(directory) else None
        prefixes = list(state.all_model_checkpoint_paths) if state else []
        if state and state.model_checkpoint_path:
            prefixes = [prefix for prefix in prefixes if prefix != state.model_checkpoint_path]
            prefixes.append(state.model_checkpoint_path)
        self.prefixes = [prefix for prefix in prefixes if os.path.exists(prefix + '.index')]

    @property
    def latest(self):
        return self.prefixes[-1] if self.prefixes else None

    def find(self, global_step):
        """The prefix of the checkpoint saved at `global_step`, or None when it is not kept."""
        prefix = checkpoint_prefix(self.directory, global_step)
        return prefix if os.path.exists(prefix + '.index') else None

    def add(self, prefix, protected=()):
        """Record the checkpoint just written at `prefix` as the latest; drop the old ones but the `protected`."""
        self.prefixes = [kept for kept in self.prefixes if kept != prefix] + [prefix]
        dropped = [old for old in self.prefixes[:-CHECKPOINTS_TO_KEEP] if old not in protected]
        self._forget(dropped)

    def discard_after(self, prefix):
        """Forget and delete every checkpoint saved after `prefix`, which becomes the latest."""
        self._forget(self.prefixes[self.prefixes.index(prefix) + 1:])

    def _forget(self, dropped):
        if not self.writable:
            return
        self.prefixes = [prefix for prefix in self.prefixes if prefix not in dropped]
        names = [os.path.basename(prefix) for prefix in self.prefixes]
        lines = [f'model_checkpoint_path: "{names[-1]}"'] + [f'all_model_checkpoint_paths: "{name}"' for name in names]
        files.write_text(os.path.join(self.directory, INDEX_FILE), '\n'.join(lines) + '\n')
        for prefix in dropped:
            _delete_checkpoint_files(prefix)


def _adam_of(optimizer):
    return getattr(optimizer, 'inner_optimizer', optimizer)


class RunCheckpoint:
    """The checkpoint of one run: its tracked objects, the list of its saved checkpoints, and the position it records."""

    def __init__(self, log_dir, models, state, description, sample_latents, run_seed, chief=True):
        import tensorflow as tf
        self.log_dir, self.description, self.chief = log_dir, description, chief
        self.phase_size = tf.Variable(0, dtype=tf.int64, trainable=False, name='phase_size')
        self.phase_kind = tf.Variable(0, dtype=tf.int64, trainable=False, name='phase_kind')
        self.run_seed = tf.Variable(run_seed, dtype=tf.int64, trainable=False, name='run_seed')
        self.sample_latents = tf.Variable(sample_latents, dtype=tf.float32, trainable=False, name='sample_latents')
        self.run_description = tf.Variable(json.dumps(description, default=str), dtype=tf.string, trainable=False,
                                           name='run_description')
        # '' when saved without the collapse guard (or before it existed): deepzine.training.health's JSON otherwise.
        self.health_state = tf.Variable('', dtype=tf.string, trainable=False, name=HEALTH_STATE)
        self.state = state
        # Adam itself, not its float16 loss-scaling wrapper: a run can then change mixed_precision when it resumes
        # (the loss scale is not kept; it re-adapts within a few steps).
        self._tracked = dict(
            generator=models.generator, generator_ema=models.generator_ema, discriminator=models.discriminator,
            generator_optimizer=_adam_of(models.generator_optimizer),
            discriminator_optimizer=_adam_of(models.discriminator_optimizer),
            rng=state.rng, phase_step=state.phase_step, global_step=state.global_step, phase_size=self.phase_size,
            phase_kind=self.phase_kind, run_seed=self.run_seed, sample_latents=self.sample_latents,
            run_description=self.run_description)
        self.checkpoint = tf.train.Checkpoint(**self._tracked, health_state=self.health_state)
        self.checkpoint.save_counter  # noqa: B018 (created now, so every checkpoint holds it, as those of format 2 do)
        self.saved = CheckpointList(checkpoint_directory(log_dir), writable=chief)
        self._run_config_written = False

    def save(self, phase, health_state='', protected=()):
        """Save at the current step of `phase` with the health state (JSON, or '' without the collapse guard); the
        `protected` checkpoints (prefixes) are never dropped. Returns the checkpoint prefix."""
        self.phase_size.assign(phase.size)
        self.phase_kind.assign(KIND_CODES[phase.kind])
        self.health_state.assign(health_state)
        global_step = int(self.state.global_step.numpy())
        # Workers other than the chief of a multi-machine run must take part in saving, into a throwaway folder.
        directory = self.saved.directory if self.chief else tempfile.mkdtemp(prefix='deepzine-worker-checkpoints-')
        prefix = checkpoint_prefix(directory, global_step)
        try:
            self.checkpoint.write(prefix)
        except Exception as error:
            if not is_out_of_space(error):
                raise
            remove_leftovers(self.log_dir)  # the half-written ckpt-N_temp; the earlier checkpoints are intact
            raise OutOfSpace(directory, 'a checkpoint') from None
        if not self.chief:
            shutil.rmtree(directory, ignore_errors=True)
            return prefix
        self.saved.add(prefix, protected)
        if not self._run_config_written:
            files.write_yaml(os.path.join(checkpoint_directory(self.log_dir), RUN_CONFIG_FILE), self.description)
            self._run_config_written = True
        return prefix

    def restore(self, prefix):
        """Load everything from `prefix`; returns (phase size, phase kind, step inside the phase).

        A checkpoint of format 2 has no health state: it restores with '' (as if saved without the guard).
        """
        import tensorflow as tf
        names = {name.split('/')[0] for name, _ in tf.train.list_variables(prefix)}
        self.health_state.assign('')
        checkpoint = self.checkpoint if HEALTH_STATE in names else tf.train.Checkpoint(**self._tracked)
        try:
            checkpoint.restore(prefix).assert_consumed()
        except AssertionError as error:
            raise ConfigError(f'{prefix}: does not match the networks of this config ({str(error).splitlines()[0][:200]}); '
                              'use a new log_dir or the run\'s own config') from None
        self.run_description.assign(json.dumps(self.description, default=str))  # the new non-shape keys from now on
        kind = KIND_NAMES[int(self.phase_kind.numpy())]
        return int(self.phase_size.numpy()), kind, int(self.state.phase_step.numpy())

    def restored_health_state(self):
        """The health state JSON of the checkpoint last restored ('' when it holds none)."""
        return self.health_state.numpy().decode('utf-8')

    def import_original_checkpoint(self, folder):
        """Start from an ORIGINAL DeepZine TF1 checkpoint: its generator (also as the EMA copy) and discriminator."""
        from deepzine.model.legacy import load_legacy_networks
        _, generator, discriminator = load_legacy_networks(folder)
        for source, targets in ((generator, (self.checkpoint.generator, self.checkpoint.generator_ema)),
                                (discriminator, (self.checkpoint.discriminator,))):
            for target in targets:
                for source_weight, target_weight in zip(source.weights, target.weights):
                    target_weight.assign(source_weight)

    def import_model_folder(self, folder, architecture):
        """Start from a per-resolution model folder (its generator, EMA and discriminator): growing or fine-tuning."""
        import tensorflow as tf
        from deepzine.model.model_folder import CHECKPOINT_PREFIX, read_model_json
        saved = read_model_json(folder)
        missing = {'generator', 'generator_ema', 'discriminator'} - set(saved.get('networks', []))
        if missing:
            raise ConfigError(f'{folder}: saved without {", ".join(sorted(missing))}, so training cannot continue from it')
        if Architecture(**saved['architecture']) != architecture:
            raise ConfigError(f'{folder}: its networks were built with other model parameters than this config; '
                              f'use the config of the run that made it (stored in {folder}/model.json)')
        networks = tf.train.Checkpoint(generator=self.checkpoint.generator, generator_ema=self.checkpoint.generator_ema,
                                       discriminator=self.checkpoint.discriminator)
        networks.read(os.path.join(folder, CHECKPOINT_PREFIX)).expect_partial().assert_existing_objects_matched()
