"""SIGKILL load_data and train at seeded random moments, re-running after each: nothing lost, nothing twice, no leftovers.

A SIGKILL gives a process no chance to clean up, so this is the worst case a
power cut or an out-of-memory kill can do. The kills go to the whole process
group, worker processes included.
"""

import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import yaml

from tests.data.documents import write_pdf
from tests.training.helpers import band_pages, train_config, write_page_hdf5

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES_PER_DOCUMENT = 12
DATA_KILLS, TRAINING_KILLS = 3, 2  # a training run costs seconds of start-up (TensorFlow, tracing)


def start(config, folder):
    path = folder / 'config.yaml'
    path.write_text(yaml.safe_dump(config))
    return subprocess.Popen([sys.executable, str(REPO_ROOT / 'wrapper.py'), str(path)], cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def kill_after(process, seconds):
    """SIGKILL the run's process group after `seconds` (or when it has ended); True if it was killed mid-way."""
    try:
        process.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        return True


def leftovers(folder):
    return [os.path.join(root, name) for root, folders, names in os.walk(folder) for name in folders + names
            if '.partial' in name or name.endswith(('_temp', '.merging', '.tmp'))]


def test_load_data_killed_again_and_again_ends_with_every_page_once(tmp_path):
    rng = np.random.default_rng(12)
    pdfs = tmp_path / 'pdfs'
    for number in range(30):
        write_pdf(str(pdfs / f'doc{number:02d}.pdf'), PAGES_PER_DOCUMENT)
    # 360 pages rendered at 512 px (twice data_output_size): about 3 s of work here, so kills land mid-way
    config = {'load_data': True, 'data_source': 'pdf_directory', 'pdf_directory': str(pdfs), 'data_output_size': 256,
              'data_hdf5': str(tmp_path / 'data' / 'pages.hdf5'), 'pdf_conversion_program': 'pdftoppm',
              'conversion_workers': 2}
    killed = 0
    for _ in range(DATA_KILLS):
        killed += kill_after(start(config, tmp_path), rng.uniform(0.6, 1.8))
    process = start(config, tmp_path)
    assert process.wait(timeout=300) == 0, process.stderr.read()[-3000:]
    assert killed >= 1, 'no run was killed mid-way: the kill points are too late for this machine'
    with h5py.File(config['data_hdf5'], 'r') as handle:
        rows = list(zip(handle['pages/file'].asstr()[:], handle['pages/page_number'][:]))
        assert handle['data_16'].shape[0] == len(rows)
    assert sorted(rows) == [(f'doc{number:02d}.pdf', page) for number in range(30)
                            for page in range(1, PAGES_PER_DOCUMENT + 1)]
    assert leftovers(tmp_path / 'data') == []


def newest_checkpoint_step(log_dir):
    try:
        text = (log_dir / 'checkpoints' / 'checkpoint').read_text()
    except FileNotFoundError:
        return None
    found = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', text, re.MULTILINE)
    return int(found.group(1)) if found else None


class StderrLines:
    """Collects a process's stderr lines in a thread, so the test can wait on files meanwhile."""

    def __init__(self, process):
        import threading
        self.lines = []
        self.thread = threading.Thread(target=lambda: self.lines.extend(process.stderr), daemon=True)
        self.thread.start()

    def text(self):
        self.thread.join(timeout=30)
        return ''.join(self.lines)


def test_training_killed_again_and_again_resumes_at_its_last_checkpoint(tmp_path):
    rng = np.random.default_rng(5)
    pages = write_page_hdf5(tmp_path / 'pages.hdf5', band_pages(32, 4))
    raw = train_config(tmp_path, pages, gan_output_size=4, iterations_per_stage=600, model_save_interval_steps=20,
                       model_loss_output_interval_steps=1000, model_sample_interval_steps=1000)
    log_dir = tmp_path / 'log'
    saved = None
    for _ in range(TRAINING_KILLS):
        process = start(raw, tmp_path)
        stderr = StderrLines(process)
        started = time.monotonic()
        while newest_checkpoint_step(log_dir) == saved and process.poll() is None and time.monotonic() - started < 120:
            time.sleep(0.05)  # a first checkpoint of this run, then the kill comes somewhere after it
        kill_after(process, rng.uniform(0.1, 1.5))
        if saved is not None:
            assert f'from ckpt-{saved} ' in stderr.text()  # resumed exactly where the killed run had saved
        assert newest_checkpoint_step(log_dir) != saved
        saved = newest_checkpoint_step(log_dir)
    process = start(raw, tmp_path)
    stderr = StderrLines(process)
    assert process.wait(timeout=600) == 0, stderr.text()[-3000:]
    assert f'from ckpt-{saved} ' in stderr.text()
    assert newest_checkpoint_step(log_dir) == 600
    assert leftovers(log_dir) == []
