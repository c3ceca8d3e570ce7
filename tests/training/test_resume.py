"""Interrupt training for real (Ctrl-C, SIGTERM, SIGKILL) through the command line, and resume to the exact step.

The run is held by the test hook (deepzine.test_hooks) right after the step it
is interrupted at, so the step does not depend on the machine's speed.
"""

import logging
import signal

import tensorflow as tf

from deepzine.training.checkpoints import read_checkpoint_position
from deepzine.training.trainer import train

from tests.runs import Run
from tests.training.helpers import make_plan, train_config

STEPS_PER_PHASE = 40  # 4x4 stable, 8x8 fade, 8x8 stable: 120 steps in all


def latest_position(tmp_path):
    return read_checkpoint_position(tf.train.latest_checkpoint(str(tmp_path / 'log' / 'checkpoints')))


def interrupted(tmp_path, raw, moment, signal_number):
    """Run the config until it is held after `moment`, send the signal; the Run (ended)."""
    run = Run(tmp_path, raw, pause=moment)
    run.wait_until_paused(moment)
    run.signal(signal_number)
    run.wait_for_exit()
    return run


def test_interrupted_and_killed_training_resumes_at_the_exact_step(band_hdf5, tmp_path, caplog):
    raw = train_config(tmp_path, band_hdf5, gan_output_size=8, iterations_per_stage=STEPS_PER_PHASE,
                       model_save_interval_steps=10, model_loss_output_interval_steps=20)

    # Ctrl-C in the 8x8 fade-in, between two interval checkpoints: the run saves the step it is at, exits 130.
    run = interrupted(tmp_path, raw, '8x8 fade step 13', signal.SIGINT)
    assert run.process.returncode == 130, run.last_lines()
    assert any('interrupted: saved' in line for line in run.lines)
    assert latest_position(tmp_path) == (8, 'fade', 13, STEPS_PER_PHASE + 13)

    # SIGKILL a resumed run after step 27: nothing is saved on the way out, the checkpoint of step 20 must serve.
    run = interrupted(tmp_path, raw, '8x8 fade step 27', signal.SIGKILL)
    assert run.process.returncode == -signal.SIGKILL
    assert any(f'from ckpt-{STEPS_PER_PHASE + 13} at 8x8 fade step 13' in line for line in run.lines)
    assert not any('phase 1/3' in line for line in run.lines)  # 4x4 was finished: not repeated
    assert latest_position(tmp_path) == (8, 'fade', 20, STEPS_PER_PHASE + 20)

    with caplog.at_level(logging.INFO, logger='deepzine'):
        train(make_plan(raw))
    assert f'from ckpt-{STEPS_PER_PHASE + 20} at 8x8 fade step 20' in caplog.text
    started = [message for message in caplog.messages if message.startswith('phase ')]
    assert started[0].startswith(f'phase 2/3: 8x8 fade, {STEPS_PER_PHASE} steps of 4 images (from step 20)')
    # No phase repeated or skipped: the global step counts exactly three phases.
    assert latest_position(tmp_path) == (8, 'stable', STEPS_PER_PHASE, 3 * STEPS_PER_PHASE)


def test_sigterm_saves_like_ctrl_c_and_exits_143(band_hdf5, tmp_path):
    """What job schedulers and `kill` send: the current step is saved before stopping, exit code 128 + 15."""
    raw = train_config(tmp_path, band_hdf5, gan_output_size=4, iterations_per_stage=100,
                       model_save_interval_steps=10, model_loss_output_interval_steps=1000)
    run = interrupted(tmp_path, raw, '4x4 stable step 15', signal.SIGTERM)
    assert run.process.returncode == 143, run.last_lines()
    assert run.lines[-1].startswith('interrupted: stopped cleanly; re-run the same command')
    assert latest_position(tmp_path) == (4, 'stable', 15, 15)
