"""The shipped model and the default offline run: python wrapper.py config_pretrained.yaml (smaller counts)."""

import os
import pathlib
import re
import subprocess
import sys

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from deepzine.model.architecture import filter_widths
from deepzine.model.loading import load_generator, locate_model
from deepzine.model.model_folder import read_model_json
from deepzine.parameters import load_yaml
from deepzine.pipeline import resolve_config

# TensorFlow's own C++ log lines (glog prefixes, oneDNN and CUDA notices): never in normal output.
TENSORFLOW_LOG_LINE = re.compile(r'^[IWEF]\d{4} |oneDNN|cuda|cuInit|absl::|remapper', re.IGNORECASE | re.MULTILINE)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = REPO_ROOT / 'pretrained_models' / 'debian_manuals'


def test_the_model_folder_stays_small_and_holds_every_size():
    size_on_disk = sum(path.stat().st_size for path in MODEL.rglob('*') if path.is_file())
    assert size_on_disk < 25 * 2 ** 20
    sizes = sorted(int(path.name) for path in MODEL.iterdir() if path.name.isdigit())
    assert sizes == [4, 8, 16, 32, 64]
    assert 'discriminator' in read_model_json(str(MODEL / '64'))['networks']  # for fine-tuning
    assert (MODEL / 'documents.tsv').read_text().count('\n') > 20  # at least 20 documents, listed


def test_pages_look_like_pages():
    """Trained, not random: white paper like the real 64px pages (mean 249.6, text a faint grey texture with a
    per-page standard deviation around 10); an untrained generator gives mid-grey noise."""
    generator = load_generator(locate_model(str(MODEL), None, 64))
    pages = generator.generate(np.random.default_rng(0).standard_normal((32, generator.latent_size)))
    assert pages.shape == (32, 64, 64, 1)
    brightness = (np.clip(pages, -1, 1) + 1) * 127.5
    assert brightness.mean() > 235
    texture = np.median(brightness.std(axis=(1, 2, 3)))
    assert 4 < texture < 25
    assert np.abs(pages[0] - pages[1]).mean() > 0.01  # different latents, different pages


@pytest.mark.slow
def test_default_config_runs_offline_and_makes_pages_grid_frames_and_movie(tmp_path):
    output = tmp_path / 'out'
    overrides = ['inference_output_num=6', 'interpolation_vector_num=3', 'interpolation_frames=4', 'movie_size=128',
                 f'inference_output_directory={output}']
    command = [sys.executable, str(REPO_ROOT / 'wrapper.py'), str(REPO_ROOT / 'config_pretrained.yaml')]
    for override in overrides:
        command += ['--set', override]
    environment = dict(os.environ, CUDA_VISIBLE_DEVICES='', no_proxy='*', http_proxy='', https_proxy='')
    environment.pop('TF_CPP_MIN_LOG_LEVEL', None)  # as a user runs it: DeepZine keeps TensorFlow quiet itself
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, env=environment, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not TENSORFLOW_LOG_LINE.search(result.stderr), result.stderr[-3000:]
    output = output / 'run-001'
    pages = sorted(output.glob('inference_*[0-9].png'))
    assert [page.name for page in pages] == [f'inference_{index:05d}.png' for index in range(6)]
    assert Image.open(pages[0]).size == (64, 64) and Image.open(pages[0]).mode == 'L'
    assert (output / 'inference_grid.png').exists()
    assert len(list(output.glob('interpolation_*.png'))) == 3 * 4  # three segments, the last back to the start
    with imageio.get_reader(str(output / 'interpolation.mp4'), format='FFMPEG') as reader:
        frames = [frame for frame in reader]
    assert len(frames) == 12 and frames[0].shape[:2] == (128, 128)


def test_the_training_config_resolves_with_the_shipped_architecture():
    config = resolve_config(load_yaml(str(MODEL / 'train.yaml')))
    architecture = read_model_json(str(MODEL / '64'))['architecture']
    assert config['gan_output_size'] == architecture['output_size'] and config['latent_size'] == architecture['latent_size']
    assert filter_widths(64, config['max_filter'], config['min_filter'],
                         config['filter_num_reduction_transition_size']) == {int(size): width for size, width in
                                                                             architecture['widths'].items()}
