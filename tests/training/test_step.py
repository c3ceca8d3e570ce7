"""One phase's compiled step on a tiny model: what it updates, what it leaves alone, alpha, EMA, optimizer reset."""

import numpy as np
import pytest
import tensorflow as tf

from deepzine.model.architecture import Architecture
from deepzine.training.schedule import Phase
from deepzine.training.step import (StepSettings, StepState, build_training_models, make_phase_step,
                                    reset_optimizer)

ARCHITECTURE = Architecture(latent_size=16, channels=1, output_size=16, widths={4: 16, 8: 16, 16: 8})
BETA = 0.9


def batches(size, count=None, batch=4):
    """Real batches whose every pixel is the batch's number / 10, so a test can tell which batch comes next."""
    numbers = tf.data.Dataset.range(count) if count else tf.data.Dataset.range(1000)
    return numbers.map(lambda n: (tf.fill([batch, size, size, 1], tf.cast(n, tf.float32) / 10.0),
                                  tf.zeros([batch], tf.int32)))


def snapshot(variables):
    return {variable.path: variable.numpy().copy() for variable in variables}


@pytest.fixture
def setup():
    strategy = tf.distribute.get_strategy()
    models = build_training_models(ARCHITECTURE, strategy, learning_rate=0.01)
    return strategy, models, StepState(seed=3)


def test_stable_step_trains_only_the_layers_of_its_size_and_averages_the_generator(setup):
    strategy, models, state = setup
    settings = StepSettings(latent_size=16, generator_ema_beta=BETA)
    step = make_phase_step(strategy, models, state, settings, Phase(0, 4, 'stable', 10, 4))
    generator_before = snapshot(models.generator.trainable_variables)
    discriminator_before = snapshot(models.discriminator.trainable_variables)
    step(iter(batches(4)))
    generator_after = snapshot(models.generator.trainable_variables)
    discriminator_after = snapshot(models.discriminator.trainable_variables)
    changed = {path for path in generator_after if not np.array_equal(generator_after[path], generator_before[path])}
    assert any('conv_4x4' in path for path in changed) and any('to_rgb_4x4' in path for path in changed)
    assert not any('8x8' in path or '16x16' in path for path in changed)
    changed = {path for path in discriminator_after
               if not np.array_equal(discriminator_after[path], discriminator_before[path])}
    assert any('from_rgb_4x4' in path for path in changed) and any('dense_logit' in path for path in changed)
    assert not any('8x8' in path or '16x16' in path for path in changed)
    # EMA started as a copy of G: after one step it is new + beta * (old - new).
    for variable, average in zip(models.generator.trainable_variables, models.generator_ema.trainable_variables):
        old, new = generator_before[variable.path], generator_after[variable.path]
        np.testing.assert_allclose(average.numpy(), new + BETA * (old - new), rtol=1e-5, atol=1e-7)
    assert int(state.phase_step.numpy()) == 1 and int(state.global_step.numpy()) == 1
    metrics, steps = state.take_metrics()
    assert steps == 1 and all(np.isfinite(value) for value in metrics.values())
    assert metrics['gradient_penalty'] > 0
    assert state.take_metrics()[1] == 0


@pytest.mark.slow
def test_fade_step_sets_alpha_from_the_step_and_reads_one_batch_per_critic_update(setup):
    strategy, models, state = setup
    settings = StepSettings(latent_size=16, discriminator_updates=2)
    step = make_phase_step(strategy, models, state, settings, Phase(1, 8, 'fade', 4, 4))
    iterator = iter(batches(8, count=6))
    alphas = []
    for _ in range(2):
        step(iterator)
        alphas.append(float(state.alpha.numpy()))
    assert alphas == [0.0, 0.25]
    assert step.experimental_get_tracing_count() == 1  # alpha lives in a variable: no retracing as it moves
    assert float(next(iterator)[0][0, 0, 0, 0]) == pytest.approx(0.4)  # batches 0-3 went to the critic
    assert int(state.phase_step.numpy()) == 2


def test_reset_optimizer_zeroes_moments_and_step_but_keeps_the_learning_rate(setup):
    strategy, models, state = setup
    step = make_phase_step(strategy, models, state, StepSettings(latent_size=16), Phase(0, 4, 'stable', 10, 4))
    step(iter(batches(4)))
    optimizer = models.discriminator_optimizer
    assert int(optimizer.iterations.numpy()) == 1
    reset_optimizer(optimizer)
    assert int(optimizer.iterations.numpy()) == 0
    assert all(not np.any(variable.numpy()) for variable in optimizer.variables if 'learning_rate' not in variable.path)
    assert float(optimizer.learning_rate.numpy()) == pytest.approx(0.01)


@pytest.mark.slow
def test_xla_step_computes_the_losses_of_the_plain_step(setup):
    """The one XLA test (compiling takes seconds): same weights and seed, same losses."""
    strategy, models, _ = setup
    initial = [variable.numpy() for variable in models.generator.weights + models.discriminator.weights]
    results = []
    for jit_compile in (False, True):
        for variable, value in zip(models.generator.weights + models.discriminator.weights, initial):
            variable.assign(value)
        state = StepState(seed=5)
        settings = StepSettings(latent_size=16, jit_compile=jit_compile)
        make_phase_step(strategy, models, state, settings, Phase(0, 4, 'stable', 10, 4))(iter(batches(4)))
        results.append(state.take_metrics()[0])
    for name, value in results[0].items():
        if name != 'generator_loss':  # the critic terms come before any update: same numbers
            assert results[1][name] == pytest.approx(value, rel=1e-4, abs=1e-5), name
    # After the critic's Adam step (which turns rounding-level gradient differences into whole steps): close.
    assert results[1]['generator_loss'] == pytest.approx(results[0]['generator_loss'], rel=0.02)


@pytest.mark.parametrize('precision', ['mixed_float16', 'mixed_bfloat16'])
def test_mixed_precision_step_trains_float32_weights(precision):
    import keras
    strategy = tf.distribute.get_strategy()
    models = build_training_models(ARCHITECTURE, strategy, learning_rate=0.01, mixed_precision=precision)
    assert keras.config.dtype_policy().name == 'float32'  # the global policy is restored after building
    assert models.generator.conv_4x4.compute_dtype == precision.split('_')[1]
    assert models.loss_scaling == (precision == 'mixed_float16')
    state = StepState(seed=1)
    before = snapshot(models.discriminator.trainable_variables)
    step = make_phase_step(strategy, models, state, StepSettings(latent_size=16), Phase(0, 4, 'stable', 10, 4))
    iterator = iter(batches(4))
    for _ in range(4):  # float16: the first steps may overflow at the initial loss scale and be skipped
        step(iterator)
    after = snapshot(models.discriminator.trainable_variables)
    assert all(value.dtype == np.float32 for value in after.values())
    assert any(not np.array_equal(after[path], before[path]) for path in after)
    assert all(np.isfinite(value) for value in state.take_metrics()[0].values())
