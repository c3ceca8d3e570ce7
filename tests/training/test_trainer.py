"""End to end on a tiny page file: every phase, every output, resume, refusal of another model, NaN stop, learning."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from deepzine.parameters import ConfigError
from deepzine.training.checkpoints import read_checkpoint_description, read_checkpoint_position
from deepzine.errors import TrainingDiverged
from deepzine.training.trainer import train

from tests.training.helpers import band_pages, make_plan, plan_text, train_config, write_page_hdf5

PHASE_FOLDERS = ['samples_4', 'samples_8_Transition', 'samples_8', 'samples_16_Transition', 'samples_16']


class LogLines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory, band_hdf5):
    """One tiny run 4x4 -> 16x16, 4 steps per phase, saving and sampling every 2 steps; its folder and log lines."""
    folder = tmp_path_factory.mktemp('run')
    raw = train_config(folder, band_hdf5, model_save_interval_steps=2, model_sample_interval_steps=2)
    handler = LogLines()
    logging.getLogger('deepzine').addHandler(handler)
    logging.getLogger('deepzine').setLevel(logging.INFO)
    try:
        train(make_plan(raw))
    finally:
        logging.getLogger('deepzine').removeHandler(handler)
    return folder, raw, handler.lines


def test_every_phase_runs_once_and_ends_in_a_checkpoint(finished_run):
    folder, _, lines = finished_run
    started = [line for line in lines if line.startswith('phase ')]
    assert [line.split(':')[1].split(',')[0].strip() for line in started] == [
        '4x4 stable', '8x8 fade', '8x8 stable', '16x16 fade', '16x16 stable']
    latest = tf.train.latest_checkpoint(str(folder / 'log' / 'checkpoints'))
    assert read_checkpoint_position(latest) == (16, 'stable', 4, 20)
    description = read_checkpoint_description(latest)
    assert description['channels'] == 1 and description['config']['max_filter'] == 16
    assert (folder / 'log' / 'checkpoints' / 'run_config.yaml').is_file()
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(folder / 'log' / 'checkpoints' / 'run_config.yaml').st_mode & 0o777 == 0o666 & ~umask  # not private
    assert any('D ' in line and 'img/s' in line for line in lines)


def test_a_healthy_run_logs_its_health_and_never_rolls_back(finished_run):
    folder, _, lines = finished_run
    assert not [line for line in lines if 'rolled back' in line]
    assert any(line.startswith('16x16 stable step 4/4: ') and '| health samples ' in line for line in lines)
    raw = finished_run[1]
    assert ('collapse guard: on an alarm roll back to the newest healthy checkpoint (again in a phase: to its start), '
            'learning rate x0.25 each time and carried into the next phases, at most 4 times per phase'
            ) in plan_text(make_plan(raw))
    assert ('learning rate x0.25 each time (at most the automatic 0.001) and carried into the next phases'
            in plan_text(make_plan(dict(raw, learning_rate=0.2))))
    assert 'collapse guard off: a NaN or infinite loss stops training' in plan_text(
        make_plan(dict(raw, collapse_guard=False)))


def test_model_folders_per_resolution_load_for_sampling(finished_run):
    from deepzine.model.loading import load_generator, locate_model
    from deepzine.model.model_folder import load_model_folder
    folder = finished_run[0]
    for size in (4, 8, 16):
        generator = load_generator(locate_model(str(folder / 'log'), None, size))
        pages = generator.generate(np.zeros((2, 16), np.float32))
        assert pages.shape == (2, size, size, 1) and np.all(np.isfinite(pages))
    _, _, _, discriminator, description = load_model_folder(str(folder / 'log' / '16'), with_discriminator=True)
    assert discriminator is not None and set(description['networks']) == {'generator', 'generator_ema', 'discriminator'}


def test_sample_grids_for_every_phase(finished_run):
    samples = finished_run[0] / 'samples'
    assert sorted(os.listdir(samples)) == sorted(PHASE_FOLDERS)
    for name in PHASE_FOLDERS:
        files = set(os.listdir(samples / name))
        assert {'step_000002.png', 'step_000004.png'} <= files
        if name.endswith('_Transition'):
            assert {'reals_step_000002.png', 'reals_step_000004.png'} <= files  # the blend changes during a fade
        else:
            assert 'reals.png' in files


def test_tensorboard_events_hold_losses_alpha_speed_and_images(finished_run):
    folder = finished_run[0] / 'log' / 'tensorboard'
    tags = set()
    for name in os.listdir(folder):
        for event in tf.compat.v1.train.summary_iterator(str(folder / name)):
            tags.update(value.tag for value in event.summary.value)
    assert {'loss/discriminator', 'loss/generator', 'loss/gradient_penalty', 'schedule/alpha',
            'speed/images_per_second', 'samples/samples_16', 'reals/samples_8_Transition',
            'health/sample_diversity', 'health/learning_rate_factor'} <= tags


def test_saved_model_loads_with_tensorflow_alone(finished_run):
    path = finished_run[0] / 'log' / 'saved_model'
    script = ('import sys, numpy, tensorflow as tf\n'
              f'model = tf.saved_model.load({str(path)!r})\n'
              'images = model.signatures["serving_default"](latents=tf.random.normal([3, 16]))["images"].numpy()\n'
              'assert "deepzine" not in sys.modules\n'
              'print(images.shape, bool(numpy.isfinite(images).all()))\n')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=120,
                            cwd=str(path.parent), env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == '(3, 16, 16, 1) True'


def test_running_again_on_a_finished_run_trains_nothing(finished_run, caplog):
    folder, raw, _ = finished_run
    with caplog.at_level(logging.INFO, logger='deepzine'):
        train(make_plan(raw))
    assert 'every phase is already trained' in caplog.text
    assert 'phase ' not in ' '.join(record.getMessage()[:6] for record in caplog.records)


def test_a_log_dir_of_other_model_parameters_is_refused_before_anything_runs(finished_run):
    folder, raw, _ = finished_run
    with pytest.raises(ConfigError, match=r"widths: saved \{4: 16, 8: 16, 16: 8\}, now \{4: 32, 8: 32, 16: 16\}\).*new log_dir"):
        make_plan(dict(raw, max_filter=32))


def test_data_with_other_channels_is_refused_before_anything_runs(finished_run, tmp_path):
    folder, raw, _ = finished_run
    rgb = write_page_hdf5(tmp_path / 'rgb.hdf5', band_pages(8, 16, channels=3))
    with pytest.raises(ConfigError, match='channels: saved 1, now 3'):
        make_plan(dict(raw, data_hdf5=str(rgb)))


def test_training_can_start_higher_from_a_lower_resolution_model(finished_run, tmp_path):
    """gan_starting_size: the 8x8 fade-in begins with the 4x4 model folder's weights (no training needed to check)."""
    import shutil
    from deepzine.data.store import PageStore
    from deepzine.model.model_folder import load_model_folder
    from deepzine.training.starting_point import GROW, load_starting_networks
    from deepzine.training.trainer import Trainer
    folder, raw, _ = finished_run
    shutil.copytree(folder / 'log' / '4', tmp_path / 'log' / '4')
    plan = make_plan(dict(raw, log_dir=str(tmp_path / 'log'), gan_starting_size=8))
    assert (plan.start.kind, plan.start.phase_index, plan.start.step) == (GROW, 1, 0)
    with PageStore(plan.data.path) as store:
        trainer = Trainer(plan, store)
        load_starting_networks(plan.start, trainer.models, plan.architecture)
    _, _, saved_ema, saved_discriminator, _ = load_model_folder(str(folder / 'log' / '4'), with_discriminator=True)
    for mine, saved in [(trainer.models.generator_ema, saved_ema), (trainer.models.discriminator, saved_discriminator)]:
        for variable, expected in zip(mine.weights, saved.weights):
            np.testing.assert_array_equal(variable.numpy(), expected.numpy())


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint_without_the_guard(band_hdf5, tmp_path):
    raw = train_config(tmp_path, band_hdf5, gan_output_size=4, iterations_per_stage=2, model_loss_output_interval_steps=1,
                       collapse_guard=False)
    train(make_plan(raw))
    checkpoints = tmp_path / 'log' / 'checkpoints'
    good = tf.train.latest_checkpoint(str(checkpoints))
    # Same run, continued with an absurd step size: the weights explode within a step or two.
    with pytest.raises(TrainingDiverged, match=r'diverged at 4x4 stable step \d+: .*last good checkpoint is .*ckpt-2'):
        train(make_plan(dict(raw, iterations_per_stage=8, learning_rate=1e12)))
    assert tf.train.latest_checkpoint(str(checkpoints)) == good


