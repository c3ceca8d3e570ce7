import pathlib
import re
import subprocess
import sys

import pytest
import yaml

from deepzine.cli import EXIT_CONFIG_ERROR, main
from deepzine.parameters import describe
from deepzine.pipeline import parameter_table

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def files_under(folder):
    return sorted(path.relative_to(folder) for path in folder.rglob('*'))


def copy_config(tmp_path, name='config.yaml', edit=None):
    text = (REPO_ROOT / name).read_text()
    if edit:
        text = edit(text)
    path = tmp_path / name
    path.write_text(text)
    return path


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, monkeypatch, capsys):
    config = copy_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = files_under(tmp_path)
    assert main([str(config), '--dry-run']) == 0
    output = capsys.readouterr().out
    assert 'Resolved config:' in output and 'Plan:' in output
    assert files_under(tmp_path) == before


def test_wrapper_exits_2_naming_an_unknown_key(tmp_path):
    config = copy_config(tmp_path, edit=lambda text: text + '\nlerning_rate: 0.01\n')
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'wrapper.py'), str(config), '--dry-run'],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG_ERROR
    assert result.stderr.strip().splitlines() == ["error: unknown key 'lerning_rate' (did you mean 'learning_rate'?); "
                                                  "'python wrapper.py --list-params' lists them all"]
    assert files_under(tmp_path) == [config.relative_to(tmp_path)]


def test_bad_value_exits_2_naming_the_key(tmp_path, capsys):
    config = copy_config(tmp_path)
    assert main([str(config), '--set', 'gan_output_size=100', '--dry-run']) == EXIT_CONFIG_ERROR
    assert 'gan_output_size=100: must be a power of two' in capsys.readouterr().err


def test_set_overrides_the_yaml(tmp_path, monkeypatch, capsys):
    config = copy_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main([str(config), '--dry-run', '--set', 'inference_output_num=7', '--set', 'latent_size=32']) == 0
    output = capsys.readouterr().out
    assert 'inference_output_num: 7' in output and 'latent_size: 32' in output


def test_missing_config_file_names_the_path(tmp_path, capsys):
    assert main([str(tmp_path / 'nope.yaml')]) == EXIT_CONFIG_ERROR
    assert 'nope.yaml' in capsys.readouterr().err


def test_list_params_prints_every_key(capsys):
    assert main(['--list-params']) == 0
    output = capsys.readouterr().out
    for name in parameter_table():
        assert f'`{name}`' in output


@pytest.mark.parametrize('name', ['config.yaml', 'config_pretrained.yaml'])
def test_shipped_configs_resolve(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO_ROOT)
    assert main([str(REPO_ROOT / name), '--dry-run']) == 0


def test_config_yaml_shows_every_key_with_a_comment():
    text = (REPO_ROOT / 'config.yaml').read_text()
    keys = yaml.safe_load(text).keys()
    assert sorted(keys) == sorted(parameter_table())
    for key in keys:
        assert re.search(rf'#[^\n]*\n(#[^\n]*\n)*{key}:', text), f'{key} has no comment above it in config.yaml'


def test_readme_reference_is_generated_from_the_registry():
    readme = (REPO_ROOT / 'README.md').read_text()
    assert describe(parameter_table()) in readme, 'regenerate with: python -m deepzine params'


ORIGINAL_STYLE_CONFIG = """
gpu_num: None
load_data: True
pdf_directory: ~/pdf_directory
image_directory: ~/image_directory
data_hdf5: ~/data.hdf5
internetarchive_collection: MBLWHOI
pdf_num: 10000
data_output_size: 1024
train: True
log_dir: ~/models
model_save_interval_steps: 1000
samples_dir: ~/samples
model_sample_interval_steps: 400
gan_output_size: 128
learning_rate: .0001
iterations_per_stage: 10000
latent_size: 128
batch_size: 16
batch_size_reduction_transition_size: 256
reduced_batch_size: 4
model_loss_output_interval_steps: 40
max_filter: 128
filter_num_reduction_transition_size: 64
discriminator_updates: 1
generator_updates: 1
inference_model_directory: ~/models
inference_output_directory: ~/inference_images
inference: True
inference_output_num: 100
interpolation: True
interpolation_frames: 100
interpolation_vector_num: 10
interpolation_method: 'slerp'
preload_resized_data: True
"""


def test_a_config_written_for_the_original_deepzine_still_resolves(tmp_path, monkeypatch, capsys):
    """Every key of the original's config.yaml, spelled as it spelled them (None, True, .0001, quoted strings)."""
    monkeypatch.setenv('HOME', str(tmp_path))
    config = tmp_path / 'original.yaml'
    config.write_text(ORIGINAL_STYLE_CONFIG)
    assert main([str(config), '--dry-run']) == 0
    output = capsys.readouterr().out
    assert f'data_hdf5: {tmp_path}/data.hdf5' in output and 'learning_rate: 0.0001' in output
    assert '1. load_data' in output and '4. interpolation' in output
