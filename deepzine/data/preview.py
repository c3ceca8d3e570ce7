"""A contact sheet of pages drawn at random from a page file: a look at the data before days of training on it.

load_data writes one after every run, next to the page file
(`<data_hdf5 without extension>_preview.png`), and `deepzine preview PAGEFILE`
writes one for any page file. The pages are drawn with a fixed seed, so two
sheets of the same file show the same pages, and laid out in file order (so
pages of one document sit together). By default each page is shown at the
largest stored size up to 256 px: 64 pages of a 1024 px file would otherwise
make a 64-megapixel PNG of some 200 MB.
"""

import math
import os

import numpy as np
from PIL import Image

from deepzine.data.store import PageStore, describe_sizes
from deepzine.files import atomic_path
from deepzine.parameters import ConfigError

DEFAULT_PAGE_COUNT = 64
MAX_DEFAULT_PAGE_SIZE = 256  # px per page when no size is asked for
MAX_SHEET_PIXELS = 2 ** 26   # 64 pages of 1024 px; more would not fit in memory comfortably
_GAP_PX = 2
_GAP_GREY = 128  # between pages: white pages stay visible as pages


def default_preview_path(page_file):
    """data/pages.hdf5 -> data/pages_preview.png (beside the page file)."""
    return os.path.splitext(os.path.abspath(os.fspath(page_file)))[0] + '_preview.png'


def drawn_page_indices(page_count, count, seed=0):
    """`count` distinct page indices (all pages if there are fewer), drawn with `seed`, in file order."""
    chosen = np.random.default_rng(seed).choice(page_count, size=min(count, page_count), replace=False)
    return np.sort(chosen)


def contact_sheet(pages):
    """uint8 [n, size, size, channels] -> one PIL image: a near-square grid with a grey gap around each page."""
    count, size, _, channels = pages.shape
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    step = size + _GAP_PX
    sheet = np.full((rows * step + _GAP_PX, columns * step + _GAP_PX, channels), _GAP_GREY, np.uint8)
    for index, page in enumerate(pages):
        top, left = _GAP_PX + (index // columns) * step, _GAP_PX + (index % columns) * step
        sheet[top:top + size, left:left + size] = page
    return Image.fromarray(sheet[..., 0] if channels == 1 else sheet, 'L' if channels == 1 else 'RGB')


def write_preview(page_file_path, output_path, size=None, count=DEFAULT_PAGE_COUNT, seed=0):
    """Write a contact sheet of `count` random pages of the page file as PNG at output_path; returns its path.

    size: the page size shown, one of the stored sizes (default: the largest
    stored, at most MAX_DEFAULT_PAGE_SIZE). Grey files give a grey sheet.
    """
    output_path = os.path.abspath(output_path)
    with PageStore(page_file_path) as store:
        if size is None:
            size = max([stored for stored in store.sizes if stored <= MAX_DEFAULT_PAGE_SIZE] or store.sizes[:1])
        elif size not in store.sizes:
            raise ConfigError(f'preview size {size}: {store.path} holds pages of {describe_sizes(store.sizes)} px '
                              '(powers of two); choose one of those')
        indices = drawn_page_indices(store.page_count, count, seed)
        if len(indices) * size * size > MAX_SHEET_PIXELS:
            raise ConfigError(f'a preview of {len(indices)} pages of {size} px would have {len(indices) * size * size:,} '
                              f'pixels; ask for at most {MAX_SHEET_PIXELS // (size * size)} pages or a smaller size')
        pages = store.read(size, indices)
    with atomic_path(output_path, suffix='.png') as temporary:
        contact_sheet(pages).save(temporary, format='PNG')
    return output_path
