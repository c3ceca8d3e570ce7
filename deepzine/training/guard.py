"""The collapse guard: training that heals itself, on top of the alarms of deepzine.training.health. A part of the
training loop; `guard_for(plan, keeper)` gives the loop a CollapseGuard, or with collapse_guard off an Unguarded part
that stops on the first NaN and does nothing else.

On an alarm (a loss, a generated pixel or a weight NaN or infinite, a WGAN-GP
limit crossed, a loss diverging from its recent level, samples collapsing or
unlike the real pages) the run goes back to the newest healthy checkpoint
(from the second roll-back in a phase on, to the healthy checkpoint the phase
started from: trouble that comes back grew from earlier in the phase; and so
does the first roll-back of a run whose configured rate is above the automatic
one, since the whole phase was trained at the rate that went wrong),
multiplies the learning rate of both networks by `collapse_learning_rate_factor`,
draws a new data order and carries on. A roll-back never leaves the rate above
the automatic one (`learning_rate: null`, Karras et al.'s 0.001 for these
networks): a configured rate above it that went wrong falls back to it at
once. Stepping down from such a rate factor by factor trains a phase or two at
rates that damage the networks without any alarm (grey, blank pages that the
next fade-in cannot recover from, bench/README.md "Collapse guard on real
pages"). The lowered rate carries into the next phases: a fade-in that ended
without a roll-back gives back one factor towards the configured rate (the
automatic rate, if the configured one went wrong above it) for the stable phase
after it, so the rate recovers only while the run stays healthy, and never into
a fade-in, where new layers shake the networks most (a rate that was too high at
one size is usually too high at the next). After `collapse_retries` roll-backs in one
phase it stops in one line naming that checkpoint and what to change.

The checkpoint keeper (deepzine.training.keeper) marks a checkpoint healthy
when the guard saw nothing wrong as it was saved. Samples (from the generator's
moving average, which lags) that collapse again before a healthy checkpoint was
saved since the last roll-back show the trouble predates the checkpoint it went
back to: the next roll-back goes to the healthy one before it. Right after a
roll-back the restored state is saved again with the new roll-back count and
learning rate, so a Ctrl-C or SIGKILL at any moment keeps them. Which
checkpoint a resume starts from is decided with the plan
(deepzine.training.starting_point).
"""

import dataclasses
import logging
import math
import os

from deepzine.errors import TrainingDiverged
from deepzine.test_hooks import pause_at
from deepzine.training import schedule
from deepzine.training.health import HealthMonitor

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class GuardState:
    """What the guard must remember across roll-backs, resumes and phases.

    `phase_index` is the furthest phase reached: the counts restart only when
    training passes it, so rolling back into an earlier phase cannot reset the
    retries of the phase that went wrong.
    """
    phase_index: int = -1
    rollbacks_in_phase: int = 0
    learning_rate_factor: float = 1.0
    rollback_step: int | None = None  # global step of the checkpoint the latest roll-back went to

    def enter_phase(self, phase_index, learning_rate_decay, fading, ceiling=1.0):
        """Training reaches `phase_index` (a fade-in when `fading`); past the furthest phase so far the roll-backs count
        from 0 again, and entering a stable phase after a fade-in that needed none, a lowered learning rate recovers
        one step (1 / learning_rate_decay), up to `ceiling` (the highest factor a roll-back leaves, see
        record_rollback)."""
        if phase_index > self.phase_index:
            if self.rollbacks_in_phase == 0 and not fading and self.phase_index >= 0 and self.learning_rate_factor < 1:
                self.learning_rate_factor = min(ceiling, self.learning_rate_factor / learning_rate_decay)
            self.phase_index, self.rollbacks_in_phase = phase_index, 0

    def record_rollback(self, learning_rate_decay, target_step, ceiling=1.0):
        """One more roll-back in this phase, to the checkpoint of `target_step`; the learning rate is multiplied by
        `learning_rate_decay` (e.g. 0.25) and is then at most `ceiling` times the configured rate (the automatic rate
        over the configured one, when that is less than 1)."""
        self.rollbacks_in_phase += 1
        self.learning_rate_factor = min(self.learning_rate_factor * learning_rate_decay, ceiling)
        self.rollback_step = int(target_step)

    def restarts_phase(self, ceiling=1.0):
        """Whether the next roll-back goes back to the checkpoint the phase started from: the phase went wrong before
        (trouble that comes back grew from earlier in it), or it was trained all along at a configured rate above the
        automatic one (a factor above `ceiling`), which has now gone wrong."""
        return self.rollbacks_in_phase > 0 or self.learning_rate_factor > ceiling

    def forgive(self):
        """Full retries and the configured learning rate again in this phase: after training stopped for want of
        retries, the user's next run (a lower learning_rate, a larger batch) deserves a fresh start."""
        self.rollbacks_in_phase, self.learning_rate_factor, self.rollback_step = 0, 1.0, None

    def retries_left(self, retries):
        return max(0, retries - self.rollbacks_in_phase)


