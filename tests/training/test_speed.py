"""The time estimate: its arithmetic from a given machine speed, the time format, the GPU lines and memory warning."""

import dataclasses

import pytest

from deepzine.model.architecture import Architecture
from deepzine.training.cost import run_cost
from deepzine.training.schedule import build_phases
from deepzine.training.gpu_models import GPU_MODELS, memory_from_device_name
from deepzine.training.speed import MachineSpeed, describe_time, estimate_time, format_duration, measure_machine

ARCHITECTURE = Architecture(latent_size=32, channels=3, output_size=32, widths={4: 32, 8: 32, 16: 32, 32: 16})
MACHINE = MachineSpeed(layer_gflops=((4, 100.0), (8, 300.0), (16, 400.0), (32, 400.0)), first_call_sec=1.0,
                       step_sec=0.01, call_sec=0.0002, import_sec=3.0, measure_sec=2.0)


def cost_of(steps=60, batch=16, **keys):
    return run_cost(ARCHITECTURE, build_phases(32, steps, batch, 256, 4), **keys)


@pytest.mark.parametrize('seconds, text', [(0.4, '0 s'), (45, '45 s'), (200, '3 min 20 s'), (4320, '1 h 12 min'),
                                           (3 * 86400 + 4 * 3600 + 59, '3 d 4 h')])
def test_durations_read_like_a_person_writes_them(seconds, text):
    assert format_duration(seconds) == text


def test_every_phase_pays_a_start_up_and_its_steps():
    cost = cost_of()
    estimate = estimate_time(cost, jit_compile=False, machine=MACHINE)
    assert [phase.name for phase in estimate.phases] == [phase.name for phase in cost.phases]
    assert all(phase.startup_sec > 0 for phase in estimate.phases)
    assert estimate.total_sec == pytest.approx(estimate.run_startup_sec + sum(
        phase.startup_sec + phase.steps * phase.step_sec for phase in estimate.phases))
    steps = [phase.step_sec for phase in estimate.phases]
    assert steps[0] < steps[2] < steps[4] < steps[6]  # 4x4 < 8x8 < 16x16 < 32x32
    assert estimate.run_startup_sec >= MACHINE.import_sec


def test_more_steps_cost_steps_and_nothing_else():
    short = estimate_time(cost_of(steps=60), machine=MACHINE)
    long = estimate_time(cost_of(steps=600), machine=MACHINE)
    added = sum(540 * phase.step_sec for phase in short.phases)
    assert long.total_sec == pytest.approx(short.total_sec + added, rel=0.01)


def test_a_slower_host_stretches_the_start_up():
    slow = dataclasses.replace(MACHINE, first_call_sec=3.0)
    fast = estimate_time(cost_of(), machine=MACHINE)
    loaded = estimate_time(cost_of(), machine=slow)
    assert loaded.phases[0].startup_sec > 2 * fast.phases[0].startup_sec - fast.phases[0].step_sec
    assert loaded.phases[0].step_sec == fast.phases[0].step_sec


def test_gpu_estimates_follow_published_rates_and_units():
    wide = Architecture(latent_size=256, channels=3, output_size=32, widths={4: 256, 8: 256, 16: 256, 32: 256})

    def wide_cost(**keys):
        return run_cost(wide, build_phases(32, 5000, 64, 256, 4), **keys)

    float32 = estimate_time(wide_cost(), machine=MACHINE)
    bfloat16 = estimate_time(wide_cost(mixed_precision='mixed_bfloat16'), machine=MACHINE)
    assert float32.gpu_seconds['H100'] < float32.gpu_seconds['A100'] < float32.gpu_seconds['T4']
    assert bfloat16.gpu_seconds['T4'] is None and bfloat16.gpu_seconds['A100'] < float32.gpu_seconds['A100']
    two = estimate_time(wide_cost(), machine=MACHINE, devices=2)
    assert two.gpu_seconds['T4'] < float32.gpu_seconds['T4']


