"""Synthetic pages (white, dark text-like bars) and page files of them written by the real PageWriter."""

import numpy as np

from deepzine.data.squaring import build_pyramid
from deepzine.data.writer import PageWriter


def synthetic_pages(count, size, channels, rng):
    """uint8 [count, size, size, channels]: white pages with 3-7 dark horizontal bars, like lines of text."""
    pages = np.full((count, size, size, channels), 255, np.uint8)
    for page in pages:
        for _ in range(rng.integers(3, 8)):
            row = rng.integers(2, size - 4)
            start, stop = rng.integers(1, size // 3), rng.integers(size // 2, size - 1)
            page[row:row + 2, start:stop] = rng.integers(0, 120, size=channels)
    return pages


def write_page_hdf5(path, pages):
    """A finished DeepZine page file holding `pages` (uint8 [N, S, S, C]) at every size 4..S, as one document."""
    schema = {'output_size': pages.shape[1], 'channels': pages.shape[3], 'square_mode': 'stretch', 'pdf_dpi': 72,
              'pdf_conversion_program': 'pypdfium2'}
    writer = PageWriter(str(path), schema, attributes={})
    provenance = [('synthetic', 'synthetic.pdf', number + 1) for number in range(len(pages))]
    writer.append_pages(build_pyramid(pages), provenance)
    writer.commit_document('synthetic.pdf', size_bytes=0, pages_written=len(pages), pages_skipped=0, status='packed')
    return writer.finish()
