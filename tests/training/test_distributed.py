"""The same step on one device and under MirroredStrategy over two logical CPUs; choosing the strategy from gpu_num."""

import json
import logging
import os
import subprocess
import sys

import pytest

from deepzine.training.devices import choose_precision, is_chief, make_strategy, resolve_hardware
from tests.training.helpers import REPO_ROOT


@pytest.mark.slow
def test_two_mirrored_cpus_compute_the_step_of_one_device():
    result = subprocess.run([sys.executable, '-m', 'tests.training.mirrored_check'], cwd=str(REPO_ROOT),
                            capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', TF_ENABLE_ONEDNN_OPTS='0'))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report['replicas'] == 2
    for name, value in report['one_device'].items():
        assert report['two_devices'][name] == pytest.approx(value, rel=1e-4, abs=1e-5), name
    assert report['largest_weight_change'] > 1e-3  # the step did train
    # Adam's first steps move each weight by about lr * sign(gradient), so a gradient element near zero can turn
    # a summation-order rounding difference (the order varies from run to run) into a visible one: bound it
    # relative to how far the step moved the weights.
    assert report['largest_weight_difference'] < 0.05 * report['largest_weight_change']


def test_no_gpu_gives_the_default_single_device_strategy():
    hardware = resolve_hardware(None, None, 'float32')
    assert (hardware.gpu_indices, hardware.replicas, hardware.jit_compile, hardware.on_gpu) == ((), 1, False, False)
    strategy = make_strategy(hardware)
    assert strategy.num_replicas_in_sync == 1 and is_chief(strategy)


def test_asking_for_a_gpu_on_a_machine_without_one_warns_and_uses_the_cpu(caplog):
    with caplog.at_level(logging.WARNING):
        hardware = resolve_hardware([0], None, None)
    assert make_strategy(hardware).num_replicas_in_sync == 1
    assert 'no GPU is visible' in caplog.text


@pytest.mark.parametrize('capabilities, units, onednn, expected', [
    ([], True, True, 'mixed_bfloat16'),
    ([], True, False, 'float32'),           # oneDNN off: TensorFlow would emulate bfloat16
    ([], False, True, 'float32'),
    ([], None, True, 'float32'),            # unknown: the safe choice
    ([(9, 0), (8, 6)], None, True, 'mixed_bfloat16'),
    ([(8, 0), (7, 5)], True, True, 'mixed_float16'),  # the oldest GPU decides
    ([(6, 1)], True, True, 'float32'),
])
def test_the_automatic_precision_is_the_fastest_the_hardware_has(capabilities, units, onednn, expected):
    precision, why = choose_precision(capabilities, units, onednn)
    assert precision == expected and why.startswith('automatic: ')


def test_the_plan_says_which_precision_it_chose_and_why():
    hardware = resolve_hardware(None, None, None)
    assert hardware.precision_reason.startswith('automatic: this CPU ')
    assert resolve_hardware(None, None, 'float32').precision_reason == 'set in the config'


@pytest.mark.parametrize('precision, units, level, words', [
    ('mixed_bfloat16', False, logging.WARNING, '12x slower'),
    ('mixed_float16', None, logging.WARNING, 'for NVIDIA GPUs'),
    ('float32', True, logging.INFO, 'mixed_bfloat16 may train faster'),
])
def test_precision_advice_on_a_cpu_depends_on_its_bfloat16_units(caplog, precision, units, level, words):
    from deepzine.training.devices import advise_cpu_precision
    with caplog.at_level(logging.INFO, logger='deepzine'):
        advise_cpu_precision(precision, units)
    assert [record.levelno for record in caplog.records] == [level] and words in caplog.text


def test_no_advice_when_the_precision_suits_the_cpu(caplog):
    from deepzine.training.devices import advise_cpu_precision
    with caplog.at_level(logging.INFO, logger='deepzine'):
        advise_cpu_precision('float32', False)
        advise_cpu_precision('mixed_bfloat16', True)
    assert not caplog.records
