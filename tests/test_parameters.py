import os

import pytest

from deepzine.parameters import (ConfigError, Parameter, Parameters, describe, load_yaml, parse_override, positive,
                                 power_of_two, registry, resolve, size_map)


class Example(Parameters):
    gan_output_size = Parameter(128, 'int', 'final size in pixels', check=power_of_two)
    learning_rate = Parameter(0.0001, 'float', 'Adam step size', check=positive)
    train = Parameter(False, 'bool', 'run training')
    log_dir = Parameter('./log', 'path', 'run folder')
    gpu_num = Parameter(None, 'list', 'GPUs')
    interpolation_method = Parameter('slerp', 'str', 'path shape', choices=['linear', 'slerp', 'tozero'],
                                     aliases={'origin': 'tozero'})
    batch_sizes = Parameter(None, 'size_map', 'batch per size', check=size_map)


TABLE = registry([Example])


def test_defaults_fill_every_declared_key():
    config = resolve({}, TABLE)
    assert config == {'gan_output_size': 128, 'learning_rate': 0.0001, 'train': False, 'log_dir': './log',
                      'gpu_num': None, 'interpolation_method': 'slerp', 'batch_sizes': None}
    assert Example(config).gan_output_size == 128


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="unknown key 'lerning_rate' \\(did you mean 'learning_rate'\\?\\)"):
        resolve({'lerning_rate': 0.1}, TABLE)


def test_unknown_key_without_a_close_match_has_no_suggestion():
    with pytest.raises(ConfigError) as error:
        resolve({'zzzzzz': 1}, TABLE)
    assert 'did you mean' not in str(error.value)


@pytest.mark.parametrize('key, value, message', [
    ('gan_output_size', 300, 'gan_output_size=300: must be a power of two'),
    ('gan_output_size', 2, 'must be a power of two, at least 4'),
    ('gan_output_size', 'big', 'gan_output_size=\'big\': must be a whole number'),
    ('gan_output_size', 64.5, 'must be a whole number'),
    ('gan_output_size', True, 'not true/false'),
    ('learning_rate', -1, 'learning_rate=-1: must be positive'),
    ('learning_rate', 'fast', 'must be a number'),
    ('train', 'maybe', 'train=\'maybe\': must be true or false'),
    ('interpolation_method', 'cubic', 'must be one of linear, slerp, tozero'),
    ('batch_sizes', [1, 2], 'must be a map'),
    ('batch_sizes', {100: 4}, 'key 100: must be a power of two'),
    ('gan_output_size', None, 'gan_output_size=None: must be set'),
])
def test_bad_values_name_the_key_and_the_rule(key, value, message):
    with pytest.raises(ConfigError, match=message.replace('(', '\\(').replace(')', '\\)')):
        resolve({key: value}, TABLE)


def test_original_spellings_are_accepted():
    config = resolve({'gpu_num': 'None', 'train': 'True', 'learning_rate': '1e-4', 'gan_output_size': '64',
                      'interpolation_method': 'origin'}, TABLE)
    assert config['gpu_num'] is None and config['train'] is True
    assert config['learning_rate'] == 0.0001 and config['gan_output_size'] == 64
    assert config['interpolation_method'] == 'tozero'


def test_a_choice_named_none_is_not_read_as_unset():
    compression = Parameter('gzip', 'str', 'compression', choices=['none', 'gzip'])
    compression.name = 'hdf5_compression'
    assert compression.convert('none') == 'none' and compression.convert(None) == 'none'
    assert compression.convert('gzip') == 'gzip'
    with pytest.raises(ConfigError, match='train=None: must be set'):
        resolve({'train': None}, TABLE)


def test_single_values_become_lists_and_maps_get_int_keys():
    config = resolve({'gpu_num': 1, 'batch_sizes': {'128': '16'}}, TABLE)
    assert config['gpu_num'] == [1] and config['batch_sizes'] == {128: 16}


def test_paths_expand_home_and_environment(monkeypatch, tmp_path):
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.setenv('DEEPZINE_RUNS', str(tmp_path / 'runs'))
    assert resolve({'log_dir': '~/models'}, TABLE)['log_dir'] == str(tmp_path / 'models')
    assert resolve({'log_dir': '$DEEPZINE_RUNS/a'}, TABLE)['log_dir'] == str(tmp_path / 'runs' / 'a')
    assert os.path.isabs(resolve({'log_dir': 'relative'}, TABLE)['log_dir'])


def test_override_values_are_read_as_yaml():
    assert parse_override('batch_size=8') == ('batch_size', 8)
    assert parse_override('train=false') == ('train', False)
    assert parse_override('log_dir=~/x') == ('log_dir', '~/x')
    with pytest.raises(ConfigError, match='expected key=value'):
        parse_override('batch_size')


def test_a_key_declared_twice_is_refused():
    class Other(Parameters):
        train = Parameter(True, 'bool', 'again')
    with pytest.raises(TypeError, match='declared twice'):
        registry([Example, Other])


def test_describe_lists_every_key_with_default_and_choices():
    text = describe(TABLE)
    for name in TABLE:
        assert f'`{name}`' in text
    assert '| `learning_rate` | `0.0001` | Adam step size |' in text
    assert 'linear | slerp | tozero' in text


def test_load_yaml_uses_safe_loader_and_names_the_file(tmp_path):
    unsafe = tmp_path / 'unsafe.yaml'
    unsafe.write_text('x: !!python/object/apply:os.system ["echo hacked"]\n')
    with pytest.raises(ConfigError, match='unsafe.yaml'):
        load_yaml(unsafe)
    with pytest.raises(ConfigError, match='config file not found: .*missing.yaml'):
        load_yaml(tmp_path / 'missing.yaml')
    broken = tmp_path / 'broken.yaml'
    broken.write_text('a: [1, 2\n')
    with pytest.raises(ConfigError, match='broken.yaml line'):
        load_yaml(broken)
