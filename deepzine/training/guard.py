"""The collapse guard: training that heals itself, on top of the alarms of deepzine.training.health.

On an alarm (a loss, a generated pixel or a weight NaN or infinite, a WGAN-GP
limit crossed, a loss diverging from its recent level, samples collapsing) the
run goes back to the newest healthy checkpoint, multiplies the learning rate of
both networks by `collapse_learning_rate_factor` for the rest of that phase,
draws a new data order and carries on. After `collapse_retries` roll-backs in
one phase it stops in one line naming that checkpoint and what to change.

Every checkpoint holds the health state (the HealthMonitor's JSON with the
GuardState). A checkpoint is healthy when the guard's `last_healthy_step` is its
own global step, set just before saving when nothing looked wrong; the newest
three healthy ones are never deleted. Samples (from the generator's moving
average, which lags) that collapse again before a healthy checkpoint was saved
since the last roll-back show the trouble predates the checkpoint it went back
to: the next roll-back goes to the healthy one before it. Right after a
roll-back the restored state is saved again with the new roll-back count and
learning rate, so a Ctrl-C or SIGKILL at any moment keeps them. A resume whose
latest checkpoint is unhealthy continues from the newest healthy one, with the
latest's guard state. A run without a checkpoint saves its starting state
first: trouble in the first interval then has a healthy checkpoint to go back
to.
"""

import logging
import os

from deepzine.parameters import ConfigError
from deepzine.training import schedule
from deepzine.training.checkpoints import checkpoint_prefix
from deepzine.training.health import GuardState, HealthMonitor

logger = logging.getLogger(__name__)


class TrainingDiverged(ConfigError):
    """Training went wrong past repair (a NaN without the guard, or the guard out of retries): one line, the last
    good checkpoint kept."""


def _describe_position(size, kind, step):
    return f'{size}x{size} {kind} step {step}'


