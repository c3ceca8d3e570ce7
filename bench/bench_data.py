"""Benchmark of the load_data stage: rasterizer pages/s, bytes per page, loader images/s, peak memory vs collection size.

    python bench/bench_data.py --pdfs /tmp/deepzine-bench/pdfs [--sections rasterize,huge] [--programs pdfium]

`--pdfs` is a folder of real PDFs (see bench/README.md, section Data, for the
Debian documentation packages used); without it, Pillow-drawn pages stand in.
Everything is written under a temporary folder and removed afterwards.
Prints markdown tables.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPOSITORY)

PROGRAMS = ('pdfium', 'pdftoppm', 'ghostscript')

# Runs one load_data in a fresh process and prints its own figures. Peak memory is sampled from /proc (RSS of the
# process and of its worker processes, every 20 ms): ru_maxrss would carry the parent's peak across fork + exec.
_ONE_RUN = '''
import glob, json, os, resource, sys, threading, time
from deepzine.data.stage import LoadDataStage
from deepzine.parameters import registry, resolve
from deepzine.data.store import PageStore

def rss_mib(pid):
    try:
        with open(f'/proc/{pid}/status') as status:
            return next(int(line.split()[1]) for line in status if line.startswith('VmRSS')) / 1024
    except (OSError, StopIteration):
        return 0.0

def children(pid):
    found = []
    for path in glob.glob(f'/proc/{pid}/task/*/children'):
        try:
            found += [int(child) for child in open(path).read().split()]
        except OSError:
            pass
    return found + [grandchild for child in found for grandchild in children(child)]

peaks = {'main': 0.0, 'total': 0.0}
def sample():
    while True:
        main = rss_mib(os.getpid())
        peaks['main'] = max(peaks['main'], main)
        peaks['total'] = max(peaks['total'], main + sum(rss_mib(child) for child in children(os.getpid())))
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()

stage = LoadDataStage(resolve(json.loads(sys.argv[1]), registry([LoadDataStage])))
from deepzine.parameters import ConfigError
start = time.perf_counter()
try:
    path = stage.run(stage.validate({}))
    with PageStore(path) as store:
        pages = store.page_count
except ConfigError:  # no usable pages: the figures still say what it cost
    pages = 0
wall = time.perf_counter() - start
own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({'pages': pages, 'wall_sec': wall, 'cpu_sec': own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,
                  'peak_main_mib': peaks['main'], 'peak_total_mib': peaks['total']}))
'''


def run_load_data(config):
    """Figures of one load_data run in a fresh process (a run that packed no page gives pages 0)."""
    result = subprocess.run([sys.executable, '-c', _ONE_RUN, json.dumps(config)], cwd=REPOSITORY, capture_output=True,
                            text=True, check=False, env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def make_collection(pdfs, folder, page_budget, copies=1):
    """A folder of links to real PDFs (whole documents, smallest first) holding about page_budget pages, `copies` times."""
    import pypdfium2
    found = {os.path.realpath(path) for path in glob.glob(os.path.join(pdfs, '**', '*.pdf'), recursive=True)}
    documents = sorted(found, key=lambda path: (os.path.getsize(path), path))
    chosen, pages = [], 0
    for path in documents:
        count = len(pypdfium2.PdfDocument(path))
        if pages + count > page_budget and chosen:
            continue
        chosen.append(path)
        pages += count
    os.makedirs(folder, exist_ok=True)
    for copy in range(copies):
        for path in chosen:
            os.symlink(os.path.realpath(path), os.path.join(folder, f'copy{copy}-{os.path.basename(path)}'))
    return pages * copies


def make_synthetic_collection(folder, page_count, copies=1):
    sys.path.insert(0, os.path.join(REPOSITORY, 'tests', 'data'))
    from documents import write_pdf
    for copy in range(copies):
        write_pdf(os.path.join(folder, f'copy{copy}.pdf'), page_count)
    return page_count * copies


def base_config(folder, hdf5, **values):
    """load_data at 256 px with the automatic rendering resolution (pdf_dpi unset), rebuilding the file each time."""
    return {'load_data': True, 'data_source': 'pdf_directory', 'pdf_directory': folder, 'data_hdf5': hdf5,
            'data_output_size': 256, 'overwrite': True, **values}


def write_huge_page_pdf(path):
    """One 333 x 433 inch page: a 1000 x 1300 pixel scan stored at 3 dpi (a real archive item did this)."""
    from PIL import Image, ImageDraw
    scan = Image.new('RGB', (1000, 1300), (250, 248, 240))
    ImageDraw.Draw(scan).rectangle([100, 100, 900, 200], fill=(0, 0, 0))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    scan.save(path, resolution=3)


def bench_rasterizers(collection, work, workers_list, programs=PROGRAMS):
    print('\n### Rasterize + square + pyramid + HDF5 write -> 256x256 RGB (automatic resolution)\n')
    print('| program | workers | pages | wall s | pages/s | pages per CPU-second |')
    print('| --- | --- | --- | --- | --- | --- |')
    for program in programs:
        for workers in workers_list:
            figures = run_load_data(base_config(collection, os.path.join(work, f'{program}.hdf5'),
                                                pdf_conversion_program=program, conversion_workers=workers))
            print(f'| {program} | {workers} | {figures["pages"]} | {figures["wall_sec"]:.1f} | '
                  f'{figures["pages"] / figures["wall_sec"]:.0f} | {figures["pages"] / figures["cpu_sec"]:.0f} |')
    return os.path.join(work, f'{programs[0]}.hdf5')


def bench_storage(hdf5, work):
    """Bytes per page of our file vs the original layout (float32 at every size), written with h5py."""
    import h5py
    import numpy as np
    from deepzine.data.store import PageStore
    with PageStore(hdf5) as store:
        pages, sizes, channels = store.page_count, store.sizes, store.channels
        levels = {size: store.read(size, range(pages)) for size in sizes}
    ours = os.path.getsize(hdf5) / pages
    print('\n### Bytes per page (sizes 4..256, RGB)\n')
    print('| layout | bytes per page | ours is smaller by |')
    print('| --- | --- | --- |')
    float32_raw = sum(size * size * channels * 4 for size in sizes)
    # The original used PyTables blosc level 5 (with byte shuffle); h5py has no blosc, so gzip 1 + shuffle stands in.
    original = os.path.join(work, 'original_layout.hdf5')
    with h5py.File(original, 'w') as handle:
        for size in sizes:
            handle.create_dataset(f'data_{size}', data=levels[size].astype(np.float32) / 127.5 - 1,
                                  chunks=(1, size, size, channels), compression='gzip', compression_opts=1, shuffle=True)
    float32_packed = os.path.getsize(original) / pages
    print(f'| original: float32, uncompressed | {float32_raw:,.0f} | {float32_raw / ours:.0f}x |')
    print(f'| original: float32, compressed (gzip-1 + shuffle, for blosc-5) | {float32_packed:,.0f} | {float32_packed / ours:.1f}x |')
    print(f'| ours: uint8, gzip-1, one page per chunk | {ours:,.0f} | 1x |')


def bench_loader(hdf5, batch_size=16, seconds=3.0):
    from deepzine.data.store import PageStore, page_dataset
    with PageStore(hdf5) as store:
        sizes = store.sizes
    print(f'\n### page_dataset throughput (batch {batch_size}, shuffled, float32 in [-1, 1])\n')
    print('| size | images/s |')
    print('| --- | --- |')
    for size in sizes:
        iterator = iter(page_dataset(hdf5, size, batch_size, seed=0))
        for _ in range(5):
            next(iterator)  # (pages, collection numbers)
        start, images = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            next(iterator)
            images += batch_size
        print(f'| {size} | {images / (time.perf_counter() - start):,.0f} |')


def bench_huge_page(work, programs):
    """One 333 x 433 inch page against one letter page: the same cost is the goal."""
    print('\n### One 333 x 433 inch page (a 1000 x 1300 scan stored at 3 dpi) vs one letter page, data_output_size 64\n')
    print('| page | program | pages packed | wall s | peak RSS main + workers MiB |')
    print('| --- | --- | --- | --- | --- |')
    write_huge_page_pdf(os.path.join(work, 'huge', 'huge.pdf'))
    make_synthetic_collection(os.path.join(work, 'letter'), 1)
    for program in programs:
        for page in ('huge', 'letter'):
            figures = run_load_data(base_config(os.path.join(work, page), os.path.join(work, f'{page}.hdf5'),
                                                data_output_size=64, pdf_conversion_program=program,
                                                conversion_workers=1))
            print(f'| {page} | {program} | {figures["pages"]} | {figures["wall_sec"]:.1f} | '
                  f'{figures["peak_total_mib"]:.0f} |')


def bench_memory(pdfs, work):
    print('\n### Peak RSS of load_data vs collection size (pdfium -> 256)\n')
    print('| collection | workers | pages | peak RSS main process MiB | peak RSS main + workers MiB |')
    print('| --- | --- | --- | --- | --- |')
    for copies in (1, 4):
        folder = os.path.join(work, f'memory{copies}')
        pages = make_collection(pdfs, folder, 120, copies) if pdfs else make_synthetic_collection(folder, 120, copies)
        for workers in (1, 2):
            figures = run_load_data(base_config(folder, os.path.join(work, f'memory{copies}.hdf5'),
                                                conversion_workers=workers))
            assert figures['pages'] == pages
            print(f'| {copies}x | {workers} | {pages} | {figures["peak_main_mib"]:.0f} | {figures["peak_total_mib"]:.0f} |')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--pdfs', help='folder of real PDFs (default: Pillow-drawn pages)')
    parser.add_argument('--pages', type=int, default=400, help='about this many pages for the rasterizer table')
    parser.add_argument('--workers', default='1,2', help='conversion_workers values to try, comma-separated')
    parser.add_argument('--programs', default=','.join(PROGRAMS), help='rasterizers to try, comma-separated')
    parser.add_argument('--sections', default='rasterize,storage,memory,loader,huge',
                        help='tables to print, comma-separated (storage and loader need rasterize)')
    arguments = parser.parse_args()
    sections = arguments.sections.split(',')
    programs = arguments.programs.split(',')
    work = tempfile.mkdtemp(prefix='deepzine-bench-data-')
    try:
        print(f'{os.cpu_count()} CPUs')
        if 'rasterize' in sections:
            collection = os.path.join(work, 'collection')
            if arguments.pdfs:
                pages = make_collection(arguments.pdfs, collection, arguments.pages)
            else:
                pages = make_synthetic_collection(collection, arguments.pages)
            print(f'{pages} pages from {"real PDFs in " + arguments.pdfs if arguments.pdfs else "Pillow-drawn PDFs"}')
            hdf5 = bench_rasterizers(collection, work, [int(value) for value in arguments.workers.split(',')], programs)
            if 'storage' in sections:
                bench_storage(hdf5, work)
            if 'loader' in sections:
                bench_loader(hdf5)
        if 'memory' in sections:
            bench_memory(arguments.pdfs, work)
        if 'huge' in sections:
            bench_huge_page(work, programs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
