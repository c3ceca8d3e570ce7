"""The collapse guard: a diverging run rolls back and finishes, the roll-backs survive Ctrl-C and SIGKILL, a phase out
of retries stops in one line, and the checkpoints it needs are kept."""

import dataclasses
import json
import logging
import os
import signal

import numpy as np
import pytest
import tensorflow as tf

from deepzine.data.store import PageStore
from deepzine.errors import TrainingDiverged
from deepzine.training.checkpoints import (CheckpointList, HealthRecord, checkpoint_prefix, parse_health_state,
                                           read_checkpoint_health, read_checkpoint_position)
from deepzine.training.guard import GuardState, rollback_target_step
from deepzine.training.trainer import Trainer, train

from tests.training.helpers import band_pages, make_plan, train_config, write_page_hdf5
from tests.runs import Run
from tests.training.test_trainer import LogLines


def guard_state(prefix):
    """The collapse guard's counts saved in a checkpoint: roll-backs in the phase, learning-rate factor, ..."""
    return read_checkpoint_health(prefix).guard['guard']


def latest(tmp_path):
    return tf.train.latest_checkpoint(str(tmp_path / 'log' / 'checkpoints'))


def lowered_factor(rollbacks, learning_rate):
    """The learning-rate factor after `rollbacks` (at least 1) roll-backs of a run at `learning_rate`, which is above
    the automatic 0.001: the first falls back to 0.001, each further one multiplies by 0.25."""
    return 0.001 / learning_rate * 0.25 ** (rollbacks - 1)


@pytest.fixture(scope='module')
def wide_bands(tmp_path_factory):
    return write_page_hdf5(tmp_path_factory.mktemp('pages') / 'bands64.hdf5', band_pages(64, 16))


@pytest.mark.slow
def test_a_run_that_diverges_without_the_guard_rolls_back_and_finishes(wide_bands, tmp_path):
    """learning_rate 5.0 stops at 16x16 fade step 10 with NaN losses without the guard (measured); with it, the first
    alarm falls back to the automatic rate, 0.001, which carries through the run, and it ends with finite weights."""
    from deepzine.model.model_folder import load_model_folder
    raw = train_config(tmp_path, wide_bands, learning_rate=5.0, iterations_per_stage=20,
                       model_loss_output_interval_steps=10, collapse_learning_rate_factor=0.25)
    handler, logger = LogLines(), logging.getLogger('deepzine')
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        train(make_plan(raw))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    rolled_back = [line for line in handler.lines if line.startswith('rolled back')]
    assert rolled_back[0].startswith('rolled back at 4x4 stable step 10 to ckpt-0 (4x4 stable step 0): divergence '
                                     'of the gradient penalty')
    assert rolled_back[0].endswith('learning rate now 0.001 (roll-back 1 of 4 in this phase)')
    assert any(line.startswith('16x16 fade step') and 'lr x0.0002' in line for line in handler.lines)
    assert read_checkpoint_position(latest(tmp_path)) == (16, 'stable', 20, 100)
    assert guard_state(latest(tmp_path))['learning_rate_factor'] <= 0.001 / 5.0
    _, _, generator_ema, discriminator, _ = load_model_folder(str(tmp_path / 'log' / '16'), with_discriminator=True)
    for network in (generator_ema, discriminator):
        assert all(np.all(np.isfinite(weight.numpy())) for weight in network.weights)
    kept = [name for name in os.listdir(tmp_path / 'log' / 'checkpoints') if name.endswith('.index')]
    assert len(kept) <= 6  # the newest three and the newest three healthy ones


