"""Interrupt training for real (Ctrl-C, then SIGKILL) through the command line, and resume to the exact step."""

import logging
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
import yaml

from deepzine.training.checkpoints import read_checkpoint_position
from deepzine.training.trainer import train

from tests.training.helpers import REPO_ROOT, make_plan, train_config

STEPS_PER_PHASE = 150  # 4x4 stable, 8x8 fade, 8x8 stable: 450 steps in all


def latest_number(checkpoints):
    """The global step of the newest checkpoint, from the CheckpointManager's index file (0: none yet)."""
    try:
        text = (checkpoints / 'checkpoint').read_text()
    except FileNotFoundError:
        return 0
    found = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', text, re.MULTILINE)
    return int(found.group(1)) if found else 0


def start_training(config_path):
    return subprocess.Popen([sys.executable, str(REPO_ROOT / 'wrapper.py'), str(config_path)], cwd=str(REPO_ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))


def stop_when(process, checkpoints, condition, signal_number, timeout_sec=120):
    """Send `signal_number` once condition(newest checkpoint's global step) holds; return the process output."""
    deadline = time.monotonic() + timeout_sec
    while not condition(latest_number(checkpoints)):
        if process.poll() is not None:
            pytest.fail('training ended before it could be interrupted:\n' + process.stdout.read()[-3000:])
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail('no checkpoint appeared in time')
        time.sleep(0.01)
    process.send_signal(signal_number)
    output, _ = process.communicate(timeout=120)
    return output


def test_interrupted_and_killed_training_resumes_at_the_exact_step(band_hdf5, tmp_path, caplog):
    raw = train_config(tmp_path, band_hdf5, gan_output_size=8, iterations_per_stage=STEPS_PER_PHASE,
                       model_save_interval_steps=10, model_loss_output_interval_steps=50)
    config_path = tmp_path / 'config.yaml'
    config_path.write_text(yaml.safe_dump(raw))
    checkpoints = tmp_path / 'log' / 'checkpoints'

    # Ctrl-C during the 8x8 fade-in: the run saves the step it is at (not only the last interval) and exits 130.
    process = start_training(config_path)
    output = stop_when(process, checkpoints, lambda step: step >= STEPS_PER_PHASE + 20, signal.SIGINT)
    assert process.returncode == 130, output[-3000:]
    assert 'interrupted: saved' in output
    size, kind, step, global_step = read_checkpoint_position(tf.train.latest_checkpoint(str(checkpoints)))
    assert (size, kind) == (8, 'fade') and 0 < step < STEPS_PER_PHASE and global_step == STEPS_PER_PHASE + step

    # SIGKILL a resumed run: nothing is saved on the way out, the last interval checkpoint must serve.
    process = start_training(config_path)
    output = stop_when(process, checkpoints, lambda newest: newest >= global_step + 30, signal.SIGKILL)
    assert f'resuming {tmp_path / "log"} from ckpt-{global_step} at 8x8 fade step {step}' in output
    assert 'phase 1/3' not in output  # 4x4 was finished: not repeated
    size, kind, step, global_step = read_checkpoint_position(tf.train.latest_checkpoint(str(checkpoints)))

    with caplog.at_level(logging.INFO, logger='deepzine'):
        train(make_plan(raw))
    assert f'from ckpt-{global_step} at {size}x{size} {kind} step {step}' in caplog.text
    started = [message for message in caplog.messages if message.startswith('phase ')]
    expected_first = f'phase {2 if kind == "fade" else 3}/3: {size}x{size} {kind}, {STEPS_PER_PHASE} steps of 4 images'
    assert started[0].startswith(expected_first) and (f'(from step {step})' in started[0] or step == 0)
    # No phase repeated or skipped: the global step counts exactly three phases.
    final = read_checkpoint_position(tf.train.latest_checkpoint(str(checkpoints)))
    assert final == (8, 'stable', STEPS_PER_PHASE, 3 * STEPS_PER_PHASE)


def test_sigterm_saves_like_ctrl_c_and_exits_143(band_hdf5, tmp_path):
    """What job schedulers and `kill` send: the current step is saved before stopping, exit code 128 + 15."""
    raw = train_config(tmp_path, band_hdf5, gan_output_size=4, iterations_per_stage=100000,
                       model_save_interval_steps=10, model_loss_output_interval_steps=1000)
    config_path = tmp_path / 'config.yaml'
    config_path.write_text(yaml.safe_dump(raw))
    checkpoints = tmp_path / 'log' / 'checkpoints'
    process = start_training(config_path)
    output = stop_when(process, checkpoints, lambda number: number >= 10, signal.SIGTERM)
    assert process.returncode == 143, output[-2000:]
    assert output.strip().splitlines()[-1].startswith('interrupted: stopped cleanly; re-run the same command')
    size, kind, step, global_step = read_checkpoint_position(tf.train.latest_checkpoint(str(checkpoints)))
    assert (size, kind) == (4, 'stable') and step == global_step >= 10
