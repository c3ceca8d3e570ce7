"""Fine-tuning a finished model: a converted ORIGINAL DeepZine 16x16 checkpoint trained on new pages, stable phase only."""

import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from deepzine.model.legacy import convert_legacy
from deepzine.model.model_folder import load_model_folder
from deepzine.parameters import ConfigError
from deepzine.training.trainer import train
from tests.training.helpers import band_pages, make_plan, plan_text, train_config, write_page_hdf5

ORIGINAL_16 = pathlib.Path(__file__).resolve().parents[1] / 'fixtures' / 'legacy_deepzine' / 'res16'
LATENTS = np.random.default_rng(0).standard_normal((4, 128)).astype(np.float32)


@pytest.fixture
def converted_run(tmp_path):
    convert_legacy(str(ORIGINAL_16), str(tmp_path / 'log' / '16'), size=16)
    pages = write_page_hdf5(tmp_path / 'rgb.hdf5', band_pages(16, 16, channels=3))
    raw = train_config(tmp_path, pages, gan_output_size=16, gan_starting_size=16, iterations_per_stage=3)
    return tmp_path, raw


def generated(folder):
    _, size, generator, _, description = load_model_folder(str(folder))
    return generator(tf.constant(LATENTS), size=size).numpy(), description


@pytest.mark.slow
def test_a_converted_original_model_trains_its_stable_phase_and_keeps_its_architecture(converted_run):
    tmp_path, raw = converted_run
    before, original = generated(tmp_path / 'log' / '16')
    plan = make_plan(raw)
    text = plan_text(plan)
    assert '16x16 -> 16x16' in text and '1 phases, 3 steps' in text and 'fine-tune the model in' in text
    assert 'lr 0.0001 (automatic)' in text  # the original's networks have no equalized learning rate
    train(plan)
    assert sorted(os.listdir(tmp_path / 'samples')) == ['samples_16']  # no fade-in, no lower sizes
    after, tuned = generated(tmp_path / 'log' / '16')
    assert tuned['architecture'] == original['architecture'] and not tuned['architecture']['equalized_learning_rate']
    assert 0 < np.abs(after - before).mean() < 0.5  # trained a little, from the original weights
    assert (tmp_path / 'log' / 'saved_model' / 'saved_model.pb').is_file()
    train(make_plan(raw))  # a second run finds the phase done and leaves the model as it is
    np.testing.assert_array_equal(generated(tmp_path / 'log' / '16')[0], after)


def test_fine_tuning_needs_pages_with_the_model_channels(converted_run):
    tmp_path, raw = converted_run
    grey = write_page_hdf5(tmp_path / 'grey.hdf5', band_pages(16, 16, channels=1))
    with pytest.raises(ConfigError, match='the model makes 3-channel pages but the page file holds 1-channel'):
        make_plan(dict(raw, data_hdf5=str(grey)))  # refused in the checks, before anything runs


def test_without_a_model_at_the_starting_size_the_lower_one_is_required(tmp_path):
    pages = write_page_hdf5(tmp_path / 'rgb.hdf5', band_pages(16, 16, channels=3))
    with pytest.raises(ConfigError, match=r'gan_starting_size=16: the lower sizes must be trained already'):
        make_plan(train_config(tmp_path, pages, gan_output_size=16, gan_starting_size=16))
