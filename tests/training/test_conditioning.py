"""One model of two collections: trained conditional, it draws each collection's pages when asked; its sample grids,
model folders, SavedModel, inference, movies and evaluation all carry the collection."""

import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from deepzine.data.store import PageStore
from deepzine.model.loading import load_generator, load_saved_model, locate_model
from deepzine.parameters import ConfigError
from deepzine.training.trainer import train

from tests.training.helpers import make_plan, plan_text, train_config, two_collection_pages, write_collections_hdf5

NAMES = ['stripes', 'blocks']


@pytest.fixture(scope='module')
def two_collections(tmp_path_factory):
    return write_collections_hdf5(tmp_path_factory.mktemp('pages') / 'two.hdf5', two_collection_pages(32, 8))


@pytest.fixture(scope='module')
def conditional_run(tmp_path_factory, two_collections):
    """A tiny conditional run 4x4 -> 8x8 on the two collections: its folder and config."""
    folder = tmp_path_factory.mktemp('conditional')
    raw = train_config(folder, two_collections, gan_output_size=8, iterations_per_stage=200, batch_size=8,
                       generator_ema_beta=0.9, model_loss_output_interval_steps=100, model_sample_interval_steps=200,
                       random_seed=3)
    train(make_plan(raw))
    return folder, raw


def brightness(pages):
    return float(np.mean(pages))


def test_the_plan_is_conditional_when_the_page_file_holds_several_collections(two_collections, tmp_path):
    text = plan_text(make_plan(train_config(tmp_path, two_collections, gan_output_size=8)))
    assert ('2 collections: stripes (32 pages), blocks (32 pages); conditional (a page is drawn for a collection); '
            'training draws each collection as often as it has pages; conditioning adds ') in text
    assert 'of the arithmetic' in text
    plain = make_plan(train_config(tmp_path, two_collections, gan_output_size=8, conditional=False))
    assert not plain.architecture.conditional
    assert 'the networks are not conditioned on them' in plan_text(plain)
    balanced = plan_text(make_plan(train_config(tmp_path, two_collections, gan_output_size=8, collection_balance=True)))
    assert 'training draws each collection equally often' in balanced


def test_a_conditional_model_draws_each_collection_s_pages(conditional_run):
    """The statistic an unconditional model fails: pages drawn for the dark collection are darker."""
    folder, _ = conditional_run
    generator = load_generator(locate_model(str(folder / 'log'), None, 8))
    assert generator.collection_names == tuple(NAMES)
    latents = np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    stripes, blocks = (generator.generate(latents, generator.one_hot([number] * 64)) for number in (0, 1))
    with PageStore(str(conditional_run[1]['data_hdf5'])) as store:
        real = store.read(8, np.arange(64)).astype(np.float32) / 127.5 - 1
    real_gap = brightness(real[32:]) - brightness(real[:32])
    assert brightness(blocks) - brightness(stripes) > 0.5 * real_gap, (brightness(stripes), brightness(blocks))


def test_sample_grids_have_a_row_per_collection(conditional_run):
    folder, _ = conditional_run
    grid = Image.open(folder / 'samples' / 'samples_8' / 'step_000200.png')
    reals = Image.open(folder / 'samples' / 'samples_8' / 'reals.png')
    assert grid.size == reals.size == (8 * 8, 2 * 8)  # 8 pages a row, one row per collection
    rows = np.asarray(reals, np.float32)
    assert rows[:8].mean() < rows[8:].mean()  # the real stripes row, then the real blocks row


def test_the_model_folder_and_saved_model_carry_the_collections(conditional_run):
    folder, _ = conditional_run
    with open(folder / 'log' / '8' / 'model.json', encoding='utf-8') as handle:
        description = json.load(handle)
    assert description['collections'] == NAMES and description['architecture']['collection_count'] == 2
    exported = load_saved_model(str(folder / 'log' / 'saved_model'))
    assert exported.collection_names == tuple(NAMES)
    latents = np.zeros((4, 16), np.float32)
    native = load_generator(locate_model(str(folder / 'log'), None, 8))
    for number in (0, 1):
        np.testing.assert_allclose(exported.generate(latents, exported.one_hot([number] * 4)),
                                   native.generate(latents, native.one_hot([number] * 4)), rtol=1e-4, atol=1e-5)
    signature = tf.saved_model.load(str(folder / 'log' / 'saved_model')).signatures['serving_default']
    assert set(signature.structured_input_signature[1]) == {'latents', 'collections'}


