"""How each collection looks at 64x64 in numbers: ink, colour and dark backgrounds, one line per page file.

    python pretrained_models/debian_libraries/measure_collections.py \\
        ./data/debian_libraries_manuals.hdf5 ./data/debian_libraries_slides.hdf5 ./data/debian_libraries_cards.hdf5

The figures behind README.md's choice of collections: a small model learns
these before it learns any letter, so collections meant to look different
must differ in them. A pixel is coloured when its saturation is over 0.35
and its brightest channel over 0.25 (grey text, anti-aliased edges and
black are not); a page has a dark background when its mean luminance is
under 0.5.
"""

import argparse
import os
import sys

import numpy as np

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPOSITORY)  # deepzine from this checkout, as bench/ does

from deepzine.data.store import PageStore  # noqa: E402

SIZE = 64
LUMINANCE_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)
COLOURED_SATURATION, COLOURED_BRIGHTNESS = 0.35, 0.25
COLOURFUL_PAGE_SHARE = 0.05   # a page with more coloured pixels than this counts as a page in colour
DARK_PAGE_LUMINANCE = 0.5
PAGES_PER_READ = 1024


def page_measures(pages):
    """uint8 [n, size, size, 3] -> (darkness, coloured pixel share, mean luminance), each [n]."""
    pixels = pages.astype(np.float32) / 255
    luminance = pixels @ LUMINANCE_WEIGHTS
    brightest, dimmest = pixels.max(-1), pixels.min(-1)
    saturation = (brightest - dimmest) / np.maximum(brightest, 1e-6)
    coloured = (saturation > COLOURED_SATURATION) & (brightest > COLOURED_BRIGHTNESS)
    mean_luminance = luminance.mean((1, 2))
    return 1 - mean_luminance, coloured.mean((1, 2)), mean_luminance


def measure(path):
    """Measures of every page of one page file at 64 px."""
    with PageStore(path) as store:
        if store.channels != 3 or SIZE not in store.sizes:
            sys.exit(f'error: {path}: needs colour pages of {SIZE} px (channels: 3, data_output_size >= {SIZE})')
        parts = [page_measures(store.read(SIZE, np.arange(start, min(start + PAGES_PER_READ, store.page_count))))
                 for start in range(0, store.page_count, PAGES_PER_READ)]
    return [np.concatenate(values) for values in zip(*parts)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('page_files', nargs='+', help='one page file per collection (colour, 64 px stored)')
    args = parser.parse_args(argv)
    print('| page file | pages | mean darkness | coloured pixels | pages in colour | dark pages |')
    print('| --- | --- | --- | --- | --- | --- |')
    for path in args.page_files:
        darkness, coloured_share, mean_luminance = measure(path)
        print(f'| {os.path.basename(path)} | {len(darkness):,} | {darkness.mean():.3f} | {coloured_share.mean():.1%} '
              f'| {(coloured_share > COLOURFUL_PAGE_SHARE).mean():.0%} '
              f'| {(mean_luminance < DARK_PAGE_LUMINANCE).mean():.0%} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
