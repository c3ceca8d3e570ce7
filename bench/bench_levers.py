"""One training step of the lean 128x128 recipe under one speed lever: is the lever worth keeping?

Each run times the real step with bench_train.py's `time_step` (the train
stage's own plan and `make_phase_step`) in a fresh process, so a lever
that changes TensorFlow's threads or a layer's code cannot leak into the
next. Levers that are not the package's code are put in by replacing one
function here, never in the package:

    python bench/bench_levers.py --precision float32                 # the float32 baseline
    python bench/bench_levers.py                                     # mixed_bfloat16, the package as it is
    python bench/bench_levers.py --lever bias_plus                   # the bias added with + (before bias_add)
    python bench/bench_levers.py --lever no_penalty                  # no gradient penalty: what it costs at most
    python bench/bench_levers.py --lever half_penalty                # the penalty on half of each batch
    python bench/bench_levers.py --inter-op 1                        # one inter-op thread
    python bench/bench_levers.py --xla                               # XLA (jit_compile)
    python bench/bench_levers.py --batch 32

Prints ms per step and images/s: the best of --rounds rounds of --steps steps
after the trace and two warm-up steps.
"""

import argparse
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tensorflow as tf  # noqa: E402

import bench_train  # noqa: E402
import deepzine.model.layers as layers  # noqa: E402
import deepzine.training.losses as losses  # noqa: E402

LEVERS = ('none', 'bias_plus', 'no_penalty', 'half_penalty')


def put_in(lever):
    """Replace the one function the lever changes."""
    if lever == 'bias_plus':
        layers.ScaledConv2D.call = lambda self, x: tf.nn.conv2d(x, self.scaled_kernel(), 1, 'SAME') + self.bias
    if lever == 'no_penalty':
        losses.gradient_penalty = lambda discriminator, reals, *rest, **keywords: tf.zeros([tf.shape(reals)[0]])
    if lever == 'half_penalty':
        whole_batch = losses.gradient_penalty

        def half_batch(discriminator, reals, fakes, collections, epsilon, *rest, **keywords):
            half = tf.shape(reals)[0] // 2
            penalty = whole_batch(discriminator, reals[:half], fakes[:half],
                                  None if collections is None else collections[:half], epsilon[:half], *rest, **keywords)
            return tf.concat([penalty, penalty], 0)
        losses.gradient_penalty = half_batch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bench_train.add_lean_recipe_arguments(parser)
    parser.add_argument('--precision', default='mixed_bfloat16', choices=['float32', 'mixed_bfloat16', 'mixed_float16'])
    parser.add_argument('--lever', default='none', choices=LEVERS)
    parser.add_argument('--inter-op', type=int, default=0, help='inter-op threads (0: TensorFlow decides)')
    parser.add_argument('--xla', action='store_true')
    parser.add_argument('--steps', type=int, default=6)
    parser.add_argument('--rounds', type=int, default=3)
    args = parser.parse_args()
    if args.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    put_in(args.lever)
    best, _, _, trace = bench_train.time_step(args, args.size, args.kind, 'xla' if args.xla else 'function',
                                              args.precision)
    print(f'{args.size}x{args.size} {args.kind}, {args.precision}, lever {args.lever}, {args.collections} collection(s), '
          f'batch {args.batch}, inter-op '
          f'{args.inter_op or "auto"}, XLA {"on" if args.xla else "off"}: {best * 1000:.0f} ms/step, '
          f'{args.batch / best:.1f} images/s (trace {trace:.1f} s, load {os.getloadavg()[0]:.1f})', flush=True)


if __name__ == '__main__':
    main()
