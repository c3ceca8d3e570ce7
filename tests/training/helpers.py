"""Test helpers: tiny page files written with the real PageWriter, TrainStage configs for a tiny model, checkpoint reading."""

import pathlib

import numpy as np

from deepzine.parameters import registry, resolve
from tests.page_files import write_page_hdf5  # noqa: F401 (re-exported for the training tests)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY_MODEL = {'latent_size': 16, 'max_filter': 16, 'min_filter': 8, 'filter_num_reduction_transition_size': 16,
              'batch_size': 4, 'random_seed': 7}


def band_pages(count, size, channels=1, seed=0):
    """uint8 [count, size, size, channels]: white pages with one dark horizontal band a quarter of the page high."""
    rng = np.random.default_rng(seed)
    pages = np.full((count, size, size, channels), 255, np.uint8)
    for page in pages:
        row = rng.integers(size // 4, size // 2)
        page[row:row + size // 4] = 30
    return pages


def train_config(tmp_path, data_hdf5, **overrides):
    """Raw YAML-like keys of a tiny run writing into tmp_path."""
    raw = dict(TINY_MODEL, train=True, data_hdf5=str(data_hdf5), log_dir=str(tmp_path / 'log'),
               samples_dir=str(tmp_path / 'samples'), gan_output_size=16, iterations_per_stage=4,
               model_save_interval_steps=1000, model_sample_interval_steps=1000, model_loss_output_interval_steps=2)
    raw.update(overrides)
    return raw


def make_plan(raw, earlier=None):
    """A TrainPlan made as the CLI makes it: raw values -> resolve (conversion, checks) -> validate."""
    from deepzine.training.stage import TrainStage
    return TrainStage(resolve(raw, registry([TrainStage]))).validate(earlier or {})


def plan_text(plan):
    from deepzine.training.plan_text import describe_train_plan
    return '\n'.join(describe_train_plan(plan))




def two_collection_pages(count, size, seed=0):
    """{'stripes': dark pages with light stripes, 'blocks': light pages with one dark block}, uint8 [count, size,
    size, 1] each: two collections whose pages differ plainly in brightness (mean about 70 against 210)."""
    rng = np.random.default_rng(seed)
    stripes = np.full((count, size, size, 1), 20, np.uint8)
    blocks = np.full((count, size, size, 1), 235, np.uint8)
    for page, block in zip(stripes, blocks):
        row = rng.integers(0, 4)
        page[row::4] = 220
        top, left = rng.integers(0, size // 2, 2)
        block[top:top + size // 4, left:left + size // 2] = 30
    return {'stripes': stripes, 'blocks': blocks}


def write_collections_hdf5(path, collections):
    """A page file of several collections ({name: uint8 pages}), numbered in that order, written by the real
    PageWriter."""
    names = list(collections)
    return write_page_hdf5(path, np.concatenate([collections[name] for name in names]),
                           collections=[(name, len(collections[name])) for name in names])
