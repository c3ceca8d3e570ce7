"""Memorization check: the nearest real page of each generated page, against how near real pages are to each other.

A GAN that copies its training pages has a low SWD and is still useless. For K
generated pages we find the nearest page of the whole HDF5 (L2 distance at a
small size, 32x32 or the largest stored size below it, read in chunks so any
collection fits), and do the same for K real pages (excluding the page itself).
Generated pages much nearer their neighbour than real pages are to theirs are
copies. Caveat: blank and near-blank pages are near each other whoever made them,
so look at the side-by-side grid before calling anything memorized.

Distances are root-mean-square pixel differences in 0-255 units, so they read
the same at any comparison size and channel count.
"""

import logging

import numpy as np
from tqdm import tqdm

from deepzine.data.squaring import halve
from deepzine.parameters import ConfigError
from deepzine.sampling.images import save_grid

logger = logging.getLogger(__name__)

COMPARE_SIZE_LIMIT = 32  # small enough to read a whole collection quickly, large enough to tell layouts apart
CHUNK_PAGES = 512
PAGE_FRAME_VALUE = 128
PAIR_MARGIN = 3


def comparison_size(store_sizes, model_size, limit=COMPARE_SIZE_LIMIT):
    """The largest size stored in the HDF5 that is at most min(limit, model_size)."""
    candidates = [size for size in store_sizes if size <= min(limit, model_size)]
    if not candidates:
        raise ConfigError(f'the HDF5 holds sizes {sorted(store_sizes)}: none is <= {min(limit, model_size)}, '
                          f'needed for the nearest-page check')
    return max(candidates)


def downsample(pages, size):
    """uint8 pages [N, S, S, C] -> uint8 [N, size, size, C] by the store's own 2x2 averaging, so a copy measures 0."""
    pages = np.asarray(pages)
    if pages.dtype != np.uint8 or pages.shape[1] < size:
        raise ValueError(f'cannot reduce {pages.dtype} pages of {pages.shape[1]}px to {size}px')
    while pages.shape[1] > size:
        pages = halve(pages)
    return pages


def nearest_real_pages(store, queries, compare_size, exclude_indices=None, chunk_pages=CHUNK_PAGES):
    """For each query [K, c, c, C] (0-255 values at compare_size): (nearest page index [K], RMS distance [K]).

    Streams every page of `store` at compare_size, `chunk_pages` at a time.
    `exclude_indices` [K] (-1 for none) names a page each query may not match:
    itself, for real queries. Squared distances come from |q|^2 + |r|^2 - 2 q.r
    in float64, exact for 0-255 values, so a copy measures 0.
    """
    queries = np.asarray(queries, np.float64).reshape(len(queries), -1)
    values_per_page = queries.shape[1]
    exclude = np.full(len(queries), -1) if exclude_indices is None else np.asarray(exclude_indices)
    query_norms = np.sum(np.square(queries), axis=1)
    best_index = np.full(len(queries), -1)
    best_squared = np.full(len(queries), np.inf)
    starts = range(0, store.page_count, chunk_pages)
    for start in tqdm(starts, desc='nearest real pages', unit='chunk', disable=None):
        indices = np.arange(start, min(start + chunk_pages, store.page_count))
        real = store.read(compare_size, indices).reshape(len(indices), -1).astype(np.float64)
        if real.shape[1] != values_per_page:
            raise ValueError(f'queries have {values_per_page} values per page, the HDF5 {real.shape[1]} at {compare_size}')
        squared = query_norms[:, np.newaxis] + np.sum(np.square(real), axis=1) - 2 * queries @ real.T  # [K, m]
        squared[exclude[:, np.newaxis] == indices] = np.inf
        closest = np.argmin(squared, axis=1)
        nearest_squared = squared[np.arange(len(queries)), closest]
        better = nearest_squared < best_squared
        best_index[better] = indices[closest[better]]
        best_squared[better] = nearest_squared[better]
    return best_index, np.sqrt(best_squared / values_per_page)


def memorization_check(store, generated, real_num, rng):
    """Nearest real pages of uint8 generated pages [K, S, S, C], and of `real_num` random real pages (not themselves).

    One pass over the HDF5 answers both. Returns a dict of numpy arrays:
    compare_size, generated_nearest_indices, generated_distances,
    real_query_indices, real_nearest_indices, real_distances. With a single page
    in the HDF5 the real-to-real part is empty.
    """
    generated = np.asarray(generated)
    size = generated.shape[1]
    compare_size = comparison_size(store.sizes, size)
    real_num = min(real_num, store.page_count) if store.page_count >= 2 else 0
    real_query_indices = np.sort(rng.choice(store.page_count, real_num, replace=False))
    queries = [downsample(generated, compare_size)]
    if real_num:
        queries.append(store.read(compare_size, real_query_indices))
    exclude = np.concatenate([np.full(len(generated), -1), real_query_indices])
    indices, distances = nearest_real_pages(store, np.concatenate(queries), compare_size, exclude)
    count = len(generated)
    return {'compare_size': compare_size,
            'generated_nearest_indices': indices[:count], 'generated_distances': distances[:count],
            'real_query_indices': real_query_indices,
            'real_nearest_indices': indices[count:], 'real_distances': distances[count:]}


def read_pages(store, size, indices):
    """Pages at `size` for any indices (repeats, any order): the store is read once, in ascending order."""
    unique, positions = np.unique(indices, return_inverse=True)
    return store.read(size, unique)[positions]


def save_side_by_side(generated, nearest_real, path, pairs_per_row=4):
    """One picture of pairs, generated page left of its nearest real page, `pairs_per_row` pairs a row.

    Pages are mostly white, so each page gets a 1-pixel grey frame and each pair
    a black margin (PAIR_MARGIN pixels on every side): pairs read as units.
    """

    def pad(images, width, value):
        return np.pad(images, ((0, 0), (width, width), (width, width), (0, 0)), constant_values=value)

    pairs = np.concatenate([pad(generated, 1, PAGE_FRAME_VALUE), pad(nearest_real, 1, PAGE_FRAME_VALUE)], axis=2)
    return save_grid(pad(pairs, PAIR_MARGIN, 0), path, columns=min(pairs_per_row, len(pairs)))