class CollapseGuard:
    """Watches one run for the trainer and rolls it back: see the module docstring.

    `checkpoint` is the run's checkpoints.RunCheckpoint, `models` its
    step.TrainingModels; the plan gives the learning rate, the retries and the
    factor, `channels` the pages' channels.
    """

    def __init__(self, plan, channels, checkpoint, models):
        self.plan, self.channels, self.checkpoint, self.models = plan, channels, checkpoint, models
        self.monitor = HealthMonitor(channels, plan.gradient_penalty_weight)

    @property
    def state(self):
        return self.monitor.guard

    @property
    def learning_rate(self):
        return self.plan.learning_rate * self.state.learning_rate_factor

    def _apply_learning_rate(self):
        for optimizer in (self.models.generator_optimizer, self.models.discriminator_optimizer):
            optimizer.learning_rate = self.learning_rate

    def _continue_from(self, text, guard=None):
        """The monitor of a restored checkpoint's health state ('': saved without the guard); the run's own
        gradient_penalty_weight, which a resume may change, sets the limits."""
        if text:
            self.monitor = HealthMonitor.from_state(text, guard=guard)
            self.monitor.gradient_penalty_weight = float(self.plan.gradient_penalty_weight)
        else:
            self.monitor = HealthMonitor(self.channels, self.plan.gradient_penalty_weight, guard or GuardState())

    def _global_step(self):
        return int(self.checkpoint.state.global_step.numpy())

    def _healthy_prefix(self, step=None):
        """The healthy checkpoint of `step` (default: the newest) if it is still on disk, else None."""
        step = self.state.last_healthy_step if step is None else step
        return self.checkpoint.saved.find(step) if step is not None else None

    # --- the trainer's calls ---------------------------------------------------------------------------------

    def resume(self, latest):
        """Restore `latest`, or the newest healthy checkpoint when `latest` is not healthy; (prefix, position)."""
        position = self.checkpoint.restore(latest)
        text = self.checkpoint.restored_health_state()
        self._continue_from(text)
        if not text:  # saved without the guard: its weights were finite, all that was checked then
            self.state.mark_healthy(self._global_step())
        healthy = self._healthy_prefix()
        if healthy and healthy != latest:
            reason = self.monitor.unhealthy_reason() or 'not healthy'
            live = self.state
            position = self.checkpoint.restore(healthy)
            self._continue_from(self.checkpoint.restored_health_state(), guard=live)
            logger.warning('%s was saved unhealthy (%s): resuming from the newest healthy checkpoint %s instead',
                           os.path.basename(latest), reason, os.path.basename(healthy))
            latest = healthy
        self._apply_learning_rate()
        return latest, position

    def begin_phase(self, phase):
        """A phase starts or continues: its history (kept on a resume), and the learning rate (configured again in a
        phase training had not reached before)."""
        self.monitor.begin_phase(phase)
        self._apply_learning_rate()

    def data_order_entropy(self):
        """Added to the data order's seed: a roll-back must not replay the batches that led to the trouble."""
        return [self.state.rollbacks_in_phase] if self.state.rollbacks_in_phase else []

    def observe_losses(self, phase, step, metrics, steps):
        """An Alarm or None for one loss line; an interval without steps says nothing."""
        return self.monitor.observe_losses(phase, step, metrics) if steps else None

    def observe_samples(self, phase, step, generated, real):
        return self.monitor.observe_samples(phase, step, generated, real)

    def observe_checkpoint(self, phase, step, non_finite):
        """An Alarm when `non_finite` names anything (a loss since the last line, a network weight), else None."""
        return self.monitor.observe_checkpoint(phase, step, non_finite)

    def scalars(self):
        """The health scalars for the log line and TensorBoard, with the learning-rate factor."""
        return {**self.monitor.scalars(), 'health/learning_rate_factor': self.state.learning_rate_factor}

    def save(self, phase):
        """Checkpoint now, marked healthy when the monitor saw nothing wrong; the newest healthy one is kept."""
        if self.monitor.is_healthy():
            self.state.mark_healthy(self._global_step())
        protected = [checkpoint_prefix(self.checkpoint.saved.directory, step) for step in self.state.healthy_steps]
        return self.checkpoint.save(phase, self.monitor.state(), protected)

    def roll_back(self, alarm, phase):
        """Back to a healthy checkpoint at a lower learning rate; (phase index, step) to continue from.

        TrainingDiverged when no healthy checkpoint is kept, or once the phase
        has used its `collapse_retries`: the run then stops at the healthy
        checkpoint with full retries, for the next run with other settings.
        """
        plan, guard = self.plan, self.state
        newest = self._healthy_prefix()
        target = self._healthy_prefix(guard.rollback_target(lagging=alarm.rule == 'collapse')) or newest
        where = f'{alarm.phase_name} step {alarm.step}'
        if target is None:
            raise TrainingDiverged(f'training diverged at {where}: {alarm}. No healthy checkpoint is kept to roll back '
                                   f'to: lower learning_rate (now {plan.learning_rate:g}) and start again')
        if guard.retries_left(plan.collapse_retries) == 0:
            last_rate = self.learning_rate
            guard.forgive()
            guard.went_back_to(self._step_of(target))
            restored, _ = self._restore(target)
            raise TrainingDiverged(
                f'training kept going wrong at {where} (learning rate {last_rate:g}, no roll-back left in this phase: '
                f'collapse_retries={plan.collapse_retries}): {alarm}. Stopped at the healthy checkpoint '
                f'{os.path.basename(target)} ({restored}), which running again continues from with fresh retries: '
                f'first lower learning_rate (now {plan.learning_rate:g}) or raise the batch size (now '
                f'{phase.batch_size} at {phase.size}x{phase.size})')
        guard.record_rollback(plan.collapse_learning_rate_factor, self._step_of(target))
        restored, position = self._restore(target)
        if target != newest:
            restored += f'; the newer healthy {os.path.basename(newest)} went wrong again'
        logger.warning('rolled back at %s to %s (%s): %s; learning rate now %g for the rest of this phase '
                       '(roll-back %d of %d)', where, os.path.basename(target), restored, alarm, self.learning_rate,
                       guard.rollbacks_in_phase, plan.collapse_retries)
        return position

    @staticmethod
    def _step_of(prefix):
        return int(os.path.basename(prefix).rsplit('-', 1)[1])

    def _restore(self, target):
        """Restore `target` keeping the live GuardState, forget the abandoned checkpoints after it, and save it again
        with that state (so a kill from now on keeps the roll-back). (its position in words, (phase index, step))."""
        live = self.state
        size, kind, step = self.checkpoint.restore(target)
        self._continue_from(self.checkpoint.restored_health_state(), guard=live)
        self.checkpoint.saved.discard_after(target)
        self._apply_learning_rate()
        self.save(schedule.find_phase(self.plan.phases, size, kind))
        starting_size = self.plan.phases[self.plan.first_phase_index].size
        return (_describe_position(size, kind, step),
                schedule.resume_position(self.plan.phases, starting_size, size, kind, step))