def test_a_phase_out_of_retries_stops_in_one_line_at_the_healthy_checkpoint(band_hdf5, tmp_path):
    raw = train_config(tmp_path, band_hdf5, gan_output_size=4, iterations_per_stage=8,
                       model_loss_output_interval_steps=1, learning_rate=1e12, collapse_retries=0)
    with pytest.raises(TrainingDiverged, match=r'^training kept going wrong at 4x4 stable step \d+ \(learning rate '
                       r'1e\+12, no roll-back left in this phase: collapse_retries=0\): non-finite .*\. Stopped at the '
                       r'healthy checkpoint ckpt-0 \(4x4 stable step 0\), which running again continues from '
                       r'with fresh retries: first lower learning_rate \(now 1e\+12\) or raise the batch size \(now 4 '
                       r'at 4x4\)$'):
        train(make_plan(raw))
    assert os.path.basename(latest(tmp_path)) == 'ckpt-0'
    guard = guard_state(latest(tmp_path))
    assert (guard['rollbacks_in_phase'], guard['learning_rate_factor']) == (0, 1.0)  # the next run starts afresh


def run_until(tmp_path, raw, moment, signal_number):
    """Train until the test hook holds the run at `moment`, then send `signal_number`; (exit code, its output)."""
    run = Run(tmp_path, raw, pause=moment)
    run.wait_until_paused(moment)
    run.signal(signal_number)
    return run.wait_for_exit(), run.text()


@pytest.mark.slow
def test_the_lowered_learning_rate_survives_sigkill_right_after_a_roll_back_and_ctrl_c_and_carries_on(band_hdf5,
                                                                                                         tmp_path):
    raw = train_config(tmp_path, band_hdf5, gan_output_size=8, iterations_per_stage=400, learning_rate=5.0,
                       model_loss_output_interval_steps=10, collapse_retries=20)

    code, output = run_until(tmp_path, raw, 'rolled back', signal.SIGKILL)
    assert code == -signal.SIGKILL
    rollbacks = output.count('rolled back at ')
    guard = guard_state(latest(tmp_path))
    assert (guard['rollbacks_in_phase'], guard['learning_rate_factor']) == (rollbacks, lowered_factor(rollbacks, 5.0))

    # Resumed at the lowered rate (the loss lines say it), then Ctrl-C once training is past its trouble.
    code, output = run_until(tmp_path, raw, '4x4 stable step 200', signal.SIGINT)
    assert code == 130 and 'interrupted: saved' in output, output[-3000:]
    assert f'lr x{lowered_factor(rollbacks, 5.0):g}' in output.split('rolled back at ')[0]
    rollbacks += output.count('rolled back at ')
    guard = guard_state(latest(tmp_path))
    assert (guard['rollbacks_in_phase'], guard['learning_rate_factor']) == (rollbacks, lowered_factor(rollbacks, 5.0))

    with PageStore(band_hdf5) as store:
        trainer = Trainer(make_plan(raw), store)
        trainer._begin()
    for optimizer in (trainer.models.generator_optimizer, trainer.models.discriminator_optimizer):
        assert float(optimizer.learning_rate.numpy()) == pytest.approx(5.0 * lowered_factor(rollbacks, 5.0))

    # The lowered rate carries into the next phase (a fade-in: no recovery there), and through a SIGKILL in it.
    code, output = run_until(tmp_path, raw, '8x8 fade step 20', signal.SIGKILL)
    assert code == -signal.SIGKILL
    rollbacks += output.split('8x8 fade step')[0].count('rolled back at ')
    first_fade_line = next(line for line in output.splitlines() if '8x8 fade step' in line and '| health' in line)
    assert f'lr x{lowered_factor(rollbacks, 5.0):g}' in first_fade_line, first_fade_line
    code, output = run_until(tmp_path, raw, '8x8 fade step 30', signal.SIGINT)
    assert code == 130
    resumed_fade_line = next(line for line in output.splitlines() if '8x8 fade step' in line and '| health' in line)
    factor = float(resumed_fade_line.split(' lr x')[1].split()[0])
    assert factor <= lowered_factor(rollbacks, 5.0)


