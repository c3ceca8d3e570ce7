"""Ctrl-C and SIGTERM stop sampling, movie encoding and evaluation within seconds, in one line, leaving no partial file.

(load_data: tests/data/test_interrupts.py; training: tests/training/test_resume.py.)
Each test runs `python wrapper.py` as a user would, waits until the run says
it is working (pages written, the movie writer held by a test hook, the
evaluation's log line), sends the signal and times the exit.
"""

import os
import signal

import numpy as np
import pytest

from tests.page_files import write_page_hdf5
from tests.runs import ADVICE, REPOSITORY, STOP_SEC, Run

MODEL = REPOSITORY / 'pretrained_models' / 'debian_libraries'


def partial_files(folder):
    return [name for name in os.listdir(folder) if '.partial' in name] if os.path.isdir(folder) else []


@pytest.mark.slow
def test_ctrl_c_stops_sampling_and_keeps_whole_pages(tmp_path):
    run_folder = tmp_path / 'out' / 'run-001'
    run = Run(tmp_path, {'inference': True, 'inference_model_directory': str(MODEL), 'gan_output_size': 64,
                         'inference_output_num': 200000, 'inference_output_directory': str(tmp_path / 'out')})
    run.wait_until(lambda: len(list(run_folder.glob('inference_*.png'))) > 20, 'pages written')
    seconds = run.stop_with(signal.SIGINT)
    assert run.process.returncode == 130 and seconds < STOP_SEC, (seconds, run.last_lines(5))
    assert run.lines[-1] == ADVICE
    assert partial_files(run_folder) == []
    from PIL import Image
    for page in run_folder.glob('inference_*.png'):
        Image.open(page).load()  # every page on disk is whole


@pytest.mark.slow
def test_sigterm_stops_movie_encoding_without_leaving_a_partial_movie(tmp_path):
    run_folder = tmp_path / 'out' / 'run-001'
    run = Run(tmp_path, {'interpolation': True, 'inference_model_directory': str(MODEL), 'gan_output_size': 64,
                         'interpolation_method': 'smooth', 'interpolation_duration_sec': 1, 'movie_fps': 10,
                         'export_movie': True, 'movie_size': 128, 'inference_output_directory': str(tmp_path / 'out')},
              pause='encoding')
    run.wait_until_paused('encoding')  # ffmpeg has its first frame
    run.wait_until(lambda: any(name.endswith('.mp4') for name in partial_files(run_folder)), 'the partial movie')
    seconds = run.stop_with(signal.SIGTERM)
    assert run.process.returncode == 143 and seconds < STOP_SEC, (seconds, run.last_lines(5))
    assert run.lines[-1] == ADVICE
    assert partial_files(run_folder) == [] and not (run_folder / 'interpolation.mp4').exists()


@pytest.mark.slow
def test_ctrl_c_stops_an_evaluation(tmp_path):
    pages = np.random.default_rng(0).integers(0, 256, (600, 64, 64, 3), dtype=np.uint8)
    data = write_page_hdf5(tmp_path / 'pages.hdf5', pages,  # the shipped model's collections, as it was trained
                           collections=[('manuals', 200), ('slides', 200), ('cards', 200)])
    log = tmp_path / 'log'
    run = Run(tmp_path, {'evaluate': True, 'inference_model_directory': str(MODEL), 'gan_output_size': 64,
                         'data_hdf5': str(data), 'log_dir': str(log), 'evaluation_image_num': 300,
                         'memorization_check_num': 0})
    run.wait_for_line(r'\bevaluating .* SWD over', 'the evaluation')
    seconds = run.stop_with(signal.SIGINT)
    assert run.process.returncode == 130 and seconds < STOP_SEC, (seconds, run.last_lines(5))
    assert run.lines[-1] == ADVICE
    assert partial_files(log / 'metrics') == [] and not list((log / 'metrics').glob('swd_*.json'))
