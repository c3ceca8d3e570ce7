"""Evaluation speed: multi-scale SWD for a few page sizes and counts, and the nearest-real-page search over page files.

SWD: two sets of N synthetic RGB pages (white, dark text-like bars) go through
deepzine.evaluation.swd exactly as the evaluate stage uses it: descriptors of
each set (Laplacian pyramid + 128 7x7 patches per page and level, batches of
64), then 4 x 128 directions per level. The stage computes descriptors for three
sets (generated, real A, real B) and two SWDs, so its SWD work is about
1.5 x the "total" column (page generation and HDF5 reading not included).

Nearest: a page file of P pages written with the real PageWriter (not timed),
then deepzine.evaluation.nearest.memorization_check with K generated pages and
K real ones, streamed over the whole file at 32x32 (HDF5 read and decode
included). Each figure is the best of `--rounds` runs (the machine is shared;
other processes only ever slow a run down).

    python bench/bench_evaluation.py                          # SWD 32..256 x 250/1000 pages; nearest 2000/10000 pages
    python bench/bench_evaluation.py --swd-sizes 64 --swd-counts 1000 --page-files 2000
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def synthetic_pages(count, size, channels, rng):
    """White pages with 3-7 dark bars, like lines of text; vectorized so large sets are quick to make."""
    pages = np.full((count, size, size, channels), 255, np.uint8)
    rows = np.arange(size)[np.newaxis, :, np.newaxis]
    columns = np.arange(size)[np.newaxis, np.newaxis, :]
    for _ in range(7):
        top = rng.integers(2, size - 4, (count, 1, 1))
        start, stop = rng.integers(1, size // 3, (count, 1, 1)), rng.integers(size // 2, size - 1, (count, 1, 1))
        bar = (rows >= top) & (rows < top + max(1, size // 32)) & (columns >= start) & (columns < stop)
        bar &= rng.random((count, 1, 1)) < 0.7
        pages[bar] = rng.integers(0, 120, (int(bar.sum()), channels), dtype=np.uint8)
    return pages


def best_time(work, rounds):
    best = float('inf')
    for _ in range(rounds):
        start = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_swd(sizes, counts, rounds):
    from deepzine.evaluation import swd
    print('| size | pages per set | levels | descriptors of one set (s) | SWD of two sets (s) | total (s) |')
    print('| --- | --- | --- | --- | --- | --- |')
    rng = np.random.default_rng(0)
    for size in sizes:
        for count in counts:
            pages_a, pages_b = synthetic_pages(count, size, 3, rng), synthetic_pages(count, size, 3, rng)
            describe_seconds, descriptors_a = best_time(lambda: swd.collect_descriptors(pages_a, np.random.default_rng(1)), rounds)
            descriptors_b = swd.collect_descriptors(pages_b, np.random.default_rng(1))
            compare_seconds, _ = best_time(lambda: swd.swd_between(descriptors_a, descriptors_b, np.random.default_rng(2)), rounds)
            levels = ', '.join(map(str, swd.level_sizes(size)))
            print(f'| {size} | {count} | {levels} | {describe_seconds:.2f} | {compare_seconds:.2f} | '
                  f'{2 * describe_seconds + compare_seconds:.2f} |', flush=True)


def write_page_file(path, page_count, size):
    from deepzine.data.squaring import build_pyramid
    from deepzine.data.writer import PageWriter
    schema = {'output_size': size, 'channels': 3, 'square_mode': 'stretch', 'pdf_dpi': 72,
              'pdf_conversion_program': 'pypdfium2'}
    writer = PageWriter(path, schema, attributes={})
    rng = np.random.default_rng(3)
    for start in range(0, page_count, 1000):
        count = min(1000, page_count - start)
        writer.append_pages(build_pyramid(synthetic_pages(count, size, 3, rng)),
                            [('bench', f'bench_{start}.pdf', number) for number in range(count)])
        writer.commit_document(f'bench_{start}.pdf', size_bytes=0, pages_written=count, pages_skipped=0, status='packed')
    return writer.finish()


def bench_nearest(page_counts, size, query_num, rounds):
    from deepzine.data.store import PageStore
    from deepzine.evaluation import nearest
    print(f'| pages in file | file size ({size}px, gzip) | queries | compare size | search (s) | pages/s |')
    print('| --- | --- | --- | --- | --- | --- |')
    generated = synthetic_pages(query_num, size, 3, np.random.default_rng(4))
    with tempfile.TemporaryDirectory() as folder:
        for page_count in page_counts:
            path = write_page_file(os.path.join(folder, f'pages_{page_count}.hdf5'), page_count, size)
            with PageStore(path) as store:
                seconds, check = best_time(lambda: nearest.memorization_check(store, generated, query_num,
                                                                              np.random.default_rng(5)), rounds)
            megabytes = os.path.getsize(path) / 2 ** 20
            print(f'| {page_count} | {megabytes:.0f} MiB | {query_num} generated + {query_num} real | '
                  f'{check["compare_size"]} | {seconds:.2f} | {page_count / seconds:.0f} |', flush=True)
            os.remove(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--swd-sizes', type=int, nargs='*', default=[32, 64, 128, 256])
    parser.add_argument('--swd-counts', type=int, nargs='*', default=[250, 1000])
    parser.add_argument('--page-files', type=int, nargs='*', default=[2000, 10000], help='pages in each page file searched')
    parser.add_argument('--page-size', type=int, default=64, help='largest size stored in the page files')
    parser.add_argument('--queries', type=int, default=32, help='generated pages (and as many real ones) searched for')
    parser.add_argument('--rounds', type=int, default=2)
    args = parser.parse_args(argv)
    print(f'numpy {np.__version__}, {os.cpu_count()} CPUs\n')
    if args.swd_sizes and args.swd_counts:
        bench_swd(args.swd_sizes, args.swd_counts, args.rounds)
        print()
    if args.page_files:
        bench_nearest(args.page_files, args.page_size, args.queries, args.rounds)


if __name__ == '__main__':
    main()