def test_a_resume_prefers_the_newest_healthy_checkpoint_and_reads_checkpoints_without_health(band_hdf5, tmp_path,
                                                                                                caplog):
    """A checkpoint saved unhealthy (here: a NaN line pending) is passed over; one of DeepZine 2.1, without a health
    state, counts as healthy (its weights were finite: all that was checked then)."""
    raw = train_config(tmp_path, band_hdf5, gan_output_size=4)
    plan = make_plan(raw)
    phase = plan.phases[0]
    with PageStore(band_hdf5) as store:
        trainer = Trainer(plan, store)
        trainer._write_checkpoint(phase)
        trainer.state.global_step.assign(3)
        trainer.state.phase_step.assign(3)
        nan_line = dict.fromkeys(('discriminator_loss', 'generator_loss', 'wasserstein', 'gradient_penalty', 'drift'),
                                 float('nan'))
        assert trainer.guard.observe_losses(phase, 3, nan_line, steps=3) is not None
        trainer._write_checkpoint(phase)
        assert os.path.basename(latest(tmp_path)) == 'ckpt-3'
        resumed = make_plan(raw)
        assert os.path.basename(resumed.start.checkpoint) == 'ckpt-0'
        assert (resumed.start.phase_index, resumed.start.step) == (0, 0)
        assert resumed.start.note.startswith('ckpt-3 was saved unhealthy (non-finite losses')
        assert resumed.start.note.endswith('resuming from the newest healthy checkpoint ckpt-0 instead')
        with caplog.at_level(logging.WARNING, logger='deepzine'):
            Trainer(resumed, store)._begin()
        assert resumed.start.note in caplog.text

        # Format 2: the same objects saved without the health state, by tf.train.CheckpointManager as 2.1 did.
        trainer.state.global_step.assign(7)
        old = tf.train.Checkpoint(**trainer.keeper._tracked)
        tf.train.CheckpointManager(old, str(tmp_path / 'log' / 'checkpoints'), max_to_keep=3).save(checkpoint_number=7)
        again_plan = make_plan(raw)
        assert os.path.basename(again_plan.start.checkpoint) == 'ckpt-7' and again_plan.start.guard_state is None
        again = Trainer(again_plan, store)
        again._begin()
        assert again.keeper.healthy_steps == [7] and again.guard.is_healthy()


def test_checkpoint_list_keeps_the_newest_and_the_protected_one_and_forgets_an_abandoned_path(tmp_path):
    checkpoint = tf.train.Checkpoint(value=tf.Variable(0))
    directory = str(tmp_path / 'checkpoints')
    saved = CheckpointList(directory)

    def save(step, protected=()):
        prefix = checkpoint_prefix(directory, step)
        checkpoint.write(prefix)
        saved.add(prefix, [checkpoint_prefix(directory, step) for step in protected])

    for step in (0, 100, 200, 300, 400, 500, 600):
        save(step, protected=(10, 100, 200))
    names = [os.path.basename(prefix) for prefix in saved.prefixes]
    assert names == ['ckpt-100', 'ckpt-200', 'ckpt-400', 'ckpt-500', 'ckpt-600']
    assert sorted(name for name in os.listdir(directory) if name.endswith('.index')) == [
        f'{name}.index' for name in sorted(names)]
    saved.discard_after(checkpoint_prefix(directory, 400))
    assert tf.train.latest_checkpoint(directory) == checkpoint_prefix(directory, 400)
    assert saved.find(500) is None and saved.find(100) == checkpoint_prefix(directory, 100)
    save(500)  # the retried path saves at the same step again
    assert [os.path.basename(prefix) for prefix in CheckpointList(directory).prefixes] == [
        'ckpt-200', 'ckpt-400', 'ckpt-500']


