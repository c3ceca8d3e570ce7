"""A process whose page_dataset iterators are still alive (and busy reading) at exit exits cleanly, every time."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.page_files import write_page_hdf5

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNS = 2
EXIT_TIMEOUT_SEC = 20  # after the last atexit hook; a clean exit takes 1-7 s here, even on a loaded machine

# Three iterators whose readers are still busy at exit: each keeps its first batch, then one in 100,000, so the
# prefetch buffers are still filling when the interpreter shuts down. Without the exit gate 8 of 8 runs hung.
LIVE_ITERATORS_AT_EXIT = '''
import atexit, sys
atexit.register(print, 'last atexit hook done', flush=True)  # registered first: runs last
from deepzine.data.store import page_dataset
iterators = [iter(page_dataset(sys.argv[1], size, batch_size=16, seed=size).enumerate().filter(
    lambda position, batch: position % 100000 == 0)) for size in (8, 16, 16)]
for iterator in iterators:
    next(iterator)
print('read', flush=True)
'''


@pytest.mark.slow
def test_live_page_dataset_iterators_never_hang_the_exit(tmp_path):
    path = str(tmp_path / 'pages.hdf5')
    write_page_hdf5(path, np.random.default_rng(0).integers(0, 256, (16, 16, 16, 3), dtype=np.uint8))
    environment = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}
    runs = [subprocess.Popen([sys.executable, '-c', LIVE_ITERATORS_AT_EXIT, path], cwd=REPOSITORY, env=environment,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(RUNS)]
    hung = []
    try:
        for process in runs:
            output = []
            for line in process.stdout:  # TensorFlow's import takes seconds, more on a busy machine: not timed
                output.append(line)
                if 'last atexit hook done' in line:
                    break
            try:
                process.wait(timeout=EXIT_TIMEOUT_SEC)  # what is timed: the interpreter's shutdown
            except subprocess.TimeoutExpired:
                hung.append(process.pid)
                continue
            assert output[:1] == ['read\n'] and process.returncode == 0, process.stderr.read()[-2000:]
    finally:
        for process in runs:
            process.kill()
            process.wait()
            process.stdout.close()
            process.stderr.close()
    assert not hung, f'{len(hung)} of {RUNS} processes hung at exit'
