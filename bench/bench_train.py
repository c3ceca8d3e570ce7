"""Training speed: images/s of the real training step per size and phase kind, eager vs tf.function vs XLA, precisions.

The step is deepzine.training.step.make_phase_step (WGAN-GP + drift, one
critic and one generator update, EMA), fed from an in-memory batch so the
table measures the step, not the HDF5 (bench_data.py measures that). Next to
each rate:

- GFLOP per training image, counted two ways: the TF profiler's per-op FLOP
  statistics (`Conv2D`, `Conv2DBackpropInput/Filter`, `MatMul`, element-wise
  ops) summed over the ops the step's graph actually executes (the graph pruned
  back from its outputs and stateful ops, as grappler prunes it;
  `deepzine.training.cost.profiled_flop`), and the package's count from the
  layer shapes (about 4 F_G + 14 F_D per image, F = 2 x multiply-adds of one
  forward pass; `deepzine.training.cost.step_flop`) as a cross-check;
- the achieved GFLOP/s and its share of the machine's peak, measured in the
  same process as the best GFLOP/s of a 4096 x 4096 float32 matmul, taken just
  before each row (the machine is shared: other jobs take cores at random).

    python bench/bench_train.py                                  # 32x32, 128 filters, batch 16: the target config
    python bench/bench_train.py --sizes 8 16 32 64 --kinds stable fade --modes function xla
    python bench/bench_train.py --precisions float32 mixed_bfloat16 --modes function
    python bench/bench_train.py --memory                         # peak RSS of a real short run vs collection size
    python bench/bench_train.py --estimate short32 medium64     # estimated vs real time of `python wrapper.py` runs
    python bench/bench_train.py --activation-memory              # the memory estimate's activations vs peak RSS

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

from deepzine.training.cost import profiled_flop, step_flop  # noqa: E402


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


class _PromisedPageFile:
    """What the train stage reads of a load_data plan of the same run: the page file it will find."""

    def __init__(self, page_file):
        self.page_file = page_file


def stage_plan(args, size, precision, jit_compile):
    """The train stage's own plan for a run up to `size` with the bench's keys: its architecture, phases and
    hardware are what `python wrapper.py` would train (the page file is promised, not read)."""
    from deepzine.data.store import PageFileFacts
    from deepzine.parameters import registry, resolve
    from deepzine.sizes import sizes_between
    from deepzine.training.stage import TrainStage
    keys = {'train': True, 'data_hdf5': os.path.join(tempfile.gettempdir(), 'bench_pages.hdf5'),
            'log_dir': tempfile.mkdtemp(prefix='bench_train_'), 'gan_output_size': size, 'latent_size': args.latent,
            'max_filter': args.filters, 'min_filter': args.min_filter, 'filter_num_reduction_transition_size': args.transition,
            'batch_size': args.batch, 'iterations_per_stage': 10 ** 6, 'mixed_precision': precision,
            'jit_compile': jit_compile}
    names = tuple(f'collection{number}' for number in range(args.collections))
    page_file = PageFileFacts(keys['data_hdf5'], tuple(sizes_between(4, size)), args.channels, collections=names)
    return TrainStage(resolve(keys, registry([TrainStage]))).validate({'load_data': _PromisedPageFile(page_file)})


def build(plan):
    import tensorflow as tf
    from deepzine.training.step import StepState, build_training_models
    architecture, hardware = plan.architecture, plan.hardware
    strategy = tf.distribute.get_strategy()
    models = build_training_models(architecture, strategy, plan.learning_rate, hardware.mixed_precision)
    batch, size = plan.phases[-1].batch_size, architecture.output_size
    reals = tf.random.uniform([batch, size, size, architecture.channels], -1, 1)
    numbers = tf.range(batch, dtype=tf.int32) % architecture.collection_count
    batches = tf.data.Dataset.from_tensors((reals, numbers)).repeat()
    return strategy, models, StepState(seed=1), batches


def add_lean_recipe_arguments(parser):
    """The keys stage_plan reads, at the lean 128x128 recipe's values (1 channel, max_filter 64, min_filter 16,
    transition 64, batch 16): bench_levers.py and profile_step.py time and profile that recipe's step."""
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--kind', default='stable', choices=['stable', 'fade'])
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--channels', type=int, default=1)
    parser.add_argument('--filters', type=int, default=64, help='max_filter')
    parser.add_argument('--min-filter', type=int, default=16)
    parser.add_argument('--transition', type=int, default=64)
    parser.add_argument('--latent', type=int, default=128)
    parser.add_argument('--collections', type=int, default=1)


