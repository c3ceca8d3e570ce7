"""Ctrl-C and SIGTERM stop sampling, movie encoding and evaluation within seconds, in one line, leaving no partial file.

(load_data: tests/data/test_interrupts.py; training: tests/training/test_resume.py.)
Each test runs `python wrapper.py` as a user would, waits until the stage is
working, sends the signal and times the exit.
"""

import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from tests.page_files import write_page_hdf5

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL = REPO_ROOT / 'pretrained_models' / 'debian_manuals'
STOP_WITHIN_SEC = 5


def start(config, tmp_path):
    path = tmp_path / 'config.yaml'
    path.write_text(yaml.safe_dump(config))
    return subprocess.Popen([sys.executable, str(REPO_ROOT / 'wrapper.py'), str(path)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def interrupt_when(process, ready, signal_number, timeout_sec=120):
    """Send the signal once ready() holds; (exit code, seconds from the signal to the exit, stderr lines)."""
    deadline = time.monotonic() + timeout_sec
    while not ready():
        if process.poll() is not None:
            pytest.fail('the run ended before it could be interrupted:\n' + process.stderr.read()[-3000:])
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail('the stage never started working')
        time.sleep(0.05)
    process.send_signal(signal_number)
    sent = time.monotonic()
    try:
        _, errors = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail('the run did not stop')
    return process.returncode, time.monotonic() - sent, errors.strip().splitlines()


def partial_files(folder):
    return [name for name in os.listdir(folder) if '.partial' in name] if os.path.isdir(folder) else []


def test_ctrl_c_stops_sampling_and_keeps_whole_pages(tmp_path):
    run_folder = tmp_path / 'out' / 'run-001'
    process = start({'inference': True, 'inference_model_directory': str(MODEL), 'gan_output_size': 64,
                     'inference_output_num': 200000, 'inference_output_directory': str(tmp_path / 'out')}, tmp_path)
    code, seconds, errors = interrupt_when(process, lambda: len(list(run_folder.glob('inference_*.png'))) > 20,
                                           signal.SIGINT)
    assert code == 130 and seconds < STOP_WITHIN_SEC, (code, seconds, errors[-5:])
    assert errors[-1] == 'interrupted: stopped cleanly; re-run the same command to resume'
    assert partial_files(run_folder) == []
    from PIL import Image
    for page in run_folder.glob('inference_*.png'):
        Image.open(page).load()  # every page on disk is whole


def test_sigterm_stops_movie_encoding_without_leaving_a_partial_movie(tmp_path):
    run_folder = tmp_path / 'out' / 'run-001'
    process = start({'interpolation': True, 'inference_model_directory': str(MODEL), 'gan_output_size': 64,
                     'interpolation_method': 'smooth', 'interpolation_duration_sec': 120, 'movie_fps': 30,
                     'export_movie': True, 'movie_size': 1024, 'inference_output_directory': str(tmp_path / 'out')},
                    tmp_path)
    code, seconds, errors = interrupt_when(process, lambda: bool(partial_files(run_folder)) and any(
        name.endswith('.mp4') for name in partial_files(run_folder)), signal.SIGTERM)
    assert code == 143 and seconds < STOP_WITHIN_SEC, (code, seconds, errors[-5:])
    assert errors[-1] == 'interrupted: stopped cleanly; re-run the same command to resume'
    assert partial_files(run_folder) == [] and not (run_folder / 'interpolation.mp4').exists()


def test_ctrl_c_stops_an_evaluation(tmp_path):
    pages = np.random.default_rng(0).integers(0, 256, (600, 64, 64, 1), dtype=np.uint8)
    data = write_page_hdf5(tmp_path / 'pages.hdf5', pages)
    log = tmp_path / 'log'
    process = start({'evaluate': True, 'inference_model_directory': str(MODEL), 'gan_output_size': 64,
                     'data_hdf5': str(data), 'log_dir': str(log), 'evaluation_image_num': 300,
                     'memorization_check_num': 0}, tmp_path)
    code, seconds, errors = interrupt_when(
        process, lambda: (log / 'metrics' / 'evaluate.log').exists() and 'evaluating' in (log / 'metrics' / 'evaluate.log').read_text(),
        signal.SIGINT)
    assert code == 130 and seconds < STOP_WITHIN_SEC, (code, seconds, errors[-5:])
    assert errors[-1] == 'interrupted: stopped cleanly; re-run the same command to resume'
    assert partial_files(log / 'metrics') == [] and not list((log / 'metrics').glob('swd_*.json'))
