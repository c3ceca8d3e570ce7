"""The train stage's keys, cross-key checks and the plan --dry-run prints."""

import re

import pytest

from deepzine.data.store import PageFileFacts
from deepzine.parameters import ConfigError
from deepzine.training.schedule import build_phases, check_replica_batches

from tests.training.helpers import make_plan, plan_text, train_config


@pytest.fixture
def raw(tmp_path, band_hdf5):
    return train_config(tmp_path, band_hdf5)


class LoadDataPlanStandIn:
    def __init__(self, page_file):
        self.page_file = page_file


def test_a_missing_page_file_is_named_unless_load_data_writes_it_first(raw, tmp_path):
    missing = str(tmp_path / 'none.hdf5')
    with pytest.raises(ConfigError, match='none.hdf5: file not found; run load_data'):
        make_plan(dict(raw, data_hdf5=missing))
    promised = LoadDataPlanStandIn(PageFileFacts(missing, (4, 8, 16), 1))
    assert make_plan(dict(raw, data_hdf5=missing), {'load_data': promised}).data.path == missing


def test_pages_smaller_than_the_model_are_refused_before_anything_runs_even_when_load_data_runs_first(raw, tmp_path):
    missing = str(tmp_path / 'none.hdf5')
    promised = LoadDataPlanStandIn(PageFileFacts(missing, (4, 8), 3))
    with pytest.raises(ConfigError, match=r'holds sizes 4\.\.8 but train needs 16x16 pages: run load_data with '
                                          r'data_output_size: 16'):
        make_plan(dict(raw, data_hdf5=missing), {'load_data': promised})


def test_plan_lists_every_phase_with_filters_steps_images_and_outputs(raw):
    text = plan_text(make_plan(dict(raw, iterations_per_stage=100, batch_sizes={16: 2})))
    assert '4x4 -> 16x16' in text and '5 phases, 500 steps' in text
    assert re.search(r'^  4x4 stable +16/16 .* 4 +100 +400 ', text, re.MULTILINE)
    assert re.search(r'^  16x16 fade +8/8 .* 2 +100 +200 ', text, re.MULTILINE)
    assert re.search(r'^  16x16 stable +8/8 .* 2 +100 +200 ', text, re.MULTILINE)
    assert 'lr 0.001 (automatic)' in text and 'start from scratch at 4x4' in text
    for output in ('checkpoints', 'saved_model', 'tensorboard --logdir', 'samples_<size>[_Transition]'):
        assert output in text


def test_learning_rate_follows_the_weight_parametrization_unless_set(raw):
    assert make_plan(raw).learning_rate == 0.001
    assert make_plan(dict(raw, equalized_learning_rate=False)).learning_rate == 0.0001
    assert make_plan(dict(raw, learning_rate='3e-4')).learning_rate == 0.0003


@pytest.mark.parametrize('overrides, message', [
    ({'gan_starting_size': 32}, 'gan_starting_size=32: must not exceed gan_output_size=16'),
    ({'batch_size': 6}, 'minibatch_group_size=4: must divide the per-device batch of 6'),
    ({'batch_sizes': {8: 4, 64: 2}}, r'sizes \[64\] are above gan_output_size=16'),
    ({'gan_starting_size': 8}, 'the lower sizes must be trained already'),
    ({'mixed_precision': 'float16'}, 'must be one of float32, mixed_float16, mixed_bfloat16'),
    ({'generator_ema_beta': 1.0}, 'generator_ema_beta=1.0: must be at least 0 and below 1'),
    ({'batch_size_reduction_transition_size': 100}, 'must be a power of two'),
    ({'filter_num_reduction_transition_size': 8}, 'must be a power of two, at least 16'),
    ({'evaluate_during_training': True, 'evaluation_image_num': 0, 'memorization_check_num': 0}, 'nothing to evaluate'),
])
def test_bad_combinations_are_refused_before_anything_runs(raw, overrides, message):
    with pytest.raises(ConfigError, match=message):
        make_plan(dict(raw, **overrides))


def test_batches_smaller_than_a_group_are_one_group(raw):
    import numpy as np
    from deepzine.model.layers import minibatch_stddev
    assert make_plan(dict(raw, batch_size=2)).phases[0].batch_size == 2  # not refused
    images = np.random.default_rng(0).standard_normal((2, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(minibatch_stddev(images, 4).numpy(), minibatch_stddev(images, 0).numpy())


def test_group_size_zero_means_the_whole_batch_as_in_the_original():
    phases = build_phases(16, 4, 6, 256, 4, None, None)
    with pytest.raises(ConfigError, match='minibatch_group_size=4: must divide the per-device batch of 6'):
        check_replica_batches(phases, replicas=1, group_size=4)
    check_replica_batches(phases, replicas=1, group_size=0)  # the whole batch of 6 is one group
    with pytest.raises(ConfigError, match='batch size 6 at 4x4: must be a multiple of the 4 devices'):
        check_replica_batches(phases, replicas=4, group_size=0)


def test_asking_for_gpus_on_a_machine_without_any_trains_on_the_cpu(raw, caplog):
    import logging
    with caplog.at_level(logging.WARNING, logger='deepzine'):
        plan = make_plan(dict(raw, gpu_num=[0, 1], batch_size=6, minibatch_group_size=0))
    assert plan.hardware.replicas == 1 and plan.hardware.gpu_indices == ()
    assert 'no GPU is visible to TensorFlow, training on the CPU' in caplog.text


def test_the_plan_keeps_the_stage_keys_to_save_and_the_log_dir(raw):
    plan = make_plan(raw)
    assert plan.log_dir == raw['log_dir'] and plan.model_directory == raw['log_dir']
    assert plan.recorded_config['max_filter'] == 16 and plan.recorded_config['train'] is True
    assert 'inference_output_num' not in plan.recorded_config  # only the train stage's own keys
