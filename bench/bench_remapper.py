"""Does grappler's failing remapper cost training speed? images/s of the real step per remapper setting and activation.

TensorFlow 2.21 logs `remapper failed: INVALID_ARGUMENT: Mutation::Apply error:
fanout '.../LeakyReluGrad' exist for missing node '.../add'` when it optimizes
the training step. Grappler runs its optimizers twice; the first remapper pass
fuses Conv2D + bias (+ LeakyRelu where the pre-activation has no other reader),
the second tries to fuse each resulting _FusedConv2D with its LeakyRelu
although LeakyReluGrad still reads the pre-activation, the mutation is refused
and that second pass alone is dropped (its first-pass fusions stay).

Variants, all in one process, their timed rounds taking turns so that a busy
spell of the shared machine hits every variant alike (the remapper setting is
read when a function is first run, so each variant's step keeps its own):

- `input_gradient`: `tf.nn.leaky_relu`, whose gradient reads the pre-activation
  (the graph that logs the failure), remapper on;
- `input_gradient_no_remap`: the same with `{'remapping': False}`;
- `output_gradient`: a LeakyReLU whose gradient reads its output instead
  (`output_gradient_leaky_relu` below; the same numbers since the output has
  the sign of the input), so every conv + bias + LeakyReLU fuses and the
  remapper succeeds;
- `output_gradient_no_remap`: that graph without the remapper.

    python bench/bench_remapper.py                       # 16, 32, 64 px, 128 filters, batch 16, float32, no XLA
    python bench/bench_remapper.py --sizes 32 --rounds 9 --variants input_gradient output_gradient
    python bench/bench_remapper.py --check-only          # outputs of the two activations after 3 steps, no timing

Each row: best and median s/step over the rounds (a round is --steps steps;
each step was traced and run 3 times first), the best CPU seconds of this
process per step (less sensitive to other jobs than wall time), the median and
range of the per-round ratio to `input_gradient`'s round next to it, and
whether grappler logged `remapper failed` while optimizing that variant's step.
"""

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

VARIANTS = ('input_gradient', 'input_gradient_no_remap', 'output_gradient', 'output_gradient_no_remap')


def use_activation(gradient_from):
    """Make the networks use a LeakyReLU whose gradient reads its `input` (tf.nn.leaky_relu) or its `output`."""
    import tensorflow as tf
    from deepzine.model import layers, networks
    if gradient_from == 'input':
        def activation(x):
            return tf.nn.leaky_relu(x, layers.LEAKY_RELU_SLOPE)
    else:
        activation = output_gradient_leaky_relu
    networks.leaky_relu = activation


def output_gradient_leaky_relu(x):
    """LeakyReLU with its gradient computed from the output (the package's version, if it has it, is used instead)."""
    import tensorflow as tf
    from deepzine.model.layers import LEAKY_RELU_SLOPE

    @tf.custom_gradient
    def forward(x):
        y = tf.nn.leaky_relu(x, LEAKY_RELU_SLOPE)
        return y, lambda dy: tf.raw_ops.LeakyReluGrad(gradients=dy, features=tf.stop_gradient(y),
                                                      alpha=LEAKY_RELU_SLOPE)
    return forward(x)


def make_step(size, args):
    from bench_train import build
    from deepzine.training.schedule import Phase
    from deepzine.training.step import StepSettings, make_phase_step
    _, strategy, models, state, dataset = build(size, args.filters, args.latent, args.channels, args.batch,
                                                           'float32')
    step = make_phase_step(strategy, models, state, StepSettings(latent_size=args.latent),
                           Phase(1, size, args.kind, 10 ** 6, args.batch))
    return models, state, step, iter(dataset)


def set_variant(variant):
    """Remapper setting and activation of `variant`; the setting is read when a function is first run (optimized)."""
    import tensorflow as tf
    tf.config.optimizer.set_experimental_options({'remapping': not variant.endswith('_no_remap')})
    use_activation('output' if variant.startswith('output') else 'input')


@contextlib.contextmanager
def stderr_captured():
    """Collect what C++ writes to file descriptor 2 (grappler's errors) into a list of one string."""
    text = []
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text.append(capture.read().decode(errors='replace'))


def build_variant(variant, size, args):
    """(state, step, iterator, remapper failed) with the step traced, optimized by grappler and warmed up."""
    set_variant(variant)
    _, state, step, iterator = make_step(size, args)
    with stderr_captured() as log:
        step(iterator)
        state.phase_step.numpy()
    for _ in range(2):
        step(iterator)
    state.phase_step.numpy()
    return state, step, iterator, 'remapper failed' in log[0]


