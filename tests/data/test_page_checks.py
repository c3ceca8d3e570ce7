"""Page checks on rendered PDFs: what counts as blank, page fingerprints, and the pages kept of a long document."""

import numpy as np
import pytest

from deepzine.data.page_checks import BLANK_INK_SHARE, ink_share, is_blank, page_digest, spread_page_numbers
from deepzine.data.rasterize import render_pages
from deepzine.data.squaring import page_box, square_page

from .documents import write_kinds_pdf

KINDS = ('white', 'page number', 'faint border', 'line of text', 'text')
BLANK = (True, True, True, False, False)


@pytest.fixture(scope='module')
def kinds_pdf(tmp_path_factory):
    return write_kinds_pdf(str(tmp_path_factory.mktemp('kinds') / 'kinds.pdf'), KINDS)


# Each rasterizer at a size where it was measured near the threshold (module docstring of page_checks):
# Ghostscript draws a faint hairline one full pixel wide, which showed at 128 px.
@pytest.mark.parametrize('program, size', [('pdfium', 32), ('pdfium', 256), ('pdftoppm', 64), ('ghostscript', 128)])
@pytest.mark.parametrize('square_mode', ['stretch', 'pad'])
def test_a_page_number_or_a_faint_border_leaves_a_page_blank_a_line_of_text_does_not(kinds_pdf, program, size,
                                                                                      square_mode):
    found = {}
    for (_, page), kind in zip(render_pages(kinds_pdf, program, range(1, len(KINDS) + 1), 3, 2 * size), KINDS):
        square = square_page(page, size, square_mode, 3)
        found[kind] = is_blank(square, page_box(*page.size, size, square_mode))
    assert found == dict(zip(KINDS, BLANK))


def test_blank_is_judged_the_same_on_grey_pages_and_on_any_paper_colour():
    page = np.full((64, 64, 1), 40, np.uint8)  # dark paper
    assert is_blank(page)
    page[20:23, 8:56] = 220  # a line of light text on it
    assert not is_blank(page)
    assert ink_share(page) > 10 * BLANK_INK_SHARE


def test_marks_on_the_outermost_edge_or_fainter_than_the_floor_are_ignored():
    page = np.full((256, 256, 3), 245, np.uint8)
    page[:, :6] = 0  # the dark edge of a scan, within 1/32 of the side
    page[40:200, 40:200] = 225  # a light-grey area 20 levels from the paper: below the floor of 32 at 256 px
    assert is_blank(page)
    page[100:104, 60:200] = 150  # a dark strip: ink
    assert not is_blank(page)


def test_the_digest_tells_identical_pages_from_pages_that_differ_by_one_pixel():
    page = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    same, other = page.copy(), page.copy()
    other[5, 5, 0] ^= 1
    assert page_digest(page) == page_digest(same) != page_digest(other)
    assert len(page_digest(page)) == 20


def test_pages_kept_of_a_long_document_are_spread_through_it_and_always_the_same():
    assert spread_page_numbers(12, 5) == (2, 4, 7, 9, 11)
    assert spread_page_numbers(12, 0) == spread_page_numbers(12, 12) == spread_page_numbers(12, 40) == tuple(range(1, 13))
    assert spread_page_numbers(900, 1) == (451,)
    chosen = spread_page_numbers(900, 7)
    gaps = np.diff(chosen)
    assert len(chosen) == 7 and gaps.max() - gaps.min() <= 1 and chosen[0] <= 900 // 7 and chosen[-1] > 900 - 900 // 7
