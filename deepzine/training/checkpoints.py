"""Run checkpoints in `log_dir/checkpoints/` as files: what each holds, reading it without building a network, and the
check that a config continues the run they belong to. The checkpoint keeper (deepzine.training.keeper) writes them.

A checkpoint (`tf.train.Checkpoint`, TF2 object-based) holds the three
networks, both optimizers, the RNG state, the position (phase size, kind, step
inside the phase), the global step, the run's seed, the fixed sample latents,
the run description (format version, resolved config, data channels,
architecture) as a string variable, and the health state as another: JSON of
the global steps of the run's healthy checkpoints so far (its own among them
when it is healthy) and the collapse guard's state. `run_config.yaml` beside
them repeats the description in YAML for the user to read or copy back.

Older formats are read here and nowhere else: format 1 described a run by its
config keys, format 2 had no health state, format 3 kept the healthy steps
inside the guard's state.

`CheckpointList` keeps the newest few checkpoints and, however old, the
protected ones (the healthy ones a roll-back may go to); a roll-back forgets
the checkpoints of the abandoned path.

TensorFlow is imported where a checkpoint is read: the dry-run and the params command import this module.
"""

import dataclasses
import glob
import json
import logging
import os
import shutil

import yaml

from deepzine import files
from deepzine.model.architecture import Architecture
from deepzine.parameter_groups import ModelParameters
from deepzine.parameters import ConfigError
from deepzine.sizes import sizes_between

logger = logging.getLogger(__name__)

FORMAT_VERSION = 4  # 4: the health state lists the healthy steps; 3: health state; 2: Architecture; 1: config keys
CHECKPOINT_FOLDER = 'checkpoints'
RUN_CONFIG_FILE = 'run_config.yaml'
INDEX_FILE = 'checkpoint'  # TensorFlow's name: tf.train.latest_checkpoint reads it
CHECKPOINTS_TO_KEEP = 3  # the newest ones; the protected (healthy) ones come on top
HEALTHY_CHECKPOINTS_KEPT = 3  # roll-back targets: the newest healthy checkpoint and the two before it
HEALTH_STATE = 'health_state'
HEALTH_FORMAT_VERSION = 2
SHAPE_KEYS = tuple(ModelParameters.declared()) + ('channels',)
KIND_CODES = {'stable': 0, 'fade': 1}
KIND_NAMES = {code: name for name, code in KIND_CODES.items()}


def checkpoint_directory(log_dir):
    return os.path.join(log_dir, CHECKPOINT_FOLDER)


def run_description(settings, channels, architecture, collections=None):
    """What identifies a run: the format version, the train stage's keys, the data's channels and collections (their
    names, in the order of the networks' collection numbers) and the networks."""
    return {'format_version': FORMAT_VERSION, 'channels': channels, 'config': dict(settings),
            'architecture': json.loads(architecture.to_json()), 'collections': list(collections or ())}


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
                         'normalize_latent', 'minibatch_group_size', 'rgb_sizes', 'collection_count')
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
        if name.endswith(files.TENSORFLOW_TEMPORARY_SUFFIX) and os.path.isdir(os.path.join(directory, name)):
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
    files.remove_leftovers(directory)
    files.remove_leftovers(log_dir)


def _reader(prefix):
    import tensorflow as tf
    return tf.train.load_checkpoint(prefix)


def _tensor(reader, name):
    return reader.get_tensor(f'{name}/.ATTRIBUTES/VARIABLE_VALUE')


def read_checkpoint_description(prefix):
    """The run description stored inside a checkpoint, read without building any network."""
    return json.loads(_tensor(_reader(prefix), 'run_description').decode('utf-8'))


def read_checkpoint_position(prefix):
    """(phase size, phase kind, step inside the phase, global step) stored in a checkpoint, read without building
    any network."""
    reader = _reader(prefix)
    size, kind, step, global_step = (int(_tensor(reader, name)) for name in
                                     ('phase_size', 'phase_kind', 'phase_step', 'global_step'))
    return size, KIND_NAMES[kind], step, global_step


@dataclasses.dataclass
class HealthRecord:
    """What a checkpoint says of its run's health: the global steps of its healthy checkpoints (oldest first), the
    healthy checkpoint its phase started from (None: not known), and the collapse guard's own state (None: none)."""
    healthy_steps: list
    phase_start_step: int = None
    guard: dict = None


def health_state_text(record):
    """The health state a checkpoint stores: its HealthRecord as JSON."""
    return json.dumps({'format_version': HEALTH_FORMAT_VERSION, 'healthy_steps': [int(step) for step in record.healthy_steps],
                       'phase_start_step': record.phase_start_step, 'guard': record.guard}, allow_nan=False)


def parse_health_state(text, global_step):
    """The HealthRecord of a checkpoint's health state and its own global step.

    '' (format 2, or saved without the guard before format 4): the checkpoint
    counts as healthy, since its weights were finite, all that was checked then.
    Format 3 kept the healthy steps inside the guard's state.
    """
    if not text:
        return HealthRecord([int(global_step)])
    saved = json.loads(text)
    if saved.get('format_version') == HEALTH_FORMAT_VERSION:
        return HealthRecord(list(saved['healthy_steps']), saved.get('phase_start_step'), saved['guard'])
    old = saved['guard']  # format 3: deepzine.training.health's state of format 1, with the guard inside
    healthy = list(old.get('healthy_steps', []))
    if old.get('last_healthy_step') is not None and old['last_healthy_step'] not in healthy:
        healthy.append(old['last_healthy_step'])
    guard = {name: old[name] for name in ('phase_index', 'rollbacks_in_phase', 'learning_rate_factor', 'rollback_step')
             if name in old}
    return HealthRecord(healthy, None, {'guard': guard, 'monitor': {'format_version': 1, 'phase': saved.get('phase')}})


def read_checkpoint_health(prefix):
    """The HealthRecord stored in a checkpoint, read without building any network."""
    reader = _reader(prefix)
    text = _tensor(reader, HEALTH_STATE).decode('utf-8') if reader.has_tensor(
        f'{HEALTH_STATE}/.ATTRIBUTES/VARIABLE_VALUE') else ''
    return parse_health_state(text, int(_tensor(reader, 'global_step')))


def latest_checkpoint(log_dir):
    """The newest checkpoint the run's index names, or None."""
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