def test_the_lowered_rate_carries_into_the_next_phases_and_recovers_only_after_a_fade_in_without_trouble():
    guard = GuardState()
    guard.enter_phase(3, 0.5, fading=True)
    guard.record_rollback(0.5, 1200)
    guard.record_rollback(0.5, 1000)
    assert (guard.rollbacks_in_phase, guard.learning_rate_factor, guard.retries_left(3)) == (2, 0.25, 1)
    guard.enter_phase(2, 0.5, fading=False)  # rolled back into the previous phase: the retries of phase 3 still count
    guard.enter_phase(3, 0.5, fading=True)
    assert guard.rollbacks_in_phase == 2
    assert GuardState(**json.loads(json.dumps(dataclasses.asdict(guard)))) == guard
    guard.enter_phase(4, 0.5, fading=False)  # the fade needed roll-backs: its rate carries on
    assert (guard.rollbacks_in_phase, guard.learning_rate_factor, guard.retries_left(3)) == (0, 0.25, 3)
    guard.enter_phase(5, 0.5, fading=True)  # never up into a fade-in
    assert guard.learning_rate_factor == 0.25
    guard.enter_phase(6, 0.5, fading=False)  # the fade went clean: one step back up
    assert guard.learning_rate_factor == 0.5
    for index in (7, 8, 9, 10):
        guard.enter_phase(index, 0.5, fading=index % 2 == 1)
    assert guard.learning_rate_factor == 1.0  # never above the configured rate


def test_a_rate_above_the_automatic_one_falls_back_to_it_at_the_first_roll_back_and_recovers_no_higher():
    """learning_rate 0.2 where the automatic rate is 0.001: the ceiling is 0.005 of the configured rate."""
    guard, ceiling = GuardState(), 0.001 / 0.2
    guard.enter_phase(0, 0.25, fading=False, ceiling=ceiling)
    guard.enter_phase(1, 0.25, fading=True, ceiling=ceiling)
    guard.enter_phase(2, 0.25, fading=False, ceiling=ceiling)  # no roll-back yet: the configured rate stays
    assert guard.learning_rate_factor == 1.0
    assert guard.restarts_phase(ceiling)  # the phase was trained at 0.2 all along: back to its start
    assert not guard.restarts_phase()  # at or below the automatic rate, a first roll-back goes to the newest healthy one
    guard.record_rollback(0.25, 400, ceiling)
    assert guard.learning_rate_factor == ceiling  # 0.001 at once, not 0.05
    guard.record_rollback(0.25, 400, ceiling)
    assert guard.learning_rate_factor == ceiling * 0.25
    guard.enter_phase(3, 0.25, fading=True, ceiling=ceiling)
    guard.enter_phase(4, 0.25, fading=False, ceiling=ceiling)  # a clean fade: one step back up
    assert guard.learning_rate_factor == ceiling
    guard.enter_phase(5, 0.25, fading=True, ceiling=ceiling)
    guard.enter_phase(6, 0.25, fading=False, ceiling=ceiling)  # ... but never above the automatic rate
    assert guard.learning_rate_factor == ceiling
    assert not guard.restarts_phase(ceiling)  # a first roll-back in this phase, at the automatic rate


def test_a_guard_out_of_retries_is_forgiven_for_the_next_run():
    guard = GuardState()
    guard.enter_phase(2, 0.5, fading=False)
    guard.record_rollback(0.5, 400)
    guard.forgive()
    assert (guard.phase_index, guard.rollbacks_in_phase, guard.learning_rate_factor) == (2, 0, 1.0)


def test_samples_collapsing_again_before_a_new_healthy_checkpoint_go_one_healthy_checkpoint_further_back():
    """The samples come from the generator's moving average, which lags the trained weights: when they collapse
    again at a lower rate from the newest healthy checkpoint, the trouble was already in it."""
    assert rollback_target_step([400, 600, 800], None, lagging=True) == 800
    assert rollback_target_step([400, 600, 800], 800, lagging=True) == 600  # nothing healthy since: further back
    assert rollback_target_step([400, 600, 800], 800, lagging=False) == 800  # a loss alarm: no lag
    assert rollback_target_step([400, 600], 600, lagging=True) == 400
    assert rollback_target_step([400, 600], 400, lagging=True) == 600  # past it this time, healthy
    assert rollback_target_step([], None, lagging=True) is None