def rollback_target_step(healthy_steps, previous_rollback_step, lagging):
    """The global step of the healthy checkpoint to roll back to (None: none is kept): the newest of `healthy_steps`
    (oldest first), or, for an alarm of a `lagging` signal (the samples, from the generator's moving average), the
    one before the previous roll-back's target when nothing healthy was saved since that roll-back."""
    newest = healthy_steps[-1] if healthy_steps else None
    if lagging and previous_rollback_step is not None and newest == previous_rollback_step:
        older = [step for step in healthy_steps if step < previous_rollback_step]
        if older:
            return older[-1]
    return newest


class CollapseGuard:
    """Watches one run for the training loop and rolls it back: see the module docstring."""

    def __init__(self, plan, keeper):
        self.plan, self.keeper = plan, keeper
        self.monitor = HealthMonitor(plan.data.channels, plan.gradient_penalty_weight)
        self.state = GuardState()
        # The highest learning-rate factor a roll-back leaves: never above the automatic rate.
        self.ceiling = min(1.0, plan.automatic_learning_rate / plan.learning_rate)

    @property
    def learning_rate_factor(self):
        return self.state.learning_rate_factor

    def saved_state(self):
        """What a checkpoint keeps of the guard (plain JSON values)."""
        return {'guard': dataclasses.asdict(self.state), 'monitor': self.monitor.state()}

    def continue_from(self, saved):
        """Take up a `saved_state()` (None: a checkpoint saved without the guard, a fresh start)."""
        self.state = GuardState(**saved['guard']) if saved else GuardState()
        self.monitor.continue_from(saved and saved['monitor'])

    def begin_phase(self, phase):
        """A phase starts or continues: its history (kept on a resume), its retries (counted again in a phase training
        had not reached before)."""
        self.monitor.begin_phase(phase)
        self.state.enter_phase(phase.index, self.plan.collapse_learning_rate_factor, phase.fading, self.ceiling)

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

    def is_healthy(self):
        return self.monitor.is_healthy()

    def scalars(self):
        """The health scalars for the log line and TensorBoard, with the learning-rate factor."""
        return {**self.monitor.scalars(), 'health/learning_rate_factor': self.state.learning_rate_factor}

    def roll_back(self, alarm, phase):
        """Back to a healthy checkpoint at a lower learning rate; (phase index, step) to continue from.

        TrainingDiverged when no healthy checkpoint is kept, or once the phase
        has used its `collapse_retries`: the run then stops at the healthy
        checkpoint with full retries, for the next run with other settings.
        """
        plan, state, keeper = self.plan, self.state, self.keeper
        newest = keeper.find(keeper.healthy_steps[-1]) if keeper.healthy_steps else None
        target = keeper.find(rollback_target_step(keeper.healthy_steps, state.rollback_step,
                                                  lagging=alarm.rule == 'collapse')) or newest
        if state.restarts_phase(self.ceiling) and keeper.find(keeper.phase_start_step):
            target = keeper.find(keeper.phase_start_step)
        where = f'{alarm.phase_name} step {alarm.step}'
        if target is None:
            raise TrainingDiverged(f'training diverged at {where}: {alarm}. No healthy checkpoint is kept to roll back '
                                   f'to: lower learning_rate (now {plan.learning_rate:g}) and start again')
        if state.retries_left(plan.collapse_retries) == 0:
            last_rate = plan.learning_rate * state.learning_rate_factor
            state.forgive()
            restored, _ = self._go_back_to(target)
            raise TrainingDiverged(
                f'training kept going wrong at {where} (learning rate {last_rate:g}, no roll-back left in this phase: '
                f'collapse_retries={plan.collapse_retries}): {alarm}. Stopped at the healthy checkpoint '
                f'{os.path.basename(target)} ({restored}), which running again continues from with fresh retries: '
                f'first lower learning_rate (now {plan.learning_rate:g}) or raise the batch size (now '
                f'{phase.batch_size} at {phase.size}x{phase.size})')
        state.record_rollback(plan.collapse_learning_rate_factor, keeper.global_step_of(target), self.ceiling)
        restored, position = self._go_back_to(target)
        if target != newest:
            restored += f'; the newer healthy {os.path.basename(newest)} went wrong again'
        logger.warning('rolled back at %s to %s (%s): %s; learning rate now %g (roll-back %d of %d in this phase)',
                       where, os.path.basename(target), restored, alarm,
                       plan.learning_rate * state.learning_rate_factor, state.rollbacks_in_phase, plan.collapse_retries)
        pause_at('rolled back', where)
        return position

    def _go_back_to(self, target):
        """Restore `target` keeping this guard's state (the phase's loss history comes from the checkpoint) and save it
        again with that state, so a kill from now on keeps the roll-back; (its position in words, (phase index, step))."""
        (size, kind, step), saved = self.keeper.roll_back_to(target)
        self.monitor.continue_from(saved and saved['monitor'])
        self.keeper.save(schedule.find_phase(self.plan.phases, size, kind), healthy=True, guard_state=self.saved_state())
        return f'{size}x{size} {kind} step {step}', self.plan.position_of(size, kind, step)


