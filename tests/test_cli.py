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


@pytest.mark.slow
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
                                                  "'python wrapper.py params' lists them all"]
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


def test_params_prints_every_key_readably_in_a_terminal(capsys):
    assert main(['params']) == 0
    output = capsys.readouterr().out
    for name in parameter_table():
        assert re.search(rf'^{name}: ', output, re.MULTILINE)
    assert max(len(line) for line in output.splitlines()) <= 110


def test_params_with_a_word_shows_only_the_keys_that_mention_it(capsys):
    assert main(['params', 'movie']) == 0
    output = capsys.readouterr().out
    assert 'movie_fps: 30' in output and 'export_movie: false' in output and 'learning_rate' not in output
    assert main(['params', 'no-such-word']) == EXIT_CONFIG_ERROR


@pytest.mark.parametrize('name', ['config.yaml', 'config_pretrained.yaml'])
def test_shipped_configs_resolve(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO_ROOT)
    assert main([str(REPO_ROOT / name), '--dry-run']) == 0


def test_config_yaml_is_every_key_with_its_meaning_as_the_registry_writes_it():
    """config.yaml = `deepzine params --yaml` with the stages switched on: every key, its help above it, current."""
    from deepzine.cli import CONFIG_HEADER
    from deepzine.parameters import describe_as_yaml
    from deepzine.pipeline import parameter_sections
    text = (REPO_ROOT / 'config.yaml').read_text()
    values = yaml.safe_load(text)
    assert sorted(values) == sorted(parameter_table())
    assert text == describe_as_yaml(parameter_sections(), values, header=CONFIG_HEADER), (
        'regenerate config.yaml: python -m deepzine params --yaml, then switch the stages on')


def test_readme_reference_is_generated_from_the_registry():
    readme = (REPO_ROOT / 'README.md').read_text()
    assert describe(parameter_table()) in readme, 'regenerate with: python -m deepzine params --markdown'


def test_help_lists_every_command_and_version_prints_it(capsys):
    assert main(['--help']) == 0
    output = capsys.readouterr().out
    for command in ('run', 'params', 'movie', 'project', 'convert-legacy', 'preview'):
        assert re.search(rf'^  {command} +\S', output, re.MULTILINE), command
    assert main(['--version']) == 0
    assert re.fullmatch(r'deepzine \d+\.\d+\.\d+\n', capsys.readouterr().out)
    assert main(['movie', '--help']) == 0 and 'deepzine movie' in capsys.readouterr().out


def test_an_unknown_command_exits_2_with_a_suggestion(capsys):
    assert main(['moive', 'a', 'b']) == EXIT_CONFIG_ERROR
    assert capsys.readouterr().err.strip() == ("error: unknown command 'moive' (did you mean 'movie'?): the commands "
                                               "are run, params, movie, project, convert-legacy, preview, or give a config file "
                                               "(deepzine config.yaml)")


@pytest.mark.parametrize('content, message', [
    (b'\xff\xfe\x00\x81 random bytes \x9c', 'not a text file (not UTF-8)'),
    (b'train: true\nbatch_size: 8\ntrain: false\n', "key 'train' is written twice (lines 1 and 3); keep one"),
    (b'train: [true\n', 'not valid YAML'),
    (b'- a list\n- not a mapping\n', 'must be a mapping of key: value lines'),
])
def test_a_config_that_cannot_be_read_exits_2_in_one_line(tmp_path, content, message):
    config = tmp_path / 'bad.yaml'
    config.write_bytes(content)
    result = subprocess.run([sys.executable, str(REPO_ROOT / 'wrapper.py'), str(config)], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG_ERROR
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and message in lines[0], result.stderr
    assert files_under(tmp_path) == [config.relative_to(tmp_path)]


def test_a_foreign_data_file_is_refused_before_anything_is_written(tmp_path, capsys):
    (tmp_path / 'pages.hdf5').write_text('not HDF5 at all')
    config = tmp_path / 'train.yaml'
    config.write_text(f'train: true\ndata_hdf5: {tmp_path / "pages.hdf5"}\nlog_dir: {tmp_path / "log"}\n')
    assert main([str(config)]) == EXIT_CONFIG_ERROR
    assert 'pages.hdf5: not a readable HDF5 file' in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ['pages.hdf5', 'train.yaml']


def test_data_smaller_than_the_model_is_refused_before_the_download_when_load_data_runs_first(tmp_path, capsys):
    config = tmp_path / 'config.yaml'
    config.write_text(f'load_data: true\ntrain: true\ndata_output_size: 64\ngan_output_size: 128\n'
                      f'data_hdf5: {tmp_path / "pages.hdf5"}\nlog_dir: {tmp_path / "log"}\n'
                      f'pdf_directory: {tmp_path / "pdfs"}\n')
    assert main([str(config)]) == EXIT_CONFIG_ERROR
    assert 'holds sizes 4..64 but train needs 128x128 pages: run load_data with data_output_size: 128' in \
        capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ['config.yaml']

