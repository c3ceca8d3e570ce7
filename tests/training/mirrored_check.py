"""Run by test_distributed in its own process: one training step on one device and on two mirrored CPUs, as JSON.

Logical devices must be configured before TensorFlow runs anything, which is
why this is a separate process and not part of the pytest process.
"""

import json
import sys

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from deepzine.model.architecture import Architecture  # noqa: E402 (after the device setup)
from deepzine.training.schedule import Phase  # noqa: E402
from deepzine.training.step import StepSettings, StepState, build_training_models, make_phase_step  # noqa: E402

# Group size 1: minibatch-stddev groups are per device, so any larger group would differ between 1 and 2 devices.
# Conditioned on two collections: each replica's pages must keep their own collections.
ARCHITECTURE = Architecture(latent_size=16, channels=1, output_size=8, widths={4: 16, 8: 8}, minibatch_group_size=1,
                            collection_count=2)
STEPS = 2


def run(strategy, initial):
    models = build_training_models(ARCHITECTURE, strategy, learning_rate=0.01)
    networks = (models.generator, models.generator_ema, models.discriminator)
    for network, values in zip(networks, initial):
        for variable, value in zip(network.weights, values):
            variable.assign(value)
    state = StepState(seed=11)
    reals = tf.constant(np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 1)), tf.float32)
    dataset = tf.data.Dataset.from_tensors((reals, tf.constant([0, 1, 1, 0, 1, 0, 0, 1], tf.int32))).repeat()
    step = make_phase_step(strategy, models, state, StepSettings(latent_size=16), Phase(1, 8, 'fade', 4, 8))
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    for _ in range(STEPS):
        step(iterator)
    metrics, _ = state.take_metrics()
    return metrics, [[variable.numpy() for variable in network.weights] for network in networks]


def main():
    reference = build_training_models(ARCHITECTURE, tf.distribute.get_strategy(), learning_rate=0.01)
    initial = [[variable.numpy() for variable in network.weights]
               for network in (reference.generator, reference.generator_ema, reference.discriminator)]
    mirrored = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
    one_metrics, one_weights = run(tf.distribute.get_strategy(), initial)
    two_metrics, two_weights = run(mirrored, initial)
    moved = max(float(np.abs(after - before).max()) for network_after, network_before in zip(one_weights, initial)
                for after, before in zip(network_after, network_before))
    difference = max(float(np.abs(a - b).max()) for network_a, network_b in zip(one_weights, two_weights)
                     for a, b in zip(network_a, network_b))
    json.dump({'replicas': mirrored.num_replicas_in_sync, 'one_device': one_metrics, 'two_devices': two_metrics,
               'largest_weight_change': moved, 'largest_weight_difference': difference}, sys.stdout)


if __name__ == '__main__':
    main()