def saved_unhealthy_reason(saved, channels, gradient_penalty_weight):
    """Why a checkpoint whose guard state is `saved` was not healthy, in words ('' when its state does not say)."""
    monitor = HealthMonitor(channels, gradient_penalty_weight)
    monitor.continue_from(saved and saved['monitor'])
    return monitor.unhealthy_reason() or ''


class Unguarded:
    """The guard switched off (collapse_guard: false): nothing is judged, and a NaN or infinite loss or weight stops
    training at once, without saving, at the last good checkpoint."""

    learning_rate_factor = 1.0

    def __init__(self, plan, keeper):
        self.plan, self.keeper = plan, keeper

    def saved_state(self):
        return None

    def continue_from(self, saved):
        pass

    def begin_phase(self, phase):
        pass

    def data_order_entropy(self):
        return []

    def observe_losses(self, phase, step, metrics, steps):
        self._stop_if(phase, step, sorted(name for name, value in metrics.items() if not math.isfinite(value)))

    def observe_samples(self, phase, step, generated, real):
        return None

    def observe_checkpoint(self, phase, step, non_finite):
        self._stop_if(phase, step, non_finite)

    def is_healthy(self):
        return True

    def scalars(self):
        return {}

    def _stop_if(self, phase, step, non_finite):
        if non_finite:
            raise TrainingDiverged(
                f'training diverged at {phase.name} step {step}: {", ".join(non_finite)} became NaN or infinite. '
                f'Stopped without saving; the last good checkpoint is {self.keeper.latest or "none yet"}. Lower '
                f'learning_rate (now {self.plan.learning_rate}) or use mixed_precision: float32, then run again to '
                f'continue from it')


def guard_for(plan, keeper):
    """The guard part of a run: CollapseGuard with collapse_guard on, else Unguarded."""
    return (CollapseGuard if plan.collapse_guard else Unguarded)(plan, keeper)
