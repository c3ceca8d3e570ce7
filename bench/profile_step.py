"""Where a training step's CPU time goes: TensorFlow's profiler over a few real steps, summed by op type.

What is left to speed up once a lever is in: if the cores are busy and the
time sits in oneDNN's convolution kernels, only less arithmetic helps. The
step is bench_train.py's (the train stage's own plan and `make_phase_step`,
the lean 128x128 recipe's keys by default); the cores' use is the process's
CPU seconds over wall seconds around the timed steps.

    python bench/profile_step.py                                 # 128x128 stable, the automatic precision (bfloat16 here)
    python bench/profile_step.py --precision float32
    python bench/profile_step.py --size 64 --kind fade

The op table is read with the profiler's own converter
(`tensorflow.python.profiler.internal._pywrap_profiler_plugin`, the one
TensorBoard's profile plugin uses; not a public API, TensorFlow 2.21).
"""

import argparse
import collections
import glob
import json
import os
import resource
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tensorflow as tf  # noqa: E402

import bench_train  # noqa: E402


def cores_busy(step, iterator, state, steps):
    """(ms per step, CPU seconds per wall second) over `steps` steps."""
    usage, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step(iterator)
    state.phase_step.numpy()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
    return 1000 * wall / steps, cpu / wall


def op_type_times(trace_folder):
    """{op type: self-time in microseconds} of the newest trace in `trace_folder` (IDLE left out)."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin
    trace = sorted(glob.glob(os.path.join(trace_folder, '**', '*.xplane.pb'), recursive=True))[-1]
    data, ok = plugin.xspace_to_tools_data([trace], 'framework_op_stats', {})
    if not ok:
        sys.exit(f'the profiler could not read {trace}')
    table = json.loads(data)[0]
    names = [column['id'] for column in table['cols']]
    times = collections.Counter()
    for row in table['rows']:
        op = dict(zip(names, (cell.get('v') for cell in row['c'])))
        if op['type'] != 'IDLE':
            times[op['type']] += op['total_self_time']
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bench_train.add_lean_recipe_arguments(parser)
    parser.add_argument('--precision', default=None, help='float32, mixed_bfloat16, mixed_float16 (default: automatic)')
    parser.add_argument('--steps', type=int, default=4, help='profiled steps')
    parser.add_argument('--top', type=int, default=12, help='op types listed')
    args = parser.parse_args()

    plan, step, iterator, state = bench_train.phase_step(args, args.size, args.kind, args.precision)
    cores_busy(step, iterator, state, 3)  # trace and warm up
    ms, busy = cores_busy(step, iterator, state, 2 * args.steps)
    folder = tempfile.mkdtemp(prefix='profile_step_')
    tf.profiler.experimental.start(folder)
    cores_busy(step, iterator, state, args.steps)
    tf.profiler.experimental.stop()
    times = op_type_times(folder)
    total = sum(times.values())
    print(f'{args.size}x{args.size} {args.kind}, {plan.hardware.mixed_precision}, batch {args.batch}: {ms:.0f} ms/step '
          f'unprofiled, {busy:.2f} cores busy (of {os.cpu_count()}); op time {total / args.steps / 1000:.0f} ms '
          f'CPU per step')
    print('| op type | ms CPU per step | share |')
    print('| --- | --- | --- |')
    for name, microseconds in times.most_common(args.top):
        print(f'| {name} | {microseconds / args.steps / 1000:.1f} | {100 * microseconds / total:.1f}% |')
    convolutions = sum(value for name, value in times.items() if 'Conv2D' in name)
    print(f'convolutions (every op type with Conv2D in its name): {100 * convolutions / total:.1f}% of the op time')


if __name__ == '__main__':
    main()