def test_tiny_models_are_bound_by_the_host_on_any_gpu_and_the_lines_say_so():
    cost = cost_of()
    estimate = estimate_time(cost, machine=MACHINE)
    assert estimate.gpu_seconds['H100'] == pytest.approx(estimate.gpu_seconds['A100'])
    assert estimate.gpu_floor_share['H100'] == 1.0
    line = next(line for line in describe_time(estimate, cost, gpus=[]) if line.lstrip().startswith('H100 ('))
    assert line.endswith("100% of the steps' time is set by the per-step floor, not by this GPU: the host's 200 us per "
                         "kernel call measured here, times the kernels of a step (a larger batch per step uses the GPU "
                         "better)")
    free = dataclasses.replace(MACHINE, call_sec=1e-12)  # no floor: the arithmetic sets every GPU line
    plain = describe_time(estimate_time(cost, machine=free), cost, gpus=[])
    assert not any('per-step floor' in line for line in plain)


def test_description_lines():
    cost = cost_of()
    estimate = estimate_time(cost, machine=MACHINE)
    lines = describe_time(estimate, cost, gpus=[])
    here = [line for line in lines if 'estimated' in line and 'this machine' in line]
    assert len(here) == 1 and format_duration(estimate.total_sec) in here[0]
    assert sum(1 for line in lines if line.lstrip().startswith(tuple(gpu.name + ' (' for gpu in GPU_MODELS))) == len(GPU_MODELS)
    assert not any(line.startswith('warning') for line in lines)


def test_a_warning_when_the_memory_estimate_exceeds_a_present_gpu():
    cost = cost_of(batch=64)
    estimate = estimate_time(cost, machine=MACHINE)
    small = describe_time(estimate, cost, gpus=[('Tiny GPU', 2 ** 20)])
    large = describe_time(estimate, cost, gpus=[('Huge GPU', 2 ** 40)])
    assert any(line.startswith('warning') and 'Tiny GPU' in line and 'memory' in line for line in small)
    assert not any(line.startswith('warning') for line in large)


def test_the_measurement_runs_the_real_step_in_seconds():
    tiny = Architecture(latent_size=8, channels=1, output_size=8, widths={4: 8, 8: 8})
    cost = run_cost(tiny, build_phases(8, 10, 4, 256, 4))
    machine = measure_machine(cost)
    assert dict(machine.layer_gflops).keys() == {4, 8} and min(dict(machine.layer_gflops).values()) > 0
    assert 0 < machine.step_sec < machine.first_call_sec
    assert machine.call_sec > 0 and machine.measure_sec < 60


@pytest.mark.parametrize('name, gib', [('NVIDIA A100-SXM4-40GB', 40), ('Tesla V100-SXM2-32GB', 32), ('Tesla T4', 16),
                                       ('NVIDIA GeForce RTX 4090', 24), ('Some Other GPU', None)])
def test_gpu_memory_from_the_name_tensorflow_reports(name, gib):
    assert memory_from_device_name(name) == (gib * 2 ** 30 if gib else None)


def test_an_automatic_precision_puts_each_gpu_at_its_own_choice():
    """`mixed_precision: null` chose bfloat16 for this CPU; on a T4 or V100 it would choose float16 (no bfloat16
    units there), on an A100 bfloat16: the GPU lines say so instead of leaving the older GPUs blank."""
    cost = cost_of(mixed_precision='mixed_bfloat16')
    fixed = estimate_time(cost, machine=MACHINE)
    automatic = estimate_time(cost, machine=MACHINE, automatic_precision=True)
    assert fixed.gpu_seconds['T4'] is None and automatic.gpu_seconds['T4'] is not None
    assert automatic.gpu_precisions == {'T4': 'mixed_float16', 'V100': 'mixed_float16', 'A10': 'mixed_bfloat16',
                                        'L4': 'mixed_bfloat16', 'RTX 4090': 'mixed_bfloat16',
                                        'A100': 'mixed_bfloat16', 'H100': 'mixed_bfloat16'}
    lines = describe_time(automatic, cost, gpus=[])
    assert any('each GPU at the precision mixed_precision: null picks for it' in line for line in lines)
    assert any(line.lstrip().startswith('T4 (16 GB, FP16 tensor cores): ') for line in lines)
    assert any(line.lstrip().startswith('A100 (80 GB, BF16 tensor cores): ') for line in lines)
