"""The shipped model, debian_libraries, and the default offline run: python wrapper.py config_pretrained.yaml
(smaller counts)."""

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
MODEL = REPO_ROOT / 'pretrained_models' / 'debian_libraries'
COLLECTIONS = ('manuals', 'slides', 'cards')


def test_everything_shipped_stays_small_and_the_model_holds_every_size():
    shipped = REPO_ROOT / 'pretrained_models'
    assert sum(path.stat().st_size for path in shipped.rglob('*') if path.is_file()) < 25 * 2 ** 20
    sizes = sorted(int(path.name) for path in MODEL.iterdir() if path.name.isdigit())
    assert sizes == [4, 8, 16, 32, 64, 128]
    description = read_model_json(str(MODEL / '128'))
    assert 'discriminator' in description['networks']  # for fine-tuning and projection
    assert tuple(description['collections']) == COLLECTIONS
    assert (MODEL / 'documents.tsv').read_text().count('\n') > 500  # every document, listed


def pages_for(generator, collection, count=32):
    latents = np.random.default_rng(0).standard_normal((count, generator.latent_size))
    return generator.generate(latents, generator.one_hot([COLLECTIONS.index(collection)] * count))


def test_each_collection_draws_its_own_kind_of_page():
    """Trained and conditional, in the plain numbers the collections differ in (README.md, "How the collections
    differ"): manuals are white pages of grey text, slides are coloured, cards are darker than both."""
    generator = load_generator(locate_model(str(MODEL), None, 128))
    assert generator.collection_names == COLLECTIONS
    looks = {}
    for collection in COLLECTIONS:
        pages = np.clip(pages_for(generator, collection), -1, 1)
        assert pages.shape == (32, 128, 128, 3)
        brightness = (pages.mean(axis=-1) + 1) * 127.5
        colour = pages.max(axis=-1) - pages.min(axis=-1)
        looks[collection] = {'brightness': brightness.mean(), 'colour': colour.mean(),
                             'variety': np.abs(pages[0] - pages[1]).mean()}
    assert looks['manuals']['brightness'] > 200 and looks['manuals']['colour'] < 0.05
    assert looks['slides']['colour'] > 2 * looks['manuals']['colour']
    assert looks['cards']['brightness'] < looks['manuals']['brightness'] - 20
    assert all(look['variety'] > 0.01 for look in looks.values())  # different latents, different pages


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
    pages = sorted(output.glob('inference_[0-9]*.png'))
    assert [page.name for page in pages] == [f'inference_{index:05d}_{collection}.png' for index, collection in
                                             enumerate(['manuals', 'manuals', 'slides', 'slides', 'cards', 'cards'])]
    assert Image.open(pages[0]).size == (128, 128) and Image.open(pages[0]).mode == 'RGB'
    assert (output / 'inference_grid.png').exists()
    assert len(list(output.glob('interpolation_*.png'))) == 3 * 4  # three segments, the last back to the start
    with imageio.get_reader(str(output / 'interpolation.mp4'), format='FFMPEG') as reader:
        frames = [frame for frame in reader]
    assert len(frames) == 12 and frames[0].shape[:2] == (128, 128)


def test_the_training_config_resolves_with_the_shipped_architecture():
    config = resolve_config(load_yaml(str(MODEL / 'train.yaml')))
    architecture = read_model_json(str(MODEL / '128'))['architecture']
    assert config['gan_output_size'] == architecture['output_size'] and config['latent_size'] == architecture['latent_size']
    assert filter_widths(128, config['max_filter'], config['min_filter'],
                         config['filter_num_reduction_transition_size']) == {int(size): width for size, width in
                                                                             architecture['widths'].items()}
