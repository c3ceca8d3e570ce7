"""The train stage's keys, cross-key checks and --dry-run plan (no TensorFlow needed)."""

import pytest

from deepzine.parameters import ConfigError
from deepzine.training.trainer import effective_learning_rate

from tests.training.helpers import make_stage, train_config


@pytest.fixture
def raw(tmp_path, band_hdf5):
    return train_config(tmp_path, band_hdf5)


def test_a_missing_page_file_is_named_unless_load_data_runs_first(raw, tmp_path):
    from deepzine.training.stage import TrainStage
    from deepzine.parameters import registry, resolve
    stage = TrainStage(resolve(dict(raw, data_hdf5=str(tmp_path / 'none.hdf5')), registry([TrainStage])))
    with pytest.raises(ConfigError, match='none.hdf5: no such file; make it with load_data: true'):
        stage.validate()
    stage.earlier_stages = ('load_data',)
    stage.validate()


def test_plan_lists_every_phase_with_steps_images_and_outputs(raw):
    plan = '\n'.join(make_stage(dict(raw, iterations_per_stage=100, batch_sizes={16: 2})).plan())
    assert '4x4 -> 16x16' in plan and '5 phases, 500 steps' in plan
    assert '4x4    stable        100 steps x 4 images = 400 images' in plan
    assert '16x16   fade + stable 100 steps x 2 images each = 400 images' in plan
    assert 'lr 0.001 (automatic)' in plan
    for output in ('checkpoints', 'saved_model', 'tensorboard', '<size>[_transition]'):
        assert output in plan


def test_learning_rate_follows_the_weight_parametrization_unless_set(raw):
    assert effective_learning_rate(make_stage(raw)) == 0.001
    assert effective_learning_rate(make_stage(dict(raw, equalized_learning_rate=False))) == 0.0001
    assert effective_learning_rate(make_stage(dict(raw, learning_rate='3e-4'))) == 0.0003


@pytest.mark.parametrize('overrides, message', [
    ({'gan_starting_size': 32}, 'gan_starting_size=32: must not exceed gan_output_size=16'),
    ({'batch_size': 6}, 'minibatch_group_size=4: must divide the per-device batch of 6'),
    ({'batch_sizes': {8: 4, 64: 2}}, r'sizes \[64\] are above gan_output_size=16'),
    ({'gpu_num': [0, 1], 'batch_size': 5}, 'batch size 5 at 4x4: must be a multiple of the 2 devices'),
    ({'gan_starting_size': 8}, 'the lower sizes must be trained already'),
    ({'mixed_precision': 'float16'}, 'must be one of float32, mixed_float16, mixed_bfloat16'),
    ({'generator_ema_beta': 1.0}, 'generator_ema_beta=1.0: must be at least 0 and below 1'),
    ({'batch_size_reduction_transition_size': 100}, 'must be a power of two'),
])
def test_bad_combinations_are_refused_before_anything_runs(raw, overrides, message):
    with pytest.raises(ConfigError, match=message):
        make_stage(dict(raw, **overrides))


def test_batches_smaller_than_a_group_are_one_group(raw):
    make_stage(dict(raw, batch_size=2))  # the minibatch-stddev group is then the whole batch


def test_group_size_zero_means_the_whole_batch_as_in_the_original():
    from deepzine.training.schedule import build_phases
    from deepzine.training.trainer import check_replica_batches
    check_replica_batches(build_phases(16, 4, 6, 256, 4, None, None), replicas=1, group_size=0)


def test_output_directory_is_the_log_dir_and_the_config_is_kept(raw):
    stage = make_stage(raw)
    assert stage.output_directory() == raw['log_dir']
    assert stage.config['max_filter'] == 16 and stage.config['train'] is True
