"""config_pretrained.yaml with pretrained_model: true on the ORIGINAL DeepZine 4x4 checkpoint (tests/fixtures/legacy_deepzine)."""

import os
import pathlib
import subprocess
import sys

import imageio.v2 as imageio
import numpy as np
from PIL import Image

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
ORIGINAL_4X4 = REPO_ROOT / 'tests' / 'fixtures' / 'legacy_deepzine' / 'res4' / 'model.ckpt'


def test_the_original_pretrained_4x4_samples_pages_and_a_movie(tmp_path):
    output = tmp_path / 'out'
    overrides = ['pretrained_model=true', f'inference_model_path={ORIGINAL_4X4}', 'gan_output_size=4',
                 'inference_output_num=5', 'inference_batch_size=2', 'interpolation_vector_num=2',
                 'interpolation_frames=3', 'movie_size=64', f'inference_output_directory={output}']
    command = [sys.executable, str(REPO_ROOT / 'wrapper.py'), str(REPO_ROOT / 'config_pretrained.yaml')]
    for override in overrides:
        command += ['--set', override]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
    assert result.returncode == 0, result.stderr[-3000:]
    output = output / 'run-001'
    pages = [np.asarray(Image.open(output / f'inference_{index:05d}.png')) for index in range(5)]
    assert all(page.shape == (4, 4, 3) for page in pages)
    assert not np.array_equal(pages[0], pages[1])
    assert len(list(output.glob('interpolation_*.png'))) == 2 * 3  # looping: there and back
    with imageio.get_reader(str(output / 'interpolation.mp4'), format='FFMPEG') as reader:
        assert sum(1 for _ in reader) == 6
