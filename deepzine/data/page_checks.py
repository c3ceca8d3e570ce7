"""Checks on squared pages while packing: is a page blank, its fingerprint for finding repeats, which pages to keep.

What is kept follows PageSelection (max_pages_per_document, skip_blank_pages,
skip_duplicate_pages); the main process decides, as it sees pages in order.

Blank: a page counts as blank when, away from its outermost edge, it holds less
ink than a short line of text: a page number, a faint frame or a scan's
shadow leave a page blank. Ink is how far each pixel is from the
page's paper colour (its median), less a floor, summed over the page and
given as a share of the page area in full-black pixels. A sum, unlike a count
of dark pixels, stays about the same at every stored size, because area
averaging keeps the total ink while spreading it thinner. Measured on letter
pages with 10 pt text rendered by PDFium, pdftoppm and Ghostscript, stretched
or padded, at 32 to 256 px: a page number 0-5.4e-5; one line of 23 characters
1.5-4.5e-4; an index page of the R manuals holding a running header and one
entry 1.4-1.8e-4 (the least ink of 988 Debian manual pages); a page of text
3.5e-2-1e-1. BLANK_INK_SHARE lies between, nearer the page number, because
dropping a real page costs more than keeping a blank one. Ignored, so that
they do not make a blank page look used:
- the outermost 1/32 of each side of the page, at least two pixels (renderers
  snap edges to whole pixels): scanner shadows and the dark edge of a scan sit
  there, the text block of a book well inside it;
- differences below the floor, output size / 4 grey levels (4..32): a light
  frame, show-through from the other side, scan noise. Thin text and thin
  faint lines both fade as the size shrinks, so the floor shrinks with it; it
  cannot be lower because Ghostscript draws a hairline at least one pixel wide
  (a light grey frame came out 22 levels dark at 128 px).
Anything else darker than the floor counts (a stain, a gradient, a grey
area), so an unusual page is kept rather than dropped. At 16 px a line of text
is a smudge of a few grey levels within two pixels of the edge: it counts as
blank there.
"""

import dataclasses
import functools
import hashlib
import math

import numpy as np

BLANK_INK_SHARE = 8e-5  # ink (share of the page area in full-black pixels) below which a page is blank
_EDGE_FRACTION = 1 / 32
_MIN_EDGE_PX = 2
_FLOOR_PER_PIXEL_OF_SIZE = 1 / 4
_FLOOR_LEVELS = (4, 32)


@dataclasses.dataclass(frozen=True)
class PageSelection:
    """Which pages go into the page file, beyond those that render."""
    max_pages_per_document: int = 0  # 0: all; else that many, spread through the document
    skip_blank_pages: bool = False
    skip_duplicate_pages: bool = False


def paper_colour(page):
    """Per-channel median of a uint8 [size, size, channels] page: the paper on any page that is mostly paper."""
    pixels = page.reshape(-1, page.shape[-1])
    middle = (pixels.shape[0] + 1) // 2
    # A histogram per channel: the median of 256 possible values without sorting 65,536 of them.
    return np.array([int(np.searchsorted(np.cumsum(np.bincount(pixels[:, channel], minlength=256)), middle))
                     for channel in range(pixels.shape[1])], dtype=np.int16)


def ink_share(page, box=None):
    """Ink on a squared uint8 page [size, size, channels], away from its edges: the measure of the module docstring.

    box: (left, top, right, bottom) of the page's own pixels in the square
    (squaring.page_box; square_mode pad leaves padding around them), whose
    edges are the page's edges; default: the whole square.
    """
    size = page.shape[0]
    left, top, right, bottom = box or (0, 0, size, size)
    region = page[top:bottom, left:right]
    # At least two pixels: rasterizers snap edges to whole pixels (Ghostscript widens fills by up to one), and
    # squaring spreads each over its neighbour.
    edge_y, edge_x = (max(_MIN_EDGE_PX, math.ceil(extent * _EDGE_FRACTION)) if extent > 4 * _MIN_EDGE_PX else 0
                      for extent in region.shape[:2])
    inside = region[edge_y:region.shape[0] - edge_y, edge_x:region.shape[1] - edge_x]
    if inside.size == 0:
        return 0.0
    floor = int(np.clip(size * _FLOOR_PER_PIXEL_OF_SIZE, *_FLOOR_LEVELS))
    # The largest difference of any channel, one channel at a time: numpy's loops over a last axis of 3 values
    # (broadcasting, max(axis=-1)) took 5 ms of a 256 px page, more than rendering it.
    distance = functools.reduce(np.maximum, (np.abs(inside[..., channel].astype(np.int16) - int(paper))
                                             for channel, paper in enumerate(paper_colour(region))))
    ink = np.maximum(distance - floor, 0)
    return float(ink.sum()) / (255.0 * ink.size)


def is_blank(page, box=None):
    return ink_share(page, box) < BLANK_INK_SHARE


def page_digest(page):
    """SHA-1 of a page's pixels: equal for pages identical at the stored size (the `pages/sha1` column, in hex)."""
    return hashlib.sha1(np.ascontiguousarray(page).tobytes()).digest()


def spread_page_numbers(page_count, keep):
    """1-based numbers of `keep` pages spread evenly through `page_count` (all of them when keep is 0 or enough).

    The page at the middle of each of `keep` equal stretches: 12 pages, keep 5
    -> 2, 4, 7, 9, 11. Deterministic, so a re-run picks the same pages; and it
    avoids the covers, which say little about a volume.
    """
    if not keep or keep >= page_count:
        return tuple(range(1, page_count + 1))
    return tuple((2 * index + 1) * page_count // (2 * keep) + 1 for index in range(keep))


def kept_positions(digests, blank, stored_digests, selection):
    """(positions of the pages that go into the file, blank pages, repeated pages) for one chunk of pages.

    digests, blank: per page, in order. A page repeating one stored before
    (`stored_digests`, or earlier in this chunk) is a duplicate; with
    skip_duplicate_pages the first copy stays. Both are counted whether or not
    they are dropped.
    """
    kept, digests_here, blank_count, repeated_count = [], set(), 0, 0
    for position, (digest, is_blank_page) in enumerate(zip(digests, blank)):
        if is_blank_page:
            blank_count += 1
            if selection.skip_blank_pages:
                continue
        if digest in stored_digests or digest in digests_here:
            repeated_count += 1
            if selection.skip_duplicate_pages:
                continue
        kept.append(position)
        digests_here.add(digest)
    return kept, blank_count, repeated_count
