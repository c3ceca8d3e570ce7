import os

import numpy as np
import pytest
from PIL import Image

from deepzine.parameters import ConfigError, registry, resolve
from deepzine.sampling.images import to_uint8
from deepzine.sampling.inference import InferenceStage
from deepzine.training.schedule import build_phases

LATENT_SIZE = PAGE_SIZE = 8  # the tiny models of conftest.py (checked below)
RUN = 'run-001'


def read_pages(directory, extension='png'):
    names = sorted(name for name in os.listdir(directory) if name.startswith('inference_0'))
    assert all(name.endswith(f'.{extension}') for name in names)
    return names, [np.asarray(Image.open(os.path.join(directory, name))) for name in names]


def inference_stage(build_stage, model, output_directory, **keys):
    return build_stage(InferenceStage, inference=True, inference_model_path=model.path,
                       inference_output_directory=str(output_directory), **keys)


def test_writes_exactly_n_pages_with_the_expected_names(build_stage, rgb_generator, tmp_path):
    stage = inference_stage(build_stage, rgb_generator, tmp_path / 'out', inference_output_num=5, inference_batch_size=2, random_seed=1)
    assert (rgb_generator.latent_size, rgb_generator.size) == (LATENT_SIZE, PAGE_SIZE)
    paths = stage.run()
    names, pages = read_pages(tmp_path / 'out' / RUN)
    assert names == [f'inference_{index:05d}.png' for index in range(5)]  # 5 with batches of 2: no padding page
    assert [os.path.basename(path) for path in paths] == names
    assert all(page.shape == (PAGE_SIZE, PAGE_SIZE, 3) and page.dtype == np.uint8 for page in pages)
    assert sorted(os.listdir(tmp_path / 'out' / RUN)) == names + ['inference_latents.npy']  # and nothing else


def test_same_seed_same_pages_across_batch_sizes_and_another_seed_differs(build_stage, rgb_generator, tmp_path):
    runs = {}
    for name, seed, batch_size in (('a', 3, 4), ('b', 3, 4), ('c', 3, 1), ('d', 4, 4)):
        inference_stage(build_stage, rgb_generator, tmp_path / name, inference_output_num=6,
                        inference_batch_size=batch_size, random_seed=seed).run()
        runs[name] = np.stack(read_pages(tmp_path / name / RUN)[1])
    np.testing.assert_array_equal(runs['a'], runs['b'])
    assert np.abs(runs['a'].astype(int) - runs['c']).max() <= 1  # float rounding of a different batch shape at most
    assert not np.array_equal(runs['a'], runs['d'])


def test_pages_are_the_generator_output_for_given_latents(build_stage, rgb_generator, tmp_path):
    latents = np.random.default_rng(0).standard_normal((3, LATENT_SIZE)).astype(np.float32)
    np.save(tmp_path / 'latents.npy', latents)
    expected = rgb_generator.raw_output(latents)
    assert expected.min() < -1 and expected.max() > 1  # the test model leaves [-1, 1]: clipping matters

    inference_stage(build_stage, rgb_generator, tmp_path / 'npy', inference_input_latent=str(tmp_path / 'latents.npy'),
                    inference_output_format='npy').run()
    raw_pages = [np.load(tmp_path / 'npy' / RUN / f'inference_{index:05d}.npy') for index in range(3)]
    assert sorted(os.listdir(tmp_path / 'npy' / RUN)) == [f'inference_{index:05d}.npy' for index in range(3)] + [
        'inference_latents.npy']
    np.testing.assert_array_equal(np.load(tmp_path / 'npy' / RUN / 'inference_latents.npy'), latents)
    assert all(page.dtype == np.float32 for page in raw_pages)
    np.testing.assert_allclose(np.stack(raw_pages), expected, rtol=1e-5, atol=1e-5)  # raw: unclipped

    inference_stage(build_stage, rgb_generator, tmp_path / 'png', inference_input_latent=str(tmp_path / 'latents.npy'),
                    inference_output_num=50).run()  # the file decides the count
    _, pages = read_pages(tmp_path / 'png' / RUN)
    assert len(pages) == 3
    assert np.abs(np.stack(pages).astype(int) - to_uint8(expected)).max() <= 1


def test_grayscale_model_writes_grayscale_pages_and_grid(build_stage, grayscale_generator, tmp_path):
    inference_stage(build_stage, grayscale_generator, tmp_path, inference_output_num=5, inference_grid=True, random_seed=0).run()
    with Image.open(tmp_path / RUN / 'inference_00000.png') as page:
        assert page.mode == 'L' and page.size == (PAGE_SIZE, PAGE_SIZE)
    with Image.open(tmp_path / RUN / 'inference_grid.png') as grid_picture:
        assert grid_picture.mode == 'L'
        assert grid_picture.size == (3 * PAGE_SIZE, 2 * PAGE_SIZE)  # 5 pages: 3 columns, 2 rows
        grid_pixels = np.asarray(grid_picture)
    with Image.open(tmp_path / RUN / 'inference_00004.png') as page:
        np.testing.assert_array_equal(grid_pixels[PAGE_SIZE:, PAGE_SIZE:2 * PAGE_SIZE], np.asarray(page))


