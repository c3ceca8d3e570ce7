"""Test setup for every test: quiet TensorFlow, and the repository root."""

import os
import pathlib

import pytest

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')  # identical numbers run to run

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root():
    return REPO_ROOT


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a file system of 8 MiB (tmpfs), to run out of space in; skipped where mounting is not allowed.

    fill(bytes_left) takes all but bytes_left of it with a filler file; free() removes the filler.
    """
    import shutil
    import subprocess

    class SmallDisk:
        def __init__(self, path):
            self.path = path
            self.filler = path / 'filler.bin'

        def fill(self, bytes_left):
            free = shutil.disk_usage(self.path).free
            with open(self.filler, 'wb') as handle:
                handle.write(b'\0' * max(0, free - bytes_left))

        def free(self):
            self.filler.unlink(missing_ok=True)

    path = tmp_path / 'small_disk'
    path.mkdir()
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f'cannot mount a small file system here: {mounted.stderr.decode().strip()}')
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(['umount', '-l', str(path)], capture_output=True)
