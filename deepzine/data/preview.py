"""A contact sheet of pages drawn at random from a page file: a look at the data before days of training on it.

load_data writes one after every run, next to the page file
(`<data_hdf5 without extension>_preview.png`), and `deepzine preview PAGEFILE`
writes one for any page file. The pages are drawn with a fixed seed, so two
sheets of the same file show the same pages, and laid out in file order (so
pages of one document sit together). A file of several collections gets a
block of rows per collection, under its name, each drawing an equal share of
the pages. By default each page is shown at the largest stored size up to
256 px: 64 pages of a 1024 px file would otherwise make a 64-megapixel PNG of
some 200 MB.
"""

import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from deepzine.data.store import PageStore, describe_sizes
from deepzine.files import atomic_path
from deepzine.parameters import ConfigError

DEFAULT_PAGE_COUNT = 64
MAX_DEFAULT_PAGE_SIZE = 256  # px per page when no size is asked for
MAX_SHEET_PIXELS = 2 ** 26   # 64 pages of 1024 px; more would not fit in memory comfortably
_GAP_PX = 2
_GAP_GREY = 128  # between pages: white pages stay visible as pages
_LABEL_PX = 16  # the band above a collection's block that holds its name


def default_preview_path(page_file):
    """data/pages.hdf5 -> data/pages_preview.png (beside the page file)."""
    return os.path.splitext(os.path.abspath(os.fspath(page_file)))[0] + '_preview.png'


def drawn_page_indices(page_count, count, seed=0):
    """`count` distinct page indices (all pages if there are fewer), drawn with `seed`, in file order."""
    chosen = np.random.default_rng(seed).choice(page_count, size=min(count, page_count), replace=False)
    return np.sort(chosen)


def drawn_pages_by_collection(collection_numbers, collection_count, count, seed=0):
    """[page indices of each collection, in file order]: `count` pages shared equally among the collections (all of
    a collection's pages if it has fewer), each share drawn with `seed` among that collection's pages."""
    drawn = []
    for number in range(collection_count):
        members = np.flatnonzero(np.asarray(collection_numbers) == number)
        share = count // collection_count + (number < count % collection_count)
        drawn.append(members[drawn_page_indices(len(members), share, seed)] if len(members) else members)
    return drawn


def _as_image(sheet):
    channels = sheet.shape[-1]
    return Image.fromarray(sheet[..., 0] if channels == 1 else sheet, 'L' if channels == 1 else 'RGB')


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
    return _as_image(sheet)


def collection_sheet(blocks):
    """[(collection name, uint8 [n, size, size, channels])] -> one PIL image: for each collection in turn, a band
    with its name, then its pages in rows (as many columns as a near-square grid of all the pages has; the sheet
    is widened where a name would not fit)."""
    size, channels = blocks[0][1].shape[1], blocks[0][1].shape[3]
    font = ImageFont.load_default()  # about 11 px high (Pillow 10.1 and later: its own scalable font)
    columns = max(1, math.ceil(math.sqrt(sum(len(pages) for _, pages in blocks))))
    step = size + _GAP_PX
    heights = [_LABEL_PX + math.ceil(len(pages) / columns) * step for _, pages in blocks]
    width = max([columns * step + _GAP_PX] + [math.ceil(font.getlength(name)) + 2 * _GAP_PX for name, _ in blocks])
    sheet = np.full((sum(heights) + _GAP_PX, width, channels), _GAP_GREY, np.uint8)
    block_top = 0
    for (_, pages), height in zip(blocks, heights):
        for index, page in enumerate(pages):
            top, left = block_top + _LABEL_PX + (index // columns) * step, _GAP_PX + (index % columns) * step
            sheet[top:top + size, left:left + size] = page
        block_top += height
    image = _as_image(sheet)
    draw = ImageDraw.Draw(image)
    block_top = 0
    for (name, _), height in zip(blocks, heights):
        draw.text((_GAP_PX, block_top + 2), name, fill=0 if channels == 1 else (0, 0, 0), font=font)
        block_top += height
    return image


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
        names = store.collection_names
        drawn = (drawn_pages_by_collection(store.collection_numbers, len(names), count, seed) if len(names) > 1
                 else [drawn_page_indices(store.page_count, count, seed)])
        shown = sum(len(indices) for indices in drawn)
        if shown * size * size > MAX_SHEET_PIXELS:
            raise ConfigError(f'a preview of {shown} pages of {size} px would have {shown * size * size:,} '
                              f'pixels; ask for at most {MAX_SHEET_PIXELS // (size * size)} pages or a smaller size')
        pages = [store.read(size, indices) for indices in drawn]
    sheet = collection_sheet(list(zip(names, pages))) if len(names) > 1 else contact_sheet(pages[0])
    with atomic_path(output_path, suffix='.png') as temporary:
        sheet.save(temporary, format='PNG')
    return output_path
