"""Inference speed: pages per second of the native PGGAN generator at each size, batch 1 and 64, and with PNG writing.

The generator is deepzine.model.networks.Generator with the default
ModelParameters widths (128 filters up to 64x64, halving above, floor 16,
latent 128, RGB), untrained (speed does not depend on the weights), saved as a
model folder and loaded through deepzine.model.loading.load_generator: the
exact path the inference stage takes (tf.function with a fixed signature).

    python bench/bench_inference.py                       # sizes 4..256, batches 1 and 64
    python bench/bench_inference.py --sizes 64 128 --batches 16 --min-seconds 5

Columns: GFLOP per page (2 x the multiply-adds of the convolutions and the dense
layer); generator pages/s (generate() alone) and the effective GFLOP/s it means
(oneDNN may use Winograd convolutions, so this can exceed a naive peak);
end-to-end pages/s (generate and write inference_NNNNN.png: what the stage does).
Each rate is the best of 3 rounds.
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from deepzine.model.architecture import Architecture, filter_widths  # noqa: E402
from deepzine.model.loading import load_generator, locate_model  # noqa: E402
from deepzine.model.model_folder import save_model_folder  # noqa: E402
from deepzine.model.networks import build_networks  # noqa: E402
from deepzine.sampling.generation import write_numbered_images  # noqa: E402

DEFAULTS = dict(latent_size=128, max_filter=128, min_filter=16, filter_num_reduction_transition_size=64, channels=3)


def generator_gflop_per_page(architecture):
    """Forward FLOPs (2 per multiply-add) of the convolutions and the dense layer at the output size."""
    widths = architecture.widths
    flop = 2 * architecture.latent_size * 16 * widths[4] + 2 * 9 * widths[4] * widths[4] * 16
    for size in architecture.sizes[1:]:
        pixels = size * size
        flop += 2 * 9 * pixels * (widths[size // 2] * widths[size] + widths[size] * widths[size])
    flop += 2 * architecture.output_size ** 2 * widths[architecture.output_size] * architecture.channels  # toRGB
    return flop / 1e9


def timed_rate(work, pages_per_call, min_seconds, rounds=3):
    """Best pages per second of `work()` over `rounds` rounds of at least min_seconds and 2 calls, after a warm-up call.

    The best round, not the mean: the machine is shared, and other processes only ever slow a round down.
    """
    work()
    best = 0.0
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - start < min_seconds:
            work()
            calls += 1
        best = max(best, calls * pages_per_call / (time.perf_counter() - start))
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[4, 8, 16, 32, 64, 128, 256])
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 64])
    parser.add_argument('--min-seconds', type=float, default=2.0, help='time each of the 3 rounds at least this long')
    arguments = parser.parse_args(argv)

    print(f'TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, GPUs: {len(tf.config.list_physical_devices("GPU"))}')
    print('| size | batch | GFLOP/page | generator pages/s | GFLOP/s | end-to-end pages/s (PNG) |')
    print('| --- | --- | --- | --- | --- | --- |')
    random_generator = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as scratch:
        for size in arguments.sizes:
            widths = filter_widths(size, DEFAULTS['max_filter'], DEFAULTS['min_filter'], DEFAULTS['filter_num_reduction_transition_size'])
            architecture = Architecture(latent_size=DEFAULTS['latent_size'], channels=DEFAULTS['channels'], output_size=size, widths=widths)
            _, generator_ema, _ = build_networks(architecture)
            save_model_folder(os.path.join(scratch, 'log', str(size)), architecture, size, generator_ema)
            gflop = generator_gflop_per_page(architecture)
            for batch_size in arguments.batches:
                page_generator = load_generator(locate_model(os.path.join(scratch, 'log'), None, size), batch_size=batch_size)
                latents = random_generator.standard_normal((batch_size, architecture.latent_size)).astype(np.float32)
                generator_rate = timed_rate(lambda: page_generator.generate(latents), batch_size, arguments.min_seconds)
                output_directory = os.path.join(scratch, f'pages_{size}_{batch_size}')
                end_to_end_rate = timed_rate(
                    lambda: write_numbered_images(page_generator, latents, output_directory, 'inference', 'png'),
                    batch_size, arguments.min_seconds)
                print(f'| {size} | {batch_size} | {gflop:.3f} | {generator_rate:.1f} | {generator_rate * gflop:.1f} | {end_to_end_rate:.1f} |',
                      flush=True)


if __name__ == '__main__':
    main()