def phase_step(args, size, kind, precision, jit_compile=False):
    """(plan, the traced-on-first-call training step of that phase, its input iterator, its StepState)."""
    from deepzine.training.schedule import find_phase
    from deepzine.training.step import StepSettings, make_phase_step
    plan = stage_plan(args, size, precision, jit_compile)
    strategy, models, state, dataset = build(plan)
    settings = StepSettings(latent_size=args.latent, jit_compile=plan.hardware.jit_compile)
    step = make_phase_step(strategy, models, state, settings, find_phase(plan.phases, size, kind))
    return plan, step, iter(dataset), state


def time_step(args, size, kind, mode, precision):
    """(seconds per step, counted FLOP per image, flop by op type, trace seconds) for one configuration."""
    import tensorflow as tf
    _, step, iterator, state = phase_step(args, size, kind, precision, mode == 'xla')
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
    counted, by_type = (profiled_flop(step.get_concrete_function(iterator)) if mode == 'function'
                        else (None, None))
    return best, counted, by_type, trace_seconds


def speed_table(args):
    print(f'filters {args.filters} (halving from {args.transition}x{args.transition} up, at least {args.min_filter}), latent '
          f'{args.latent}, channels {args.channels}, batch {args.batch}, {args.collections} collection(s); '
          f'best of {args.rounds} x {args.steps} steps\n')
    print('| size | phase | mode | precision | s/step | img/s | GFLOP/img counted | GFLOP/img from shapes '
          '| GFLOP/s | peak GFLOP/s | % of peak | trace s |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    counted_by_size = {}
    for size in args.sizes:
        architecture = stage_plan(args, size, 'float32', False).architecture
        for kind in args.kinds:
            shapes = step_flop(architecture, size, kind == 'fade', args.batch) / args.batch / 1e9
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
from deepzine.pipeline import prepare, run
run(prepare(yaml.safe_load(open(sys.argv[1]))))
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


# Runs of `python wrapper.py` whose time the estimate must predict, with ESTIMATE_DEFAULT_KEYS. The pages are RGB
# (channels is left to the page file).
ESTIMATE_RUNS = {
    'short32': {'gan_output_size': 32, 'max_filter': 64, 'batch_size': 16, 'iterations_per_stage': 60},
    'medium64': {'gan_output_size': 64, 'max_filter': 64, 'batch_size': 16, 'iterations_per_stage': 200},
    'wide32': {'gan_output_size': 32, 'max_filter': 128, 'batch_size': 16, 'iterations_per_stage': 100},
    'long32': {'gan_output_size': 32, 'max_filter': 64, 'batch_size': 16, 'iterations_per_stage': 600},
    # the retired debian_manuals model's train.yaml, estimate only: trained 2026-11-26 in 52 min 6 s (stage start to
    # end in its training_log.txt), 64 filters, 32 at 64x64, grey, 2500 steps per phase
    'debian64': {'gan_output_size': 64, 'max_filter': 64, 'filter_num_reduction_transition_size': 64, 'channels': 1,
                 'batch_size': 16, 'iterations_per_stage': 2500, 'model_save_interval_steps': 200},
}
RECORDED_TRAIN_SEC = {'debian64': 52 * 60 + 6}
ESTIMATE_DEFAULT_KEYS = {'latent_size': 128, 'min_filter': 16, 'filter_num_reduction_transition_size': 128,
                         'random_seed': 1, 'model_save_interval_steps': 1000}

ESTIMATE_RUN = '''
import json, sys, time, yaml
start = time.perf_counter()
from deepzine.pipeline import prepare
[(_, plan)] = prepare(yaml.safe_load(open(sys.argv[1]))).steps
estimate = plan.forecast.estimate
print(json.dumps({'total_sec': estimate.total_sec, 'run_startup_sec': estimate.run_startup_sec,
                  'phases': [[phase.name, phase.startup_sec, phase.step_sec] for phase in estimate.phases],
                  'machine': estimate.machine.__dict__, 'wall_sec': time.perf_counter() - start}))
'''


def timed_training(config_path):
    """(train stage seconds, {phase name: (seconds, median logged step seconds)}, seconds before the first phase and
    after the last) of `python wrapper.py config_path`.

    Each log line is timestamped as it arrives (the log's own clock shows whole
    seconds). A phase lasts from its `phase i/n` line to the next one (the last:
    to its checkpoint line), so it holds its first call, its steps, its samples
    and checkpoint, and the next phase's set-up.
    """
    import re
    process = subprocess.Popen([sys.executable, 'wrapper.py', config_path], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    marks, starts, rates, last_done = {}, [], {}, None
    for line in process.stderr:
        now = time.perf_counter()
        phase = re.search(r'phase \d+/\d+: (\S+ \w+),', line)
        rate = re.search(r'^\S+ INFO (\S+ \w+) step .* ([\d.]+) img/s', line)
        if 'stage train: starting' in line:
            marks['start'] = now
        elif 'stage train: done' in line:
            marks['end'] = now
        elif phase:
            starts.append((phase.group(1), now))
        elif ' done: checkpoint' in line:
            last_done = now
        elif rate:
            rates.setdefault(rate.group(1), []).append(float(rate.group(2)))
    if process.wait() != 0 or 'end' not in marks:
        raise RuntimeError(f'training {config_path} failed (exit {process.returncode})')
    ends = [started for _, started in starts[1:]] + [last_done]
    phases = {name: (end - started, sorted(rates.get(name, [0]))[len(rates.get(name, [0])) // 2])
              for (name, started), end in zip(starts, ends)}
    return marks['end'] - marks['start'], phases, starts[0][1] - marks['start'], marks['end'] - last_done


def _page_file(folder, size):
    from deepzine.data.squaring import build_pyramid
    from deepzine.data.writer import PageWriter
    path = os.path.join(folder, 'pages.hdf5')
    schema = {'output_size': size, 'channels': 3, 'square_mode': 'stretch', 'pdf_dpi': 72,
              'pdf_conversion_program': 'pypdfium2'}
    writer = PageWriter(path, schema, attributes={})
    pages = np.random.default_rng(0).integers(0, 256, (256, size, size, 3), dtype=np.uint8)
    writer.append_pages(build_pyramid(pages), [('bench', 'bench.pdf', i) for i in range(len(pages))])
    writer.commit_document('bench.pdf', size_bytes=0, pages_written=len(pages), pages_skipped=0, status='packed')
    writer.finish()
    return path


def estimate_table(args):
    """Estimated time (in a fresh process, as the dry-run measures) against the real train stage run right after."""
    import json
    import yaml
    from deepzine.training.speed import format_duration
    print('| run | keys | estimated | real | estimated / real | estimate took s | load before / after |\n'
          '| --- | --- | --- | --- | --- | --- | --- |')
    with tempfile.TemporaryDirectory() as folder:
        path = _page_file(folder, max(ESTIMATE_RUNS[name]['gan_output_size'] for name in args.estimate))
        for name in args.estimate:
            keys = dict(ESTIMATE_DEFAULT_KEYS, **ESTIMATE_RUNS[name])
            config = dict({key: value for key, value in keys.items() if key != 'channels'}, train=True,
                          data_hdf5=path, log_dir=os.path.join(folder, f'log_{name}'),
                          samples_dir=os.path.join(folder, f'samples_{name}'))
            config_path = os.path.join(folder, f'{name}.yaml')
            with open(config_path, 'w', encoding='utf-8') as handle:
                yaml.safe_dump(config, handle)
            load_before = os.getloadavg()[0]
            # The train stage's own plan (the same Architecture and phases as the real run), in a fresh process.
            result = subprocess.run([sys.executable, '-c', ESTIMATE_RUN, config_path], capture_output=True,
                                    text=True, cwd=REPO, check=True)
            estimate = json.loads(result.stdout.strip().splitlines()[-1])
            if name in RECORDED_TRAIN_SEC:
                real, phases, before, after = RECORDED_TRAIN_SEC[name], {}, None, None
            else:
                real, phases, before, after = timed_training(config_path)
            print(f'| {name} | {ESTIMATE_RUNS[name]} | {format_duration(estimate["total_sec"])} | {format_duration(real)} '
                  f'| {estimate["total_sec"] / real:.2f} | {estimate["wall_sec"]:.1f} | {load_before:.1f} / '
                  f'{os.getloadavg()[0]:.1f} |', flush=True)
            machine = estimate['machine']
            layers = ', '.join(f'{size}: {rate:.0f}' for size, rate in machine['layer_gflops'])
            print(f'    measured: layer GFLOP/s by size {layers}; 4x4 step {1000 * machine["step_sec"]:.1f} ms, first call '
                  f'{machine["first_call_sec"]:.2f} s, kernel call {1e6 * machine["call_sec"]:.0f} us, import '
                  f'{machine["import_sec"]:.1f} s', flush=True)
            if before is not None:
                print(f'    before the first phase + after the last: estimated {estimate["run_startup_sec"]:.1f} s, real '
                      f'{before:.1f} + {after:.1f} s', flush=True)
            for phase_name, startup_sec, step_sec in estimate['phases']:
                line = (f'    {phase_name}: estimated {startup_sec + keys["iterations_per_stage"] * step_sec:.1f} s '
                        f'(start-up {startup_sec:.1f} s, step {1000 * step_sec:.1f} ms)')
                if phase_name in phases:
                    seconds, images_per_second = phases[phase_name]
                    step = keys['batch_size'] / images_per_second if images_per_second else 0
                    line += (f', real {seconds:.1f} s (step {1000 * step:.1f} ms by the median logged img/s, start-up '
                             f'about {seconds - keys["iterations_per_stage"] * step:.1f} s)')
                print(line, flush=True)


ACTIVATION_RUN = '''
import json, resource, sys
import tensorflow as tf
from deepzine.model.architecture import Architecture
from deepzine.training.schedule import Phase
from deepzine.training.step import StepSettings, StepState, build_training_models, make_phase_step
filters, size, batch, precision = json.loads(sys.argv[1])
architecture = Architecture(latent_size=128, channels=3, output_size=size,
                            widths={s: filters for s in (4, 8, 16, 32, 64, 128) if s <= size})
strategy = tf.distribute.get_strategy()
models = build_training_models(architecture, strategy, 0.001, precision)
state = StepState(seed=1)
batches = iter(tf.data.Dataset.from_tensors((tf.random.uniform([batch, size, size, 3], -1, 1),
                                             tf.zeros([batch], tf.int32))).repeat())
step = make_phase_step(strategy, models, state, StepSettings(latent_size=128), Phase(1, size, 'stable', 100, batch))
step.get_concrete_function(batches)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(3):
    step(batches)
state.phase_step.numpy()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
'''


def activation_table(args):
    """Peak RSS a step adds, at two batch sizes: its growth per image against the counted activations per image."""
    import json
    from deepzine.model.architecture import Architecture
    from deepzine.training.cost import activation_bytes
    print('| filters | size | precision | batches | measured MiB per image | counted MiB per image | measured / counted |\n'
          '| --- | --- | --- | --- | --- | --- | --- |')
    for filters, size, small, large, precision in ((64, 64, 8, 32, 'float32'), (64, 64, 8, 32, 'mixed_bfloat16'),
                                                   (128, 32, 8, 32, 'float32'), (32, 128, 4, 16, 'float32')):
        grown = [int(subprocess.run([sys.executable, '-c', ACTIVATION_RUN, json.dumps([filters, size, batch, precision])],
                                    capture_output=True, text=True, cwd=REPO, check=True).stdout.split()[-1])
                 for batch in (small, large)]
        measured = (grown[1] - grown[0]) / (large - small) / 2 ** 20
        architecture = Architecture(latent_size=128, channels=3, output_size=size,
                                    widths={s: filters for s in (4, 8, 16, 32, 64, 128) if s <= size})
        counted = activation_bytes(architecture, size, False, 1, precision) / 2 ** 20
        print(f'| {filters} | {size} | {precision} | {small}, {large} | {measured:.1f} | {counted:.1f} | '
              f'{measured / counted:.2f} |', flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', type=int, nargs='+', default=[32])
    parser.add_argument('--kinds', nargs='+', default=['stable', 'fade'], choices=['stable', 'fade'])
    parser.add_argument('--modes', nargs='+', default=['eager', 'function', 'xla'], choices=['eager', 'function', 'xla'])
    parser.add_argument('--precisions', nargs='+', default=['float32'],
                        choices=['float32', 'mixed_bfloat16', 'mixed_float16'])
    parser.add_argument('--filters', type=int, default=128, help='max_filter')
    parser.add_argument('--min-filter', type=int, default=16, help='min_filter')
    parser.add_argument('--transition', type=int, default=64, help='filter_num_reduction_transition_size')
    parser.add_argument('--collections', type=int, default=1,
                        help='collections the networks are conditioned on (1: unconditional)')
    parser.add_argument('--latent', type=int, default=128)
    parser.add_argument('--channels', type=int, default=3)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--steps', type=int, default=4, help='steps per timed round')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--memory', action='store_true', help='measure peak RSS against collection size instead')
    parser.add_argument('--page-counts', type=int, nargs='+', default=[1000, 10000, 100000])
    parser.add_argument('--estimate', nargs='+', choices=sorted(ESTIMATE_RUNS),
                        help='estimated vs real time of these `python wrapper.py` runs instead')
    parser.add_argument('--activation-memory', action='store_true',
                        help='peak RSS a step adds per image against the counted activations instead')
    args = parser.parse_args(argv)
    if args.activation_memory:
        activation_table(args)
        return
    if args.estimate:  # this process stays light: the estimate and the training run in their own processes
        print(f'{os.cpu_count()} CPUs; each estimate in a fresh process, then the real run\n')
        estimate_table(args)
        return
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
