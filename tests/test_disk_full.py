"""A full disk ends any stage with one line naming what was being written; nothing is broken and the re-run continues."""

import os
import pathlib
import subprocess
import sys

import pytest
import yaml

from deepzine.files import is_leftover
from tests.training.helpers import band_pages, train_config, write_page_hdf5

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL = REPO_ROOT / 'pretrained_models' / 'debian_libraries'


def run(config, folder):
    path = folder / 'config.yaml'
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'wrapper.py'), str(path)], cwd=folder,
                            capture_output=True, text=True, timeout=600)
    return result.returncode, result.stderr.strip().splitlines()


def assert_one_line_about_the_disk(code, errors, where):
    assert code == 1, errors[-20:]
    assert errors[-1].startswith(f'error: disk full while writing {where}'), errors[-20:]
    assert errors[-1].endswith('free some space on that disk and re-run the same command to continue')
    assert not any('Traceback' in line for line in errors), errors[-20:]


def leftovers(folder):
    return [os.path.join(root, name) for root, folders, names in os.walk(folder) for name in folders + names
            if '.partial' in name or name.endswith('_temp')]


@pytest.mark.slow
def test_training_stops_in_one_line_keeps_its_checkpoint_and_resumes(tmp_path, small_disk):
    pages = write_page_hdf5(tmp_path / 'pages.hdf5', band_pages(32, 16))
    raw = train_config(small_disk.path, pages, gan_output_size=16, iterations_per_stage=6, model_save_interval_steps=2)
    small_disk.fill(bytes_left=1_500_000)  # room for the first checkpoints, not for the whole run
    code, errors = run(raw, tmp_path)
    assert_one_line_about_the_disk(code, errors, str(small_disk.path))
    assert leftovers(small_disk.path / 'log') == []
    import tensorflow as tf
    last_good = tf.train.latest_checkpoint(str(small_disk.path / 'log' / 'checkpoints'))
    assert last_good and tf.train.load_checkpoint(last_good).get_tensor('global_step/.ATTRIBUTES/VARIABLE_VALUE') > 0
    small_disk.free()
    code, errors = run(raw, tmp_path)
    assert code == 0, errors[-20:]
    assert any('resuming' in line for line in errors)  # from the last checkpoint that fitted
    assert (small_disk.path / 'log' / 'saved_model' / 'saved_model.pb').is_file()


@pytest.mark.slow
def test_sampling_stops_in_one_line_naming_the_page(tmp_path, small_disk):
    small_disk.fill(bytes_left=200_000)
    config = {'inference': True, 'inference_model_directory': str(MODEL), 'gan_output_size': 64,
              'inference_output_num': 5000, 'inference_output_directory': str(small_disk.path / 'out')}
    code, errors = run(config, tmp_path)
    assert_one_line_about_the_disk(code, errors, str(small_disk.path / 'out' / 'run-001'))
    assert leftovers(small_disk.path / 'out') == []


def test_load_data_stops_in_one_line_before_hdf5_meets_the_full_disk_and_finishes_later(tmp_path, small_disk):
    import h5py

    from tests.data.documents import write_pdf
    for number in range(12):
        write_pdf(str(tmp_path / 'pdfs' / f'doc{number:02d}.pdf'), 6)
    config = {'load_data': True, 'data_source': 'pdf_directory', 'pdf_directory': str(tmp_path / 'pdfs'),
              'data_output_size': 64, 'hdf5_compression': 'none', 'conversion_workers': 1,
              'data_hdf5': str(small_disk.path / 'pages.hdf5')}
    small_disk.fill(bytes_left=1_700_000)  # room for some uncompressed 64x64 RGB pages, not all 72
    code, errors = run(config, tmp_path)
    assert_one_line_about_the_disk(code, errors, str(small_disk.path))
    assert not (small_disk.path / 'pages.hdf5').exists()  # never a file that looks finished but is not
    segments = os.listdir(small_disk.path / 'pages.hdf5.partial')  # the open segment is dropped; committed ones stay
    assert 'run.json' in segments and not [name for name in segments if is_leftover(name)]
    small_disk.free()
    code, errors = run(config, tmp_path)
    assert code == 0, errors[-20:]
    with h5py.File(small_disk.path / 'pages.hdf5', 'r') as handle:
        rows = sorted(zip(handle['pages/file'].asstr()[:], handle['pages/page_number'][:]))
    assert rows == [(f'doc{number:02d}.pdf', page) for number in range(12) for page in range(1, 7)]
    assert leftovers(small_disk.path) == []


def test_load_data_warns_up_front_when_the_pages_will_not_fit(tmp_path, small_disk, caplog):
    import logging

    from deepzine.data.stage import LoadDataStage
    from tests.data.documents import write_pdf
    from tests.stages import prepare_stage
    for number in range(3):
        write_pdf(str(tmp_path / 'pdfs' / f'doc{number}.pdf'), 40)
    small_disk.fill(bytes_left=3_000_000)
    stage = prepare_stage(LoadDataStage, load_data=True, data_source='pdf_directory', pdf_directory=str(tmp_path / 'pdfs'),
                          data_output_size=128, hdf5_compression='none', conversion_workers=1,
                          data_hdf5=str(small_disk.path / 'pages.hdf5'))
    from deepzine.files import OutOfSpace
    with caplog.at_level(logging.WARNING), pytest.raises(OutOfSpace):
        stage.run()  # warned first, then stopped at the first write that would not fit
    assert '120 pages need about' in caplog.text and 'free some space first' in caplog.text
