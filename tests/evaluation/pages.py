"""Synthetic pages (white, dark text-like bars) and page files of them written by the real PageWriter."""

import numpy as np

from tests.page_files import write_page_hdf5  # noqa: F401 (re-exported for the evaluation tests)


def synthetic_pages(count, size, channels, rng):
    """uint8 [count, size, size, channels]: white pages with 3-7 dark horizontal bars, like lines of text."""
    pages = np.full((count, size, size, channels), 255, np.uint8)
    for page in pages:
        for _ in range(rng.integers(3, 8)):
            row = rng.integers(2, size - 4)
            start, stop = rng.integers(1, size // 3), rng.integers(size // 2, size - 1)
            page[row:row + 2, start:stop] = rng.integers(0, 120, size=channels)
    return pages