def test_a_run_of_other_collections_is_refused_and_an_unconditional_model_fine_tunes_unconditioned(
        conditional_run, tmp_path):
    import shutil
    folder, raw = conditional_run
    other = write_collections_hdf5(tmp_path / 'other.hdf5', {'cards': two_collection_pages(8, 8)['blocks'],
                                                             'slides': two_collection_pages(8, 8)['stripes']})
    with pytest.raises(ConfigError, match=r'trained on the collections stripes, blocks, but data_hdf5=.*other.hdf5 '
                                          r'holds cards, slides'):
        make_plan(dict(raw, data_hdf5=other, iterations_per_stage=300))
    # An unconditional model fine-tuned on the two collections keeps its own networks: it learns them together.
    plain_raw = train_config(tmp_path / 'plain', raw['data_hdf5'], gan_output_size=8, conditional=False)
    train(make_plan(plain_raw))
    shutil.copytree(tmp_path / 'plain' / 'log' / '8', tmp_path / 'fine' / 'log' / '8')
    fine = train_config(tmp_path / 'fine', raw['data_hdf5'], gan_output_size=8, gan_starting_size=8)
    plan = make_plan(fine)  # conditional unset: the model's own networks decide
    assert plan.start.kind == 'fine-tune' and not plan.architecture.conditional
    assert 'the networks are not conditioned on them, so they learn every collection\'s pages together' in plan_text(plan)
    with pytest.raises(ConfigError, match='conditional=true: fine-tune the model in .* which are unconditional'):
        make_plan(dict(fine, conditional=True))
    train(plan)
    assert json.loads((tmp_path / 'fine' / 'log' / '8' / 'model.json').read_text())['architecture'][
        'collection_count'] == 1


def test_inference_names_each_page_s_collection_and_a_movie_travels_between_them(conditional_run, tmp_path,
                                                                                   capsys):
    from deepzine.cli import main
    folder, _ = conditional_run
    config = tmp_path / 'sample.yaml'
    output = tmp_path / 'out'
    config.write_text(f'inference: true\ninference_model_directory: {folder / "log"}\ngan_output_size: 8\n'
                      f'inference_output_num: 4\ninference_output_directory: {output}\nrandom_seed: 1\n'
                      f'inference_grid: true\ninterpolation: true\ninterpolation_frames: 8\n'
                      f'interpolation_vector_num: 2\n')
    assert main([str(config)]) == 0
    run = output / 'run-001'
    assert sorted(name for name in os.listdir(run) if name.startswith('inference_0')) == [
        'inference_00000_stripes.png', 'inference_00001_stripes.png', 'inference_00002_blocks.png',
        'inference_00003_blocks.png']
    saved = json.loads((run / 'inference_collections.json').read_text())
    assert saved == {'collections': NAMES, 'rows': ['stripes', 'stripes', 'blocks', 'blocks']}
    assert Image.open(run / 'inference_grid.png').size == (2 * 8, 2 * 8)  # a row per collection
    # The default movie tours the collections: from stripes (dark) to blocks (light).
    frames = [np.asarray(Image.open(run / f'interpolation_{index:05d}.png'), np.float32).mean() for index in range(9)]
    assert frames[0] < frames[-1] - 20, frames

    # The saved latents and their collections reproduce the same pages; an unknown name stops before any work.
    again = tmp_path / 'again.yaml'
    again.write_text(f'inference: true\ninference_model_directory: {folder / "log"}\ngan_output_size: 8\n'
                     f'inference_input_latent: {run / "inference_latents.npy"}\n'
                     f'inference_output_directory: {output}\n')
    assert main([str(again)]) == 0
    for name in ('inference_00000_stripes.png', 'inference_00003_blocks.png'):
        np.testing.assert_array_equal(np.asarray(Image.open(run / name)),
                                      np.asarray(Image.open(output / 'run-002' / name)))
    capsys.readouterr()
    assert main([str(config), '--set', 'inference_collections=[music]']) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == ["error: inference_collections=['music']: music not a collection of the model; it knows "
                     "stripes, blocks (or all)"]
    assert not (output / 'run-003').exists()


def test_evaluation_of_a_conditional_model_adds_the_collection_matrix(conditional_run, caplog):
    """Whether this tiny model conditions by SWD (which normalises brightness away) is not the point here:
    tests/evaluation/test_conditioning.py checks the verdict on generators whose answer is known."""
    from deepzine.evaluation.evaluate import evaluate_generator
    folder, raw = conditional_run
    generator = load_generator(locate_model(str(folder / 'log'), None, 8))
    with PageStore(raw['data_hdf5']) as store, caplog.at_level(logging.INFO, logger='deepzine'):
        report = evaluate_generator(generator, store, 8, str(folder / 'log'), image_num=16, seed=0)
    matrix = report['swd']['collections']
    assert matrix['collections'] == NAMES and matrix['image_num'] == 16
    assert np.shape(matrix['generated_vs_real']) == (2, 2) and len(matrix['real_vs_real']) == 2
    assert 'SWD x1e3 of pages generated for each collection (rows)' in caplog.text
    saved = json.loads(next((folder / 'log' / 'metrics').glob('swd_8_*.json')).read_text())
    assert saved['collections'] == matrix
