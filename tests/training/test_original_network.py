"""pretrained_model: true with train: true trains the ORIGINAL DeepZine's own network, from scratch or from its checkpoint."""

import json
import os
import pathlib
import shutil

import numpy as np
import pytest

from deepzine.model.architecture import filter_widths
from deepzine.model.legacy import read_legacy_architecture
from deepzine.parameters import ConfigError
from deepzine.training.trainer import train
from tests.training.helpers import band_pages, make_plan, plan_text, train_config, write_page_hdf5

ORIGINAL_16 = pathlib.Path(__file__).resolve().parents[1] / 'fixtures' / 'legacy_deepzine' / 'res16'


@pytest.mark.slow
def test_a_fresh_run_builds_the_original_network(band_hdf5, tmp_path):
    raw = train_config(tmp_path, band_hdf5, pretrained_model=True, gan_output_size=8, iterations_per_stage=2,
                       max_filter=64, min_filter=1, filter_num_reduction_transition_size=16)
    plan = make_plan(raw)
    architecture = plan.architecture
    assert (architecture.equalized_learning_rate, architecture.normalize_latent, architecture.minibatch_group_size) == (
        False, False, 0)
    assert architecture.widths == filter_widths(8, 64, 1, 16, original_pretrained=True) == {4: 64, 8: 64}
    text = plan_text(plan)
    assert 'the ORIGINAL DeepZine network' in text and 'lr 0.0001 (automatic)' in text
    train(plan)
    saved = json.loads((tmp_path / 'log' / '8' / 'model.json').read_text())['architecture']
    assert saved['equalized_learning_rate'] is False and saved['normalize_latent'] is False
    assert saved['minibatch_group_size'] == 0


@pytest.mark.slow
def test_an_original_checkpoint_in_log_dir_is_fine_tuned_and_kept(tmp_path):
    import tensorflow as tf
    from deepzine.model.legacy import load_legacy_networks
    from deepzine.model.model_folder import load_model_folder
    shutil.copytree(ORIGINAL_16, tmp_path / 'log' / '16')
    pages = write_page_hdf5(tmp_path / 'rgb.hdf5', band_pages(16, 16, channels=3))
    raw = train_config(tmp_path, pages, pretrained_model=True, gan_output_size=16, gan_starting_size=16,
                       iterations_per_stage=3)
    plan = make_plan(raw)
    assert plan.start.original_checkpoint and plan.architecture == read_legacy_architecture(ORIGINAL_16)
    assert 'fine-tune the ORIGINAL DeepZine checkpoint' in plan_text(plan)
    train(plan)
    kept = tmp_path / 'log' / '16_original'
    assert sorted(os.listdir(kept)) == sorted(os.listdir(ORIGINAL_16))  # the user's files, moved aside, not lost
    latents = tf.constant(np.random.default_rng(0).standard_normal((4, 128)).astype(np.float32))
    _, original_generator, _ = load_legacy_networks(kept)
    _, _, tuned_generator, _, description = load_model_folder(str(tmp_path / 'log' / '16'))
    assert description['architecture']['widths'] == {str(size): width for size, width in plan.architecture.widths.items()}
    difference = np.abs(tuned_generator(latents, size=16).numpy() - original_generator(latents).numpy()).mean()
    assert 0 < difference < 0.5  # trained a little, starting from the original weights
    train(make_plan(raw))  # a re-run resumes from its checkpoint: the phase is done


def test_training_never_replaces_an_original_checkpoint_it_does_not_start_from(band_hdf5, tmp_path):
    shutil.copytree(ORIGINAL_16, tmp_path / 'log' / '8')
    with pytest.raises(ConfigError, match=r'log/8: holds an original DeepZine checkpoint, which training would replace '
                                          r'with its 8x8 model; use another log_dir'):
        make_plan(train_config(tmp_path, band_hdf5, gan_output_size=16))