def test_jpg_output_and_format_alias(build_stage, rgb_generator, tmp_path):
    inference_stage(build_stage, rgb_generator, tmp_path, inference_output_num=2, inference_output_format='jpeg', inference_grid=True).run()
    assert sorted(os.listdir(tmp_path / RUN)) == ['inference_00000.jpg', 'inference_00001.jpg', 'inference_grid.jpg',
                                                  'inference_latents.npy']
    with Image.open(tmp_path / RUN / 'inference_00001.jpg') as page:
        assert page.format == 'JPEG'


def test_a_second_run_gets_its_own_folder_and_deletes_nothing(build_stage, rgb_generator, tmp_path):
    inference_stage(build_stage, rgb_generator, tmp_path, inference_output_num=6, inference_output_format='jpg').run()
    first = sorted(os.listdir(tmp_path / RUN))
    (tmp_path / 'my_notes.png').write_bytes(b'kept')
    inference_stage(build_stage, rgb_generator, tmp_path, inference_output_num=3).run()
    assert sorted(os.listdir(tmp_path)) == ['my_notes.png', RUN, 'run-002']
    assert sorted(os.listdir(tmp_path / RUN)) == first  # the earlier pages, untouched
    assert len(read_pages(tmp_path / 'run-002')[0]) == 3


def test_latents_round_trip_from_a_grid_to_chosen_pages(build_stage, rgb_generator, tmp_path):
    inference_stage(build_stage, rgb_generator, tmp_path, inference_output_num=5, random_seed=4).run()
    saved = np.load(tmp_path / RUN / 'inference_latents.npy')
    assert saved.shape == (5, LATENT_SIZE) and saved.dtype == np.float32
    np.save(tmp_path / 'chosen.npy', saved[[3, 1]])
    inference_stage(build_stage, rgb_generator, tmp_path, inference_input_latent=str(tmp_path / 'chosen.npy')).run()
    _, first = read_pages(tmp_path / RUN)
    _, again = read_pages(tmp_path / 'run-002')
    np.testing.assert_array_equal(np.stack(again), np.stack(first)[[3, 1]])


def test_contrast_stretch_maps_each_page_to_its_own_darkest_and_lightest(build_stage, rgb_generator, tmp_path):
    inference_stage(build_stage, rgb_generator, tmp_path, inference_output_num=3, random_seed=2,
                    contrast_stretch=True).run()
    for page in read_pages(tmp_path / RUN)[1]:
        assert page.min() == 0 and page.max() == 255


def test_latents_of_the_wrong_shape_name_the_file_the_shape_and_the_latent_size(build_stage, rgb_generator, tmp_path):
    np.save(tmp_path / 'wrong.npy', np.zeros((4, LATENT_SIZE + 1), np.float32))
    stage = inference_stage(build_stage, rgb_generator, tmp_path / 'out', inference_input_latent=str(tmp_path / 'wrong.npy'))
    with pytest.raises(ConfigError, match=r'inference_input_latent=.*wrong\.npy: shape \[4, 9\] .* latent_size is 8'):
        stage.run()
    assert not (tmp_path / 'out').exists()


def test_missing_latents_file_is_refused_before_running(build_stage, rgb_generator, tmp_path):
    with pytest.raises(ConfigError, match=r'inference_input_latent=.*missing\.npy: no such file'):
        inference_stage(build_stage, rgb_generator, tmp_path, inference_input_latent=str(tmp_path / 'missing.npy'))


class TrainPlanStandIn:
    """What a sampling stage reads of the train stage's plan when that stage runs first."""

    def __init__(self, model_directory, output_size):
        self.model_directory, self.model_collections = model_directory, ()
        self.trained_phases = build_phases(output_size, 10, 4, 256, 4)


def test_no_model_is_a_config_error_naming_the_folder_before_anything_is_written(tmp_path):
    config = resolve({'inference': True, 'inference_model_directory': str(tmp_path / 'runs'), 'gan_output_size': 64,
                      'inference_output_directory': str(tmp_path / 'out')}, registry([InferenceStage]))
    stage = InferenceStage(config)
    with pytest.raises(ConfigError, match=r'inference_model_directory=.*runs: no model of gan_output_size=64 at .*runs/64; '
                                          r'it holds no model folders'):
        stage.validate({})
    plan = stage.validate({'train': TrainPlanStandIn(str(tmp_path / 'runs'), 64)})  # the same run trains it first
    assert plan.model.path == str(tmp_path / 'runs' / '64')
    with pytest.raises(ConfigError, match=r'gan_output_size=64: the train stage of this run writes models of sizes '
                                          r'\[4, 8, 16, 32\]'):
        stage.validate({'train': TrainPlanStandIn(str(tmp_path / 'runs'), 32)})
    assert os.listdir(tmp_path) == []


