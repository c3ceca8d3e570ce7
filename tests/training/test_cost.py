"""The cost of a run from shapes: FLOPs against TensorFlow's profiler, parameters against the real networks, memory."""

import sys

import numpy as np
import pytest

from deepzine.model.architecture import Architecture
from deepzine.training.cost import (activation_bytes, describe_cost, format_bytes, profiled_flop, run_cost,
                                    step_flop)
from deepzine.training.schedule import Phase, build_phases

TINY = Architecture(latent_size=16, channels=1, output_size=16, widths={4: 8, 8: 8, 16: 8})
WIDER = Architecture(latent_size=32, channels=3, output_size=32, widths={4: 32, 8: 32, 16: 16, 32: 8})
CONDITIONAL = Architecture(latent_size=16, channels=1, output_size=8, widths={4: 8, 8: 8}, collection_count=3)


def phases(output_size=16, steps=10, batch=4, **overrides):
    return build_phases(output_size, steps, batch, 256, 4, **overrides)


def test_cost_module_does_not_import_tensorflow():
    import subprocess
    code = 'import sys, deepzine.training.cost; sys.exit(1 if "tensorflow" in sys.modules else 0)'
    assert subprocess.run([sys.executable, '-c', code]).returncode == 0


@pytest.mark.parametrize('size, kind, discriminator_updates, generator_updates, architecture',
                         [(4, 'stable', 2, 1, TINY), (16, 'fade', 1, 1, TINY), (8, 'stable', 1, 1, CONDITIONAL)])
def test_shape_count_equals_the_profiler_count_of_the_traced_step(size, kind, discriminator_updates, generator_updates,
                                                                  architecture):
    import tensorflow as tf
    from deepzine.training.step import StepSettings, StepState, build_training_models, make_phase_step
    strategy = tf.distribute.get_strategy()
    models = build_training_models(architecture, strategy, 0.001)
    settings = StepSettings(latent_size=16, discriminator_updates=discriminator_updates,
                            generator_updates=generator_updates)
    step = make_phase_step(strategy, models, StepState(seed=1), settings, Phase(1, size, kind, 10, 4))
    reals = iter(tf.data.Dataset.from_tensors((tf.zeros([4, size, size, 1]), tf.zeros([4], tf.int32))).repeat())
    profiled, by_type = profiled_flop(step.get_concrete_function(reals))
    counted = step_flop(architecture, size, kind == 'fade', 4, discriminator_updates, generator_updates)
    assert by_type['Conv2D'] > 0 and by_type['Conv2DBackpropFilter'] > 0
    assert counted == pytest.approx(profiled, rel=0.01)


def used_parameters(network, size, fading, inputs):
    import tensorflow as tf
    collections = tf.one_hot([0, 1], network.architecture.collection_count)
    with tf.GradientTape() as tape:
        network(inputs, collections, size=size, alpha=tf.constant(0.5) if fading else None)
    return sum(int(np.prod(variable.shape)) for variable in tape.watched_variables())


@pytest.mark.parametrize('architecture', [TINY, WIDER, CONDITIONAL])
def test_parameter_counts_equal_the_real_networks(architecture):
    import tensorflow as tf
    from deepzine.model.networks import build_networks
    generator, _, discriminator = build_networks(architecture)
    cost = run_cost(architecture, phases(architecture.output_size))
    assert cost.generator_parameters == sum(int(np.prod(v.shape)) for v in generator.trainable_variables)
    assert cost.discriminator_parameters == sum(int(np.prod(v.shape)) for v in discriminator.trainable_variables)
    latents = tf.zeros([2, architecture.latent_size])
    for phase in cost.phases:
        images = tf.zeros([2, phase.size, phase.size, architecture.channels])
        assert phase.generator_parameters == used_parameters(generator, phase.size, phase.kind == 'fade', latents)
        assert phase.discriminator_parameters == used_parameters(discriminator, phase.size, phase.kind == 'fade', images)


def test_memory_grows_with_the_batch_and_sixteen_bits_halve_only_the_activations():
    small = run_cost(WIDER, phases(32, batch=8))
    large = run_cost(WIDER, phases(32, batch=32))
    bfloat16 = run_cost(WIDER, phases(32, batch=32), mixed_precision='mixed_bfloat16')
    assert large.memory.activation_bytes == 4 * small.memory.activation_bytes
    assert large.memory.total_bytes > small.memory.total_bytes
    assert bfloat16.memory.activation_bytes * 2 == large.memory.activation_bytes
    assert bfloat16.memory.weights_bytes == large.memory.weights_bytes
    assert bfloat16.memory.optimizer_bytes == large.memory.optimizer_bytes
    assert large.memory.phase_name.startswith('32x32')


def test_memory_is_taken_at_the_phase_that_needs_the_most():
    # a much smaller batch at 32x32 moves the peak down to 16x16
    cost = run_cost(WIDER, phases(32, batch=32, batch_sizes={32: 1}))
    assert cost.memory.phase_name.startswith('16x16')
    assert cost.memory.activation_bytes == max(phase.activation_bytes for phase in cost.phases)
    assert activation_bytes(WIDER, 16, True, 32) == cost.memory.activation_bytes


def test_run_totals_count_every_real_image_the_critic_reads():
    trained = phases(16, steps=10, batch=4)[1:]  # a run starting at the 8x8 fade-in
    once = run_cost(TINY, trained)
    twice = run_cost(TINY, trained, discriminator_updates=2)
    assert [phase.name for phase in once.phases] == ['8x8 fade', '8x8 stable', '16x16 fade', '16x16 stable']
    assert once.real_images == 4 * 10 * 4 and twice.real_images == 2 * once.real_images
    assert once.gflop == pytest.approx(sum(p.gflop_per_image * p.real_images for p in once.phases))
    # a second critic update per step nearly doubles the step; per real image it costs less (one G update shared)
    assert 1.6 < twice.gflop / once.gflop < 2
    assert twice.phases[-1].gflop_per_image < once.phases[-1].gflop_per_image


def test_description_has_a_row_per_phase_totals_and_memory():
    cost = run_cost(TINY, phases(16))
    lines = describe_cost(cost)
    assert any(line.strip().startswith('4x4 stable') for line in lines)
    assert sum(1 for line in lines if line.strip().startswith(('4x4', '8x8', '16x16'))) == 5
    assert any(line.strip().startswith('total') for line in lines)
    memory = [line for line in lines if 'memory' in line]
    assert len(memory) == 1 and format_bytes(cost.memory.total_bytes) in memory[0]


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match='mixed_precision'):
        run_cost(TINY, phases(16), mixed_precision='float16')
