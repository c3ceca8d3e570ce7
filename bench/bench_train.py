"""Training speed: images/s of the real training step per size and phase kind, eager vs tf.function vs XLA, precisions.

The step is deepzine.training.step.make_phase_step (WGAN-GP + drift, one
critic and one generator update, EMA), fed from an in-memory batch so the
table measures the step, not the HDF5 (bench_data.py measures that). Next to
each rate:

- GFLOP per training image, counted two ways: the TF profiler's per-op FLOP
  statistics (`Conv2D`, `Conv2DBackpropInput/Filter`, `MatMul`, element-wise
  ops) summed over the ops the step's graph actually executes (the graph pruned
  back from its outputs and stateful ops, as grappler prunes it), and a
  count from the layer shapes (4 F_G + 14 F_D per image, F = 2 x multiply-adds
  of one forward pass; see `step_flop_from_shapes`) as a cross-check;
- the achieved GFLOP/s and its share of the machine's peak, measured in the
  same process as the best GFLOP/s of a 4096 x 4096 float32 matmul, taken just
  before each row (the machine is shared: other jobs take cores at random).

    python bench/bench_train.py                                  # 32x32, 128 filters, batch 16: the target config
    python bench/bench_train.py --sizes 8 16 32 64 --kinds stable fade --modes function xla
    python bench/bench_train.py --precisions float32 mixed_bfloat16 --modes function
    python bench/bench_train.py --memory                         # peak RSS of a real short run vs collection size

Every rate is the best of --rounds rounds of --steps steps after a warm-up
(trace + 2 steps): other processes only ever slow a round down.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

FLOP_OPS_OF_INTEREST = ('Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'MatMul')


def matmul_peak_gflops(size=4096, repeats=4):
    """Best float32 GFLOP/s of one size x size matmul (2 n^3 FLOP) in this process, right now."""
    import tensorflow as tf
    a, b = tf.random.normal([size, size]), tf.random.normal([size, size])
    matmul = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    matmul(a, b).numpy()
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def forward_flop(architecture, size, fading, network):
    """2 x multiply-adds of one forward pass of `network` ('generator' or 'discriminator') at `size`, per image."""
    widths, channels, flop = architecture.widths, architecture.channels, 0
    flop += 2 * architecture.latent_size * 16 * widths[4] if network == 'generator' else 2 * 16 * widths[4]
    conv_4x4_in = widths[4] + (1 if network == 'discriminator' else 0)  # + the minibatch-stddev map
    flop += 2 * 9 * 16 * conv_4x4_in * widths[4]
    for block in architecture.sizes[1:architecture.sizes.index(size) + 1]:
        inner = widths[block // 2] if network == 'generator' else widths[block]
        outer = widths[block] if network == 'generator' else widths[block // 2]
        flop += 2 * 9 * block * block * (inner * widths[block] + widths[block] * outer)
    rgb = [size, size // 2] if fading else [size]
    for rgb_size in rgb:
        flop += 2 * rgb_size * rgb_size * widths[rgb_size] * channels
    return flop


def step_flop_from_shapes(architecture, size, fading):
    """FLOP per training image of one step from the layer shapes: 4 F_G + 14 F_D.

    Critic update: G forward (F_G); D forward on reals, fakes and the GP points
    (3 F_D); backward of the real and fake passes (2 x 2 F_D); the GP's input
    gradient (F_D), its second-order terms for the weights (2 F_D) and the
    backward of its forward pass (2 F_D, non-zero through minibatch stddev).
    Generator update: G forward, D forward, D input gradient, G backward
    (F_G + F_D + F_D + 2 F_G).
    """
    generator = forward_flop(architecture, size, fading, 'generator')
    discriminator = forward_flop(architecture, size, fading, 'discriminator')
    return 4 * generator + 14 * discriminator


def executed_flop(concrete_function):
    """FLOP of the ops a traced step executes, by the TF profiler's registered per-op statistics.

    Ops nothing depends on (e.g. filter gradients of the critic during the
    generator update) are pruned before running: walk back from the outputs
    and the stateful ops (variable updates) and count only what is reached.
    """
    from tensorflow.python.framework import ops as framework_ops
    graph = concrete_function.graph
    roots = [tensor.op for tensor in graph.outputs] + list(graph.control_outputs)
    roots += [op for op in graph.get_operations() if op.type in ('AssignVariableOp', 'AssignAddVariableOp')]
    reached, stack = set(), list(roots)
    while stack:
        op = stack.pop()
        if op.name in reached:
            continue
        reached.add(op.name)
        stack.extend(tensor.op for tensor in op.inputs)
        stack.extend(op.control_inputs)
    total, by_type = 0, {}
    for op in graph.get_operations():
        if op.name not in reached:
            continue
        try:
            value = framework_ops.get_stats_for_node_def(graph, op.node_def, 'flops').value
        except ValueError:  # no statistic registered for this op type: not arithmetic we count
            value = None
        if value:
            total += value
            key = op.type if op.type in FLOP_OPS_OF_INTEREST else 'element-wise'
            by_type[key] = by_type.get(key, 0) + value
    return total, by_type


def build(size, filters, latent, channels, batch, precision):
    import tensorflow as tf
    from deepzine.model.architecture import Architecture, filter_widths
    from deepzine.training.step import StepState, build_training_models
    architecture = Architecture(latent_size=latent, channels=channels, output_size=size,
                                widths=filter_widths(size, filters, 16, 64))
    strategy = tf.distribute.get_strategy()
    models = build_training_models(architecture, strategy, 0.001, precision)
    reals = tf.random.uniform([batch, size, size, channels], -1, 1)
    return architecture, strategy, models, StepState(seed=1), tf.data.Dataset.from_tensors(reals).repeat()


def time_step(args, size, kind, mode, precision):
    """(seconds per step, counted FLOP per image, flop by op type, trace seconds) for one configuration."""
    import tensorflow as tf
    from deepzine.training.schedule import Phase
    from deepzine.training.step import StepSettings, make_phase_step
    architecture, strategy, models, state, dataset = build(size, args.filters, args.latent, args.channels, args.batch,
                                                           precision)
    settings = StepSettings(latent_size=args.latent, jit_compile=mode == 'xla')
    step = make_phase_step(strategy, models, state, settings, Phase(1, size, kind, 10 ** 6, args.batch))
    iterator = iter(dataset)
    tf.config.run_functions_eagerly(mode == 'eager')
    try:
        start = time.perf_counter()
        step(iterator)
        state.phase_step.numpy()
        trace_seconds = time.perf_counter() - start
        for _ in range(2):
            step(iterator)
        best = float('inf')
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(args.steps):
                step(iterator)
            state.phase_step.numpy()
            best = min(best, (time.perf_counter() - start) / args.steps)
    finally:
        tf.config.run_functions_eagerly(False)
    counted, by_type = (executed_flop(step.get_concrete_function(iterator)) if mode == 'function'
                        else (None, None))
    return best, counted, by_type, trace_seconds


def speed_table(args):
    from deepzine.model.architecture import Architecture, filter_widths
    print(f'filters {args.filters}, latent {args.latent}, channels {args.channels}, batch {args.batch}; '
          f'best of {args.rounds} x {args.steps} steps\n')
    print('| size | phase | mode | precision | s/step | img/s | GFLOP/img counted | GFLOP/img from shapes '
          '| GFLOP/s | peak GFLOP/s | % of peak | trace s |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    counted_by_size = {}
    for size in args.sizes:
        architecture = Architecture(latent_size=args.latent, channels=args.channels, output_size=size,
                                    widths=filter_widths(size, args.filters, 16, 64))
        for kind in args.kinds:
            shapes = step_flop_from_shapes(architecture, size, kind == 'fade') / 1e9
            for precision in args.precisions:
                for mode in args.modes:
                    peak = matmul_peak_gflops()
                    seconds, counted, by_type, trace = time_step(args, size, kind, mode, precision)
                    if counted is not None:
                        counted_by_size[(size, kind)] = (counted / args.batch / 1e9, by_type)
                    per_image = counted_by_size.get((size, kind), (shapes, None))[0]
                    achieved = per_image * args.batch / seconds
                    peak = max(peak, matmul_peak_gflops())
                    print(f'| {size} | {kind} | {mode} | {precision} | {seconds:.3f} | {args.batch / seconds:.1f} | '
                          f'{per_image:.2f} | {shapes:.2f} | {achieved:.0f} | {peak:.0f} | {100 * achieved / peak:.0f}% '
                          f'| {trace:.1f} |', flush=True)
    for (size, kind), (per_image, by_type) in counted_by_size.items():
        parts = ', '.join(f'{name} {value / args.batch / 1e9:.2f}' for name, value in sorted(by_type.items()))
        print(f'\ncounted GFLOP per image at {size}x{size} {kind}: {per_image:.2f} ({parts})')


MEMORY_RUN = '''
import resource, sys, yaml
from deepzine.parameters import registry, resolve
from deepzine.training.stage import TrainStage
from deepzine.training.trainer import train
stage = TrainStage(resolve(yaml.safe_load(open(sys.argv[1])), registry([TrainStage])))
stage.validate()
train(stage)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
'''


def memory_table(args):
    """Peak RSS of a real short training run (page_dataset from HDF5, checkpoints, samples) against collection size."""
    import yaml
    from deepzine.data.squaring import build_pyramid
    from deepzine.data.writer import PageWriter
    print('| pages in HDF5 | HDF5 MiB | steps | peak RSS MiB |\n| --- | --- | --- | --- |')
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        for count in args.page_counts:
            path = os.path.join(folder, f'pages_{count}.hdf5')
            schema = {'output_size': 16, 'channels': 1, 'square_mode': 'stretch', 'pdf_dpi': 72,
                      'pdf_conversion_program': 'pypdfium2'}
            writer = PageWriter(path, schema, attributes={})
            for start in range(0, count, 5000):
                pages = rng.integers(0, 256, (min(5000, count - start), 16, 16, 1), dtype=np.uint8)
                writer.append_pages(build_pyramid(pages), [('bench', 'bench.pdf', i) for i in range(len(pages))])
                writer.commit_document(f'bench_{start}.pdf', size_bytes=0, pages_written=len(pages), pages_skipped=0,
                                       status='packed')
            writer.finish()
            config = {'train': True, 'data_hdf5': path, 'log_dir': os.path.join(folder, f'log_{count}'),
                      'samples_dir': os.path.join(folder, f'samples_{count}'), 'gan_output_size': 16,
                      'latent_size': 32, 'max_filter': 32, 'batch_size': 16, 'iterations_per_stage': 200,
                      'model_sample_interval_steps': 100, 'model_save_interval_steps': 100, 'random_seed': 1}
            config_path = os.path.join(folder, f'config_{count}.yaml')
            with open(config_path, 'w', encoding='utf-8') as handle:
                yaml.safe_dump(config, handle)
            result = subprocess.run([sys.executable, '-c', MEMORY_RUN, config_path], capture_output=True, text=True,
                                    cwd=REPO, check=True)
            rss = int(result.stdout.strip().splitlines()[-1])
            print(f'| {count} | {os.path.getsize(path) / 2 ** 20:.1f} | 5 phases x 200 | {rss} |', flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', type=int, nargs='+', default=[32])
    parser.add_argument('--kinds', nargs='+', default=['stable', 'fade'], choices=['stable', 'fade'])
    parser.add_argument('--modes', nargs='+', default=['eager', 'function', 'xla'], choices=['eager', 'function', 'xla'])
    parser.add_argument('--precisions', nargs='+', default=['float32'],
                        choices=['float32', 'mixed_bfloat16', 'mixed_float16'])
    parser.add_argument('--filters', type=int, default=128, help='max_filter (halving from 64x64 up, floor 16)')
    parser.add_argument('--latent', type=int, default=128)
    parser.add_argument('--channels', type=int, default=3)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--steps', type=int, default=4, help='steps per timed round')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--memory', action='store_true', help='measure peak RSS against collection size instead')
    parser.add_argument('--page-counts', type=int, nargs='+', default=[1000, 10000, 100000])
    args = parser.parse_args(argv)
    import tensorflow as tf
    tf.get_logger().setLevel('ERROR')  # the TF1 statistics API used for counting FLOPs prints a deprecation notice
    print(f'TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, oneDNN '
          f'{"off" if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0" else "on"}')
    if args.memory:
        memory_table(args)
    else:
        speed_table(args)
    print(f'\nthis process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB')


if __name__ == '__main__':
    main()
