"""The checkpoint keeper: the one object of a training run that saves and restores its checkpoints and knows which of
them are healthy.

Everything the loop and the collapse guard do with checkpoints goes through
here. A checkpoint saved healthy (nothing looked wrong when it was taken) is
protected from deletion while it is among the newest HEALTHY_CHECKPOINTS_KEPT
healthy ones: those are where a roll-back may go. So is the healthy checkpoint
the current phase started from, where a phase that keeps going wrong starts
over. What the guard must remember (its roll-backs, its learning-rate factor,
the loss history of the phase) travels in the same checkpoint as an opaque
JSON value.
"""

import json
import os
import shutil
import tempfile

import tensorflow as tf

from deepzine import files
from deepzine.files import OutOfSpace, is_out_of_space
from deepzine.parameters import ConfigError
from deepzine.training import checkpoints
from deepzine.training.checkpoints import (HEALTH_STATE, HEALTHY_CHECKPOINTS_KEPT, KIND_CODES, KIND_NAMES,
                                           CheckpointList, HealthRecord, checkpoint_prefix, health_state_text,
                                           parse_health_state)


def _adam_of(optimizer):
    return getattr(optimizer, 'inner_optimizer', optimizer)


class CheckpointKeeper:
    """The checkpoints of one run: what they hold, the list of those kept, and which of them are healthy."""

    def __init__(self, log_dir, models, state, description, sample_latents, run_seed, chief=True):
        self.log_dir, self.description, self.chief, self.state = log_dir, description, chief, state
        self.phase_size = tf.Variable(0, dtype=tf.int64, trainable=False, name='phase_size')
        self.phase_kind = tf.Variable(0, dtype=tf.int64, trainable=False, name='phase_kind')
        self.run_seed = tf.Variable(run_seed, dtype=tf.int64, trainable=False, name='run_seed')
        self.sample_latents = tf.Variable(sample_latents, dtype=tf.float32, trainable=False, name='sample_latents')
        self.run_description = tf.Variable(json.dumps(description, default=str), dtype=tf.string, trainable=False,
                                           name='run_description')
        self.health_state = tf.Variable('', dtype=tf.string, trainable=False, name=HEALTH_STATE)
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
        self.saved = CheckpointList(checkpoints.checkpoint_directory(log_dir), writable=chief)
        self.healthy_steps = []  # global steps of the kept healthy checkpoints, oldest first
        self.phase_start_step = None  # the healthy checkpoint the current phase started from
        self._phase = None  # (size, kind) of the last checkpoint saved or restored
        self._run_config_written = False

    @property
    def latest(self):
        return self.saved.latest

    def global_step(self):
        return int(self.state.global_step.numpy())

    def find(self, global_step):
        """The prefix of the checkpoint saved at `global_step`, or None when it is no longer kept."""
        return self.saved.find(global_step) if global_step is not None else None

    def save(self, phase, healthy=True, guard_state=None):
        """Save at the current step of `phase`; `healthy` marks it as a roll-back target. Returns its prefix."""
        global_step = self.global_step()
        if (phase.size, phase.kind) != self._phase:
            earlier = [step for step in self.healthy_steps if step < global_step]
            start = earlier[-1] if earlier else None
            if start is None and healthy and int(self.state.phase_step.numpy()) == 0:
                start = global_step  # a run's first checkpoint, before its first step: its first phase starts here
            self.phase_start_step, self._phase = start, (phase.size, phase.kind)
        if healthy:
            earlier = [step for step in self.healthy_steps if step != global_step]
            self.healthy_steps = earlier[-(HEALTHY_CHECKPOINTS_KEPT - 1):] + [global_step]
        self.phase_size.assign(phase.size)
        self.phase_kind.assign(KIND_CODES[phase.kind])
        self.health_state.assign(health_state_text(HealthRecord(self.healthy_steps, self.phase_start_step,
                                                                guard_state)))
        # Workers other than the chief of a multi-machine run must take part in saving, into a throwaway folder.
        directory = self.saved.directory if self.chief else tempfile.mkdtemp(prefix='deepzine-worker-checkpoints-')
        prefix = checkpoint_prefix(directory, global_step)
        try:
            self.checkpoint.write(prefix)
        except Exception as error:
            if not is_out_of_space(error):
                raise
            checkpoints.remove_leftovers(self.log_dir)  # the half-written ckpt-N_temp; the earlier ones are intact
            raise OutOfSpace(directory, 'a checkpoint') from None
        if not self.chief:
            shutil.rmtree(directory, ignore_errors=True)
            return prefix
        kept = self.healthy_steps + [self.phase_start_step] * (self.phase_start_step is not None)
        self.saved.add(prefix, [checkpoint_prefix(self.saved.directory, step) for step in kept])
        if not self._run_config_written:
            files.write_yaml(os.path.join(self.saved.directory, checkpoints.RUN_CONFIG_FILE), self.description)
            self._run_config_written = True
        return prefix

    def resume(self, prefix):
        """Continue the run from `prefix` (chosen by the plan: the newest checkpoint, or its newest healthy one), with
        its healthy steps; newer checkpoints belong to a path abandoned. Returns (phase size, kind, step)."""
        position, record = self._restore(prefix)
        self.healthy_steps, self.phase_start_step = record.healthy_steps, record.phase_start_step
        self.saved.discard_after(prefix)
        return position

    def roll_back_to(self, prefix):
        """Go back to the healthy checkpoint `prefix`, forgetting those saved after it; ((phase size, kind, step),
        the guard state saved in it)."""
        position, record = self._restore(prefix)
        target = self.global_step_of(prefix)
        self.healthy_steps = [step for step in self.healthy_steps if step <= target]
        self.phase_start_step = record.phase_start_step
        self.saved.discard_after(prefix)
        return position, record.guard

    @staticmethod
    def global_step_of(prefix):
        return int(os.path.basename(prefix).rsplit('-', 1)[1])

    def _restore(self, prefix):
        """Load everything from `prefix`: ((phase size, kind, step), its HealthRecord)."""
        names = {name.split('/')[0] for name, _ in tf.train.list_variables(prefix)}
        self.health_state.assign('')
        checkpoint = self.checkpoint if HEALTH_STATE in names else tf.train.Checkpoint(**self._tracked)
        try:
            checkpoint.restore(prefix).assert_consumed()
        except AssertionError as error:
            raise ConfigError(f'{prefix}: does not match the networks of this config ({str(error).splitlines()[0][:200]}); '
                              'use a new log_dir or the run\'s own config') from None
        self.run_description.assign(json.dumps(self.description, default=str))  # the new non-shape keys from now on
        record = parse_health_state(self.health_state.numpy().decode('utf-8'), self.global_step())
        position = int(self.phase_size.numpy()), KIND_NAMES[int(self.phase_kind.numpy())], int(self.state.phase_step.numpy())
        self._phase = position[:2]
        return position, record