@pytest.mark.slow
def test_generator_moves_toward_the_data_in_a_short_run(tmp_path):
    """White pages with one dark band: after 600 steps at 4x4 the page statistics are close to the real ones.

    An untrained generator gives about mean -0.3 and a flat row profile (distance ~2 from the real profile).
    """
    from deepzine.data.store import PageStore
    from deepzine.model.loading import load_generator, locate_model
    hdf5 = write_page_hdf5(tmp_path / 'bands.hdf5', band_pages(64, 16))
    raw = train_config(tmp_path, hdf5, gan_output_size=4, iterations_per_stage=600, batch_size=8,
                       generator_ema_beta=0.9, model_loss_output_interval_steps=100, random_seed=2)
    train(make_plan(raw))
    location = locate_model(str(tmp_path / 'log'), None, 4)
    fakes = load_generator(location).generate(np.random.default_rng(0).standard_normal((256, 16)))
    with PageStore(hdf5) as store:
        reals = store.read(4, np.arange(64)).astype(np.float32) / 127.5 - 1
    assert abs(fakes.mean() - reals.mean()) < 0.15
    assert abs(fakes.std() - reals.std()) < 0.25
    row_profile_distance = np.linalg.norm(fakes.mean(axis=(0, 2, 3)) - reals.mean(axis=(0, 2, 3)))
    assert row_profile_distance < 0.6, (fakes.mean(axis=(0, 2, 3)), reals.mean(axis=(0, 2, 3)))


