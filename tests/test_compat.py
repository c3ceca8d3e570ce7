"""Every key the original DeepZine's code declared is understood, and its own config files pass the checks.

The table lists each `add_parameter` key of the original's classes (deepzine.py
DeepZine, model.py PGGAN) and the one key its wrapper.py read (gpu_num), with
a value of the original's kind and what happens to it here: 'kept' (a key of
this version, same meaning), 'translated' (rewritten into today's key) or
'ignored' (a one-line warning says why).
"""

import logging
import pathlib
import shutil

import pytest

from deepzine import compat
from deepzine.cli import main
from deepzine.pipeline import parameter_table, resolve_config

FIXTURES = pathlib.Path(__file__).resolve().parent / 'fixtures'

ORIGINAL_KEYS = [
    # deepzine.py, class DeepZine
    ('load_data', True, 'kept'), ('train', True, 'kept'), ('inference', True, 'kept'), ('interpolation', True, 'kept'),
    ('data_hdf5', '~/data.hdf5', 'kept'), ('pdf_directory', '~/pdf_directory', 'kept'),
    ('image_directory', '~/image_directory', 'kept'), ('overwrite', False, 'kept'),
    ('pdf_conversion_program', 'pdftoppm', 'kept'), ('download_pdf', False, 'translated'),
    ('internetarchive_collection', 'MBLWHOI', 'kept'), ('convert_pdf', False, 'translated'), ('pdf_num', None, 'kept'),
    ('data_output_size', 1024, 'kept'), ('preload_resized_data', True, 'ignored'), ('samples_dir', '~/samples', 'kept'),
    ('log_dir', '~/models', 'kept'), ('starting_depth', None, 'ignored'), ('progressive_depth', None, 'ignored'),
    ('gan_starting_size', 4, 'kept'), ('gan_output_size', 128, 'kept'), ('inference_output_format', 'png', 'kept'),
    ('inference_batch_size', 16, 'kept'), ('inference_model_directory', '~/models', 'kept'),
    ('inference_output_directory', None, 'kept'), ('inference_model_path', None, 'kept'),
    ('inference_output_num', 100, 'kept'), ('inference_input_latent', None, 'kept'),
    ('interpolation_method', 'slerp', 'kept'), ('interpolation_latents', None, 'kept'),
    ('interpolation_frames', 100, 'kept'), ('interpolation_vector_num', 10, 'kept'),
    # model.py, class PGGAN
    ('batch_size', 16, 'kept'), ('iterations_per_stage', 10000, 'kept'), ('learning_rate', '.0001', 'kept'),
    ('model_output_size', 64, 'ignored'), ('transition', False, 'ignored'), ('training_data', None, 'ignored'),
    ('input_model_path', None, 'ignored'), ('output_model_path', None, 'ignored'), ('verbose', True, 'kept'),
    ('model_save_interval_steps', 1000, 'kept'), ('model_sample_interval_steps', 400, 'kept'),
    ('model_loss_output_interval_steps', 40, 'kept'), ('model_sample_dir', './samples', 'ignored'),
    ('model_logging_dir', './log', 'ignored'), ('latent_size', 128, 'kept'), ('max_filter', 128, 'kept'),
    ('channels', 3, 'kept'), ('discriminator_updates', 1, 'kept'), ('generator_updates', 1, 'kept'),
    ('reduced_batch_size', 4, 'kept'), ('batch_size_reduction_transition_depth', 20, 'ignored'),
    ('batch_size_reduction_transition_size', 128, 'kept'), ('filter_num_reduction_transition_depth', None, 'ignored'),
    ('filter_num_reduction_transition_size', 128, 'kept'), ('random_seed', None, 'kept'),
    ('inference_mode', False, 'ignored'), ('pretrained_model', False, 'kept'),
    # wrapper.py
    ('gpu_num', 'None', 'kept'),
    # keys of the original's first versions, renamed or dropped later
    ('interpolation_mode', 'slerp', 'translated'), ('interpolation_images', 10, 'translated'),
    ('test_data_directory', None, 'ignored'), ('test_model_path', None, 'ignored'),
    ('test_model_samples', 10, 'ignored'), ('test_input_latent', None, 'ignored'),
]


@pytest.mark.parametrize('key, value, fate', ORIGINAL_KEYS, ids=[key for key, _, _ in ORIGINAL_KEYS])
def test_every_original_key_is_understood(key, value, fate, caplog, tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    with caplog.at_level(logging.INFO, logger='deepzine'):
        config = resolve_config({key: value})
    if fate == 'kept':
        assert key in parameter_table() and key in config
    elif fate == 'ignored':
        assert key not in config
        assert f'config key {key} (' in caplog.text and 'is ignored' in caplog.text  # one line saying why
    else:
        assert key not in config and key in caplog.text


def test_the_translations_mean_what_the_original_meant():
    assert resolve_config({'download_pdf': False})['data_source'] == 'pdf_directory'
    assert resolve_config({'convert_pdf': False})['data_source'] == 'image_directory'
    assert resolve_config({'interpolation_mode': 'linear'})['interpolation_method'] == 'linear'
    assert resolve_config({'interpolation_images': 4})['interpolation_vector_num'] == 4
    assert resolve_config({'pdf_num': None})['pdf_num'] == 0  # the original's default: the whole collection
    assert resolve_config({'verbose': 'True'})['verbose'] is True


def test_each_ignored_key_says_why():
    assert all(reason and len(reason) > 20 for reason in compat.RETIRED_KEYS.values())


def test_the_original_config_yaml_passes_every_check(tmp_path, monkeypatch, capsys, caplog):
    """Its final config.yaml: load the archive collection, train to 128, sample and walk (dry run, nothing written)."""
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main([str(FIXTURES / 'original_configs' / 'config.yaml'), '--dry-run']) == 0
    output = capsys.readouterr().out
    for stage in ('1. load_data', '2. train', '3. inference', '4. interpolation'):
        assert stage in output
    assert 'train 4x4 -> 128x128' in output and 'learning_rate: 0.0001' in output
    # the original's widths for max_filter 128 and filter_num_reduction_transition_size 64
    rows = {line.split()[0] + ' ' + line.split()[1]: line.split()[2] for line in output.splitlines()
            if line.strip().startswith(('4x4 ', '8x8 ', '16x16 ', '32x32 ', '64x64 ', '128x128 '))}
    assert rows == {'4x4 stable': '128/128', '8x8 fade': '128/128', '8x8 stable': '128/128', '16x16 fade': '128/128',
                    '16x16 stable': '128/128', '32x32 fade': '128/128', '32x32 stable': '128/128',
                    '64x64 fade': '64/64', '64x64 stable': '64/64', '128x128 fade': '32/32', '128x128 stable': '32/32'}
    assert [path.name for path in tmp_path.iterdir()] in ([], ['.keras'])  # Keras keeps its settings in ~/.keras


def test_the_original_config_preloaded_yaml_passes_every_check(tmp_path, monkeypatch, capsys):
    """Its config for the released models: an interpolation from pretrained_models/1024 with pretrained_model: True."""
    (tmp_path / 'pretrained_models').mkdir()
    shutil.copytree(FIXTURES / 'legacy_deepzine' / 'index_only' / '1024', tmp_path / 'pretrained_models' / '1024')
    monkeypatch.chdir(tmp_path)
    assert main([str(FIXTURES / 'original_configs' / 'config_preloaded.yaml'), '--dry-run']) == 0
    output = capsys.readouterr().out
    assert '1. interpolation' in output and 'original DeepZine checkpoint' in output
    assert sorted(path.name for path in tmp_path.iterdir()) == ['pretrained_models']