def test_old_checkpoints_health_states_read_as_healthy_steps_and_guard_state():
    """Format 2 (no health state) counts as healthy; format 3 kept the healthy steps inside the guard's state."""
    assert parse_health_state('', 700) == HealthRecord([700])
    format_3 = {'format_version': 1, 'channels': 1, 'gradient_penalty_weight': 10.0, 'phase': None,
                'guard': {'phase_index': 2, 'rollbacks_in_phase': 1, 'learning_rate_factor': 0.5,
                          'last_healthy_step': 600, 'healthy_steps': [400, 600], 'rollback_step': 400}}
    record = parse_health_state(json.dumps(format_3), 800)
    healthy, saved = record.healthy_steps, record.guard
    assert healthy == [400, 600]
    assert saved['guard'] == {'phase_index': 2, 'rollbacks_in_phase': 1, 'learning_rate_factor': 0.5,
                              'rollback_step': 400}
    assert GuardState(**saved['guard']).retries_left(4) == 3


def test_a_phase_that_goes_wrong_again_starts_over_from_the_checkpoint_it_started_from(band_hdf5, tmp_path):
    from deepzine.training.health import Alarm
    plan = make_plan(train_config(tmp_path, band_hdf5, gan_output_size=8, iterations_per_stage=100))
    four, fade = plan.phases[0], plan.phases[1]
    with PageStore(band_hdf5) as store:
        trainer = Trainer(plan, store)
        for global_step, phase, step in ((0, four, 0), (100, four, 100), (120, fade, 20), (140, fade, 40),
                                         (160, fade, 60), (180, fade, 80)):
            trainer.state.global_step.assign(global_step)
            trainer.state.phase_step.assign(step)
            trainer.guard.begin_phase(phase)
            trainer._write_checkpoint(phase)
        assert trainer.keeper.healthy_steps == [140, 160, 180] and trainer.keeper.phase_start_step == 100
        assert os.path.exists(checkpoint_prefix(str(tmp_path / 'log' / 'checkpoints'), 100) + '.index')  # kept
        alarm = Alarm('gradient_penalty', 'limit', 50.0, 10.0, 'divergence of the gradient penalty', fade.name, 90)
        assert trainer.guard.roll_back(alarm, fade) == (1, 80)  # the first time: the newest healthy checkpoint
        assert trainer.guard.roll_back(alarm, fade) == (1, 0)  # again: the fade starts over from the 4x4's end
        assert trainer.guard.state.learning_rate_factor == 0.25 ** 2


def test_a_rate_above_the_automatic_one_that_goes_wrong_starts_the_phase_over_at_the_automatic_rate(band_hdf5,
                                                                                                      tmp_path):
    """Everything since the phase began was trained at the rate that went wrong, healthy-looking or not; in the run's
    first phase that start is the checkpoint saved before the first step."""
    from deepzine.training.health import Alarm
    plan = make_plan(train_config(tmp_path, band_hdf5, gan_output_size=8, iterations_per_stage=100,
                                  learning_rate=0.2))
    four = plan.phases[0]
    alarm = Alarm('gradient_penalty', 'limit', 50.0, 10.0, 'divergence of the gradient penalty', four.name, 90)
    with PageStore(band_hdf5) as store:
        trainer = Trainer(plan, store)
        for global_step in (0, 20, 40, 60, 80):
            trainer.state.global_step.assign(global_step)
            trainer.state.phase_step.assign(global_step)
            trainer.guard.begin_phase(four)
            trainer._write_checkpoint(four)
        assert trainer.keeper.phase_start_step == 0
        assert trainer.guard.roll_back(alarm, four) == (0, 0)  # not the newest healthy step 80
        assert trainer.guard.learning_rate_factor == pytest.approx(0.001 / 0.2)
        assert trainer.guard.roll_back(alarm, four) == (0, 0)  # again: the phase starts over, x0.25 from there
        assert trainer.guard.learning_rate_factor == pytest.approx(0.001 / 0.2 * 0.25)
