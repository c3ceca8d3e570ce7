import glob
import json
import os

import numpy as np
import pytest

from deepzine.data.store import PageStore
from deepzine.evaluation.evaluate import evaluate_generator
from deepzine.model.loading import PageGenerator
from deepzine.parameters import ConfigError

LATENT_SIZE = 4


def copying_generator(pages):
    """Returns real pages (chosen by the latent): a perfectly memorizing GAN."""
    def generate_batch(latents, collections):
        chosen = (np.abs(np.asarray(latents)[:, 0]) * 1e6).astype(np.int64) % len(pages)
        return pages[chosen].astype(np.float32) / 127.5 - 1
    return PageGenerator(generate_batch, LATENT_SIZE, pages.shape[1], pages.shape[3], batch_size=5, description='copier')


def noise_generator(size, channels):
    def generate_batch(latents, collections):
        rng = np.random.default_rng(int(np.abs(np.asarray(latents)).sum() * 1e6))
        return rng.uniform(-1, 1, (len(latents), size, size, channels)).astype(np.float32)
    return PageGenerator(generate_batch, LATENT_SIZE, size, channels, batch_size=5, description='noise')


def tensorboard_scalars(folder):
    """{tag: (step, value)} from the event files, read with TensorFlow alone."""
    import tensorflow as tf
    scalars = {}
    for path in glob.glob(os.path.join(folder, 'events.out.tfevents.*')):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == 'scalars'
                scalars[value.tag] = (event.step, float(tf.make_ndarray(value.tensor)))
    return scalars


def test_a_copying_generator_scores_near_the_baseline_and_is_caught_copying(pages_hdf5, tmp_path):
    path, pages = pages_hdf5
    with PageStore(path) as store:
        copier = evaluate_generator(copying_generator(pages), store, 32, str(tmp_path / 'copier'), step=7,
                                    image_num=16, seed=1, memorization_num=4)
        noise = evaluate_generator(noise_generator(32, 3), store, 32, str(tmp_path / 'noise'), step=7,
                                   image_num=16, seed=1, memorization_num=4)
    assert copier['swd']['generated_vs_real']['mean'] < 2 * copier['swd']['real_vs_real']['mean']
    assert noise['swd']['generated_vs_real']['mean'] > 3 * noise['swd']['real_vs_real']['mean']
    assert copier['swd']['real_vs_real'] == noise['swd']['real_vs_real']  # same seed: same real pages, patches, directions
    assert [entry['distance'] for entry in copier['nearest']['generated']] == [0.0] * 4
    assert noise['nearest']['summary']['generated_median_distance'] > 1.5 * noise['nearest']['summary']['real_to_real_median_distance']


def test_files_json_schema_and_tensorboard_scalars(pages_hdf5, tmp_path):
    path, pages = pages_hdf5
    with PageStore(path) as store:
        result = evaluate_generator(copying_generator(pages), store, 32, str(tmp_path), step=120,
                                    image_num=10, seed=0, memorization_num=3)
    folder = tmp_path / 'metrics'
    assert sorted(os.path.basename(name) for name in glob.glob(str(folder / '*.*'))
                  if 'tfevents' not in name) == ['nearest_32_step120.json', 'nearest_32_step120.png', 'swd_32_step120.json']
    with open(folder / 'swd_32_step120.json') as handle:
        report = json.load(handle)
    assert report == json.loads(json.dumps(result['swd']))
    assert report['size'] == 32 and report['step'] == 120 and report['image_num'] == 10 and report['seed'] == 0
    assert report['settings']['pyramid_sizes'] == [32, 16] and report['settings']['patch_size'] == 7
    assert set(report['generated_vs_real']['levels']) == {'32', '16'}
    with open(folder / 'nearest_32_step120.json') as handle:
        check = json.load(handle)
    assert check['compare_size'] == 32 and check['grid'] == 'nearest_32_step120.png' and len(check['generated']) == 3
    source = check['generated'][0]['nearest_real_source']
    assert source['file'] == 'synthetic.pdf' and source['page_number'] == check['generated'][0]['nearest_real_index'] + 1
    assert len(check['real_to_real']) == 3
    scalars = tensorboard_scalars(str(folder))
    assert scalars['swd_x1e3_32/generated_vs_real_mean'] == (120, pytest.approx(report['generated_vs_real']['mean']))
    assert {'swd_x1e3_32/real_vs_real_level_16', 'nearest_32/generated_median_distance'} <= set(scalars)


def test_same_seed_same_numbers_and_fewer_pages_than_asked(pages_hdf5, tmp_path):
    path, pages = pages_hdf5
    with PageStore(path) as store:
        first = evaluate_generator(noise_generator(32, 3), store, 32, str(tmp_path / 'a'), None, 30, 4)
        second = evaluate_generator(noise_generator(32, 3), store, 32, str(tmp_path / 'b'), None, 30, 4)
    assert first['swd']['generated_vs_real'] == second['swd']['generated_vs_real']
    assert first['swd']['image_num'] == 20 and first['swd']['image_num_requested'] == 30  # 40 pages: two halves of 20
    assert first['nearest'] is None
    assert len(glob.glob(str(tmp_path / 'a' / 'metrics' / 'swd_32_*.json'))) == 1


def test_memorization_only(pages_hdf5, tmp_path):
    path, pages = pages_hdf5
    with PageStore(path) as store:
        result = evaluate_generator(copying_generator(pages), store, 32, str(tmp_path), 1, image_num=0, memorization_num=2)
    assert result['swd'] is None and len(result['nearest']['generated']) == 2


def test_refuses_a_generator_that_does_not_fit_the_pages(pages_hdf5, tmp_path):
    path, _ = pages_hdf5
    with PageStore(path) as store:
        with pytest.raises(ConfigError, match='1-channel pages, the HDF5 holds 3-channel'):
            evaluate_generator(noise_generator(32, 1), store, 32, str(tmp_path), 0, 4)
        with pytest.raises(ConfigError, match='gan_output_size=32'):
            evaluate_generator(noise_generator(16, 3), store, 32, str(tmp_path), 0, 4)
        with pytest.raises(ConfigError, match='holds sizes 4..32: evaluating the 64px generator'):
            evaluate_generator(noise_generator(64, 3), store, 64, str(tmp_path), 0, 4)


def test_grid_pages_are_capped_in_size(pages_hdf5, tmp_path, monkeypatch):
    from PIL import Image
    from deepzine.evaluation import evaluate, nearest
    monkeypatch.setattr(evaluate, 'GRID_PAGE_SIZE_LIMIT', 16)
    path, pages = pages_hdf5
    with PageStore(path) as store:
        result = evaluate_generator(copying_generator(pages), store, 32, str(tmp_path), 2, image_num=0, memorization_num=2)
    picture = Image.open(tmp_path / 'metrics' / result['nearest']['grid'])
    assert picture.size == (2 * (2 * 18 + 2 * nearest.PAIR_MARGIN), 18 + 2 * nearest.PAIR_MARGIN)
    assert result['nearest']['grid_layout'].endswith('pages at 16px')
