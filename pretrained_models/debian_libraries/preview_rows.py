"""One row of pages per collection, rows in the given order: the collections side by side, as the model sees them.

    python pretrained_models/debian_libraries/preview_rows.py previews/all.png \\
        ./data/debian_libraries_manuals.hdf5 ./data/debian_libraries_slides.hdf5 ./data/debian_libraries_cards.hdf5

Each page file is one collection packed alone (see README.md). The pages of a
row are drawn as `deepzine preview` draws them (seeded, in file order), so
the rows of a sample grid can be set beside the data they were trained on.
"""

import argparse
import os
import sys

import numpy as np
from PIL import Image

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPOSITORY)  # deepzine from this checkout, as bench/ does

from deepzine.data.preview import drawn_page_indices  # noqa: E402
from deepzine.data.store import PageStore  # noqa: E402

GAP_PX = 2
GAP_GREY = 128  # as deepzine preview: white pages stay visible as pages


def page_rows(page_files, size, count, seed):
    """uint8 [collections, count, size, size, 3]: `count` pages of each page file at `size` px."""
    rows = []
    for path in page_files:
        with PageStore(path) as store:
            if size not in store.sizes:
                sys.exit(f'error: --size {size}: {path} holds pages of {store.sizes} px')
            pages = store.read(size, drawn_page_indices(store.page_count, count, seed))
        if len(pages) < count:
            sys.exit(f'error: {path} holds {len(pages)} pages; a row needs {count}')
        rows.append(pages if pages.shape[-1] == 3 else np.repeat(pages, 3, axis=-1))
    return np.stack(rows)


def sheet(rows):
    """The rows laid out as a grid with a grey gap around each page."""
    row_count, count, size = rows.shape[:3]
    step = size + GAP_PX
    image = np.full((row_count * step + GAP_PX, count * step + GAP_PX, 3), GAP_GREY, np.uint8)
    for row, pages in enumerate(rows):
        for column, page in enumerate(pages):
            top, left = GAP_PX + row * step, GAP_PX + column * step
            image[top:top + size, left:left + size] = page
    return Image.fromarray(image, 'RGB')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('output', help='the PNG to write')
    parser.add_argument('page_files', nargs='+', help='one page file per collection, in the order of the rows')
    parser.add_argument('--size', type=int, default=64, help='page size shown, px (default 64)')
    parser.add_argument('--num', type=int, default=8, help='pages per row (default 8)')
    parser.add_argument('--seed', type=int, default=0, help='which pages are drawn (default 0)')
    args = parser.parse_args(argv)
    sheet(page_rows(args.page_files, args.size, args.num, args.seed)).save(args.output, format='PNG')
    print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