def test_a_directory_of_other_sizes_lists_the_sizes_it_has(build_stage, rgb_generator, tmp_path):
    model_directory = os.path.dirname(rgb_generator.path)  # holds 8/
    with pytest.raises(ConfigError, match=r'no model of gan_output_size=64 at .*/64; it has models of sizes 8: set '
                                          r'gan_output_size to one of them'):
        build_stage(InferenceStage, inference=True, inference_model_directory=model_directory, gan_output_size=64,
                    inference_output_directory=str(tmp_path))


def test_a_path_of_the_wrong_kind_says_what_to_point_at(build_stage, tmp_path):
    checkpoints = tmp_path / 'log' / 'checkpoints'
    checkpoints.mkdir(parents=True)
    (checkpoints / 'ckpt-80.index').write_bytes(b'')
    with pytest.raises(ConfigError, match=r'ckpt-80: a training checkpoint holds a whole run, not one model; point at a '
                                          r'model folder <log_dir>/<size>'):
        build_stage(InferenceStage, inference=True, inference_model_path=str(checkpoints / 'ckpt-80'),
                    inference_output_directory=str(tmp_path / 'out'))
    folder = tmp_path / 'log' / '16'
    folder.mkdir()
    (folder / 'model.json').write_text('{}')
    with pytest.raises(ConfigError, match=r'16/model\.ckpt: point at the model folder .*/log/16 itself'):
        build_stage(InferenceStage, inference=True, inference_model_path=str(folder / 'model.ckpt'),
                    inference_output_directory=str(tmp_path / 'out'))


def test_bad_values_are_refused_by_the_registry():
    table = registry([InferenceStage])
    with pytest.raises(ConfigError, match='inference_output_format=.*png, jpg, npy'):
        resolve({'inference_output_format': 'gif'}, table)
    with pytest.raises(ConfigError, match='inference_output_num=0: must be positive'):
        resolve({'inference_output_num': 0}, table)


def test_plan_and_output_directory(build_stage, rgb_generator, tmp_path):
    stage = inference_stage(build_stage, rgb_generator, tmp_path, inference_output_num=12, random_seed=9, inference_grid=True)
    text = stage.describe()
    assert rgb_generator.path in text
    assert '12 random latents (random_seed 9)' in text
    assert 'run-001/inference_00000.png ... inference_00011.png' in text and 'inference_latents.npy' in text
    assert 'inference_grid.png' in text
    assert stage.stage.output_directory(stage.plan) == str(tmp_path / RUN)
    assert not any(tmp_path.iterdir())  # planning writes nothing


def test_model_found_by_directory_and_size_or_by_log_dir(build_stage, rgb_generator, tmp_path):
    model_directory, size = os.path.split(rgb_generator.path)  # <directory>/8, as training writes <log_dir>/<size>
    for keys in ({'inference_model_directory': model_directory}, {'log_dir': model_directory}):
        output_directory = tmp_path / next(iter(keys))
        build_stage(InferenceStage, inference=True, gan_output_size=int(size), inference_output_num=2, random_seed=0,
                    inference_output_directory=str(output_directory), **keys).run()
        assert sorted(os.listdir(output_directory / RUN)) == ['inference_00000.png', 'inference_00001.png',
                                                              'inference_latents.npy']


def test_a_training_run_folder_samples_with_its_ema_generator(build_stage, tmp_path):
    """A native model folder whose generator and EMA generator differ: the pages must come from the EMA one."""
    import tensorflow as tf

    from deepzine.model.architecture import Architecture
    from deepzine.model.model_folder import save_model_folder
    from deepzine.model.networks import build_networks
    architecture = Architecture(latent_size=LATENT_SIZE, channels=3, output_size=8, widths={4: 8, 8: 8})
    generator, generator_ema, _ = build_networks(architecture)
    for weight in generator_ema.weights:
        weight.assign(weight * 0.5 + 0.1)
    save_model_folder(str(tmp_path / 'log' / '8'), architecture, 8, generator_ema, generator=generator)
    latents = np.random.default_rng(2).standard_normal((3, LATENT_SIZE)).astype(np.float32)
    np.save(tmp_path / 'latents.npy', latents)

    build_stage(InferenceStage, inference=True, log_dir=str(tmp_path / 'log'), gan_output_size=8,
                inference_input_latent=str(tmp_path / 'latents.npy'), inference_output_format='npy',
                inference_output_directory=str(tmp_path / 'out')).run()
    pages = np.stack([np.load(tmp_path / 'out' / RUN / f'inference_{index:05d}.npy') for index in range(3)])
    np.testing.assert_allclose(pages, generator_ema(tf.constant(latents)).numpy(), rtol=1e-4, atol=1e-5)
    assert not np.allclose(pages, generator(tf.constant(latents)).numpy(), atol=1e-3)
