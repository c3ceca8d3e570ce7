"""Run checkpoints in `log_dir/checkpoints/`: everything needed to resume a run exactly, and the check that it is the same run.

A checkpoint (`tf.train.CheckpointManager`, TF2 object-based) holds the three
networks, both optimizers, the RNG state, the position (phase size, kind, step
inside the phase), the global step, the run's seed, the fixed sample latents and
the run description (format version, resolved config, data channels) as a
string variable. `run_config.yaml` beside it repeats the description in YAML,
so `validate()` can refuse a mismatched config before anything is written, and
a user can copy the saved settings back.
"""

import json
import logging
import os
import shutil
import tempfile

import yaml

from deepzine.files import write_yaml
from deepzine.parameter_groups import ModelParameters
from deepzine.parameters import ConfigError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CHECKPOINT_FOLDER = 'checkpoints'
RUN_CONFIG_FILE = 'run_config.yaml'
CHECKPOINTS_TO_KEEP = 3
SHAPE_KEYS = tuple(ModelParameters.declared()) + ('channels',)
KIND_CODES = {'stable': 0, 'fade': 1}


def checkpoint_directory(log_dir):
    return os.path.join(log_dir, CHECKPOINT_FOLDER)


def run_description(config, channels):
    """What identifies a run: the format version, the resolved config and the data's channel count."""
    return {'format_version': FORMAT_VERSION, 'channels': channels,
            'config': {key: value for key, value in config.items()}}


def read_run_config(log_dir):
    """The description stored beside the checkpoints as YAML, or None when the run has none yet."""
    path = os.path.join(checkpoint_directory(log_dir), RUN_CONFIG_FILE)
    try:
        with open(path, encoding='utf-8') as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        return None
    except yaml.YAMLError as error:
        raise ConfigError(f'{path}: not valid YAML ({error}); restore it or use a new log_dir') from None


def shape_differences(saved, config, channels=None):
    """['max_filter: saved 128, now 64', ...] for the shape-defining keys that differ (channels only when known)."""
    saved_values = dict(saved.get('config', {}), channels=saved.get('channels'))
    current = dict(config, channels=channels)
    keys = SHAPE_KEYS if channels is not None else SHAPE_KEYS[:-1]
    return [f'{key}: saved {saved_values.get(key)!r}, now {current.get(key)!r}'
            for key in keys if saved_values.get(key) != current.get(key)]


def check_same_run(saved, config, log_dir, channels=None):
    """ConfigError naming every differing shape key, unless the config can continue the run saved in log_dir."""
    if saved is None:
        return
    if saved.get('format_version', 0) > FORMAT_VERSION:
        raise ConfigError(f'log_dir={log_dir}: its checkpoints were written by a newer DeepZine (format '
                          f'{saved["format_version"]}, this one reads {FORMAT_VERSION}); update DeepZine')
    differences = shape_differences(saved, config, channels)
    if differences:
        where = os.path.join(checkpoint_directory(log_dir), RUN_CONFIG_FILE)
        raise ConfigError(f'log_dir={log_dir} holds a run with other model parameters ({"; ".join(differences)}): '
                          f'use a new log_dir, or set these keys back to the saved values (the run\'s config is {where})')


def read_checkpoint_description(prefix):
    """The run description stored inside a checkpoint, read without building any network."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(prefix)
    return json.loads(reader.get_tensor('run_description/.ATTRIBUTES/VARIABLE_VALUE').decode('utf-8'))


def latest_checkpoint(log_dir):
    import tensorflow as tf
    return tf.train.latest_checkpoint(checkpoint_directory(log_dir))


def _adam_of(optimizer):
    return getattr(optimizer, 'inner_optimizer', optimizer)


class RunCheckpoint:
    """The checkpoint of one run: its tracked objects, its manager, and the position it records."""

    def __init__(self, log_dir, models, state, description, sample_latents, run_seed, chief=True):
        import tensorflow as tf
        self.log_dir, self.description, self.chief = log_dir, description, chief
        self.phase_size = tf.Variable(0, dtype=tf.int64, trainable=False, name='phase_size')
        self.phase_kind = tf.Variable(0, dtype=tf.int64, trainable=False, name='phase_kind')
        self.run_seed = tf.Variable(run_seed, dtype=tf.int64, trainable=False, name='run_seed')
        self.sample_latents = tf.Variable(sample_latents, dtype=tf.float32, trainable=False, name='sample_latents')
        self.run_description = tf.Variable(json.dumps(description, default=str), dtype=tf.string, trainable=False,
                                           name='run_description')
        self.state = state
        # Adam itself, not its float16 loss-scaling wrapper: a run can then change mixed_precision when it resumes
        # (the loss scale is not kept; it re-adapts within a few steps).
        self.checkpoint = tf.train.Checkpoint(
            generator=models.generator, generator_ema=models.generator_ema, discriminator=models.discriminator,
            generator_optimizer=_adam_of(models.generator_optimizer),
            discriminator_optimizer=_adam_of(models.discriminator_optimizer),
            rng=state.rng, phase_step=state.phase_step, global_step=state.global_step, phase_size=self.phase_size,
            phase_kind=self.phase_kind, run_seed=self.run_seed, sample_latents=self.sample_latents,
            run_description=self.run_description)
        # Workers other than the chief of a multi-machine run must take part in saving, into a throwaway folder.
        directory = checkpoint_directory(log_dir) if chief else tempfile.mkdtemp(prefix='deepzine-worker-checkpoints-')
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=CHECKPOINTS_TO_KEEP,
                                                  checkpoint_name='ckpt')
        self._run_config_written = False

    def save(self, phase):
        """Save at the current step of `phase`; returns the checkpoint prefix."""
        self.phase_size.assign(phase.size)
        self.phase_kind.assign(KIND_CODES[phase.kind])
        prefix = self.manager.save(checkpoint_number=int(self.state.global_step.numpy()))
        if self.chief and not self._run_config_written:
            write_yaml(os.path.join(checkpoint_directory(self.log_dir), RUN_CONFIG_FILE), self.description)
            self._run_config_written = True
        if not self.chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)
        return prefix

    def restore(self, prefix):
        """Load everything from `prefix`; returns (phase size, phase kind, step inside the phase)."""
        try:
            self.checkpoint.restore(prefix).assert_consumed()
        except AssertionError as error:
            raise ConfigError(f'{prefix}: does not match the networks of this config ({str(error).splitlines()[0][:200]}); '
                              'use a new log_dir or the run\'s own config') from None
        self.run_description.assign(json.dumps(self.description, default=str))  # the new non-shape keys from now on
        kind = {code: name for name, code in KIND_CODES.items()}[int(self.phase_kind.numpy())]
        return int(self.phase_size.numpy()), kind, int(self.state.phase_step.numpy())

    def import_model_folder(self, folder, architecture):
        """Start from a per-resolution model folder (its generator, EMA and discriminator), for gan_starting_size > 4."""
        import tensorflow as tf
        from deepzine.model.model_folder import CHECKPOINT_PREFIX, read_model_json
        from deepzine.model.architecture import Architecture
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