@pytest.mark.slow
def test_evaluation_at_each_phase_end_when_asked(band_hdf5, tmp_path):
    raw = train_config(tmp_path, band_hdf5, gan_output_size=4, iterations_per_stage=2, evaluate_during_training=True,
                       evaluation_image_num=8, memorization_check_num=4)
    train(make_plan(raw))
    written = sorted(os.listdir(tmp_path / 'log' / 'metrics'))
    assert 'swd_4_step2.json' in written and 'nearest_4_step2.json' in written


@pytest.mark.slow
def test_a_damaged_page_file_is_skipped_then_refused_in_one_line(tmp_path, caplog):
    """A few unreadable pages: training goes on and says so; most of them: one line asking for a rebuild."""
    from deepzine.data.store import DamagedPageFile
    from tests.page_files import overwrite_chunk
    few = write_page_hdf5(tmp_path / 'few.hdf5', band_pages(32, 4))
    overwrite_chunk(str(few), 'data_4', 3)
    with caplog.at_level(logging.WARNING, logger='deepzine'):
        train(make_plan(train_config(tmp_path / 'a', few, gan_output_size=4, iterations_per_stage=20,
                                     model_loss_output_interval_steps=10)))
    assert 'unreadable page(s) of' in caplog.text and 'skipped so far' in caplog.text
    many = write_page_hdf5(tmp_path / 'many.hdf5', band_pages(32, 4))
    for chunk in range(20):
        overwrite_chunk(str(many), 'data_4', chunk, seed=chunk)
    with pytest.raises(DamagedPageFile, match=r'damaged, .* unreadable .*rebuild it with load_data \(overwrite: true\)'):
        train(make_plan(train_config(tmp_path / 'b', many, gan_output_size=4, iterations_per_stage=50)))