def time_round(variant, built, steps):
    """(wall, CPU) seconds per step of `steps` steps."""
    state, step, iterator = built[:3]
    set_variant(variant)  # the same setting the step was optimized under, so nothing re-optimizes it
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step(iterator)
    state.phase_step.numpy()
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu_start) / steps


def speed_table(args):
    """Rounds of the variants take turns (order rotated each round), so load changes hit every variant alike."""
    print('| size | variant | remapper failed | best s/step | median s/step | best img/s '
          '| best / median CPU s/step | per-round ratio to input_gradient: median (range) |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- |')
    load_lines = []
    for size in args.sizes:
        built = {variant: build_variant(variant, size, args) for variant in args.variants}
        wall = {variant: [] for variant in args.variants}
        cpu = {variant: [] for variant in args.variants}
        for round_index in range(args.rounds):
            shift = round_index % len(args.variants)
            for variant in args.variants[shift:] + args.variants[:shift]:
                seconds, cpu_seconds = time_round(variant, built[variant], args.steps)
                wall[variant].append(seconds)
                cpu[variant].append(cpu_seconds)
        loads = os.getloadavg()
        for variant in args.variants:
            ratios = ([new / old for new, old in zip(wall[variant], wall['input_gradient'])]
                      if 'input_gradient' in wall else [float('nan')])
            best = min(wall[variant])
            print(f'| {size} | {variant} | {"yes" if built[variant][3] else "no"} '
                  f'| {best:.3f} | {statistics.median(wall[variant]):.3f} | {args.batch / best:.1f} '
                  f'| {min(cpu[variant]):.3f} / {statistics.median(cpu[variant]):.3f} '
                  f'| {statistics.median(ratios):.3f} ({min(ratios):.2f}-{max(ratios):.2f}) |', flush=True)
        load_lines.append(f'{size}x{size}: {loads[0]:.1f} / {loads[1]:.1f}')
    print(f'\nload average (1 / 5 min) after each size: {", ".join(load_lines)}')


def check_outputs(args):
    """Largest differences between the two activations after 3 steps from the same weights, data and RNG seed."""
    import keras
    import numpy as np
    for size in args.sizes:
        results = {}
        for gradient_from in ('input', 'output'):
            set_variant(f'{gradient_from}_gradient')
            keras.utils.set_random_seed(0)
            models, state, step, iterator = make_step(size, args)
            with stderr_captured():  # the input-gradient graph's remapper error, reported by the speed table
                for _ in range(3):
                    step(iterator)
                state.phase_step.numpy()
            networks = (models.generator, models.generator_ema, models.discriminator)
            results[gradient_from] = ({name: float(total.numpy()) for name, total in state.metric_sums.items()},
                                      [weight.numpy() for network in networks for weight in network.weights])
        (losses_in, weights_in), (losses_out, weights_out) = results['input'], results['output']
        loss_difference = max(abs(losses_in[name] - losses_out[name]) for name in losses_in)
        weight_difference = max(float(np.max(np.abs(a - b))) for a, b in zip(weights_in, weights_out))
        print(f'{size}x{size} {args.kind}, 3 steps, input vs output gradient: largest difference of the loss sums '
              f'{loss_difference:.1e} (sums {", ".join(f"{value:.4g}" for value in losses_in.values())}), '
              f'of the weights {weight_difference:.1e} (largest weight '
              f'{max(float(np.max(np.abs(a))) for a in weights_in):.2f})', flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', type=int, nargs='+', default=[16, 32, 64])
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument('--kind', default='stable', choices=['stable', 'fade'])
    parser.add_argument('--filters', type=int, default=128, help='max_filter (halving from 64x64 up, floor 16)')
    parser.add_argument('--latent', type=int, default=128)
    parser.add_argument('--channels', type=int, default=3)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--steps', type=int, default=4, help='steps per timed round')
    parser.add_argument('--rounds', type=int, default=5, help='timed rounds per variant, variants taking turns')
    parser.add_argument('--threads', type=int, default=0,
                        help='intra- and inter-op threads (0: TensorFlow\'s default); 1 makes CPU s/step the work done')
    parser.add_argument('--check-only', action='store_true', help='compare the two activations\' outputs, no timing')
    args = parser.parse_args(argv)
    if args.check_only:
        check_outputs(args)
        return
    import tensorflow as tf
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    print(f'TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, threads {args.threads or "default"}, {args.kind}, filters {args.filters}, '
          f'batch {args.batch}, float32, no XLA; {args.rounds} rounds x {args.steps} steps per variant and size\n')
    speed_table(args)
    print()
    check_outputs(args)


if __name__ == '__main__':
    main()
