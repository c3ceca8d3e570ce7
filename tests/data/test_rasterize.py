import json
import subprocess
import sys

import pytest
from PIL import Image

from deepzine.data.rasterize import PDF_PROGRAMS, DocumentError, count_pages, measure_document, render_pages

from .documents import (REPOSITORY, draw_page, write_empty_file, write_encrypted_pdf, write_huge_page_pdf,
                        write_mixed_pages_pdf, write_pdf, write_random_bytes, write_truncated_pdf)


def close_to(size, expected):
    """Within a pixel, and never larger by more than that: Ghostscript rounds its resolution down by up to 1/2 %."""
    return all(want - max(1, want // 150) <= got <= want + 1 for got, want in zip(size, expected))


@pytest.fixture(scope='module')
def three_page_pdf(tmp_path_factory):
    return write_pdf(str(tmp_path_factory.mktemp('pdf') / 'three.pdf'), 3)


@pytest.mark.parametrize('program', PDF_PROGRAMS)
def test_each_rasterizer_renders_the_longer_side_at_the_asked_size_or_below_the_dpi_bound(three_page_pdf, program):
    assert count_pages(three_page_pdf, program) == 3
    pages = list(render_pages(three_page_pdf, program, [2, 3], 3, 512))
    assert [number for number, _ in pages] == [2, 3]
    for _, page in pages:
        assert isinstance(page, Image.Image) and page.mode == 'RGB'
        assert close_to(page.size, (396, 512))  # a letter page (8.5 x 11 in), its 11 in -> 512 px
        # the black title bar drawn at a tenth of the page height is there
        assert page.convert('L').getpixel((198, 57)) < 60
    # pdf_dpi is an upper bound: 100 dpi gives 850 x 1100 where the longer side could have had 4000 px
    (_, page), = render_pages(three_page_pdf, program, [1], 3, 4000, max_dpi=100)
    assert abs(page.size[0] - 850) <= 1 and abs(page.size[1] - 1100) <= 1


@pytest.mark.parametrize('program', PDF_PROGRAMS)
def test_pages_of_different_sizes_and_rotations_each_get_their_own_size(tmp_path, program):
    path = write_mixed_pages_pdf(str(tmp_path / 'mixed.pdf'))
    count, _ = measure_document(path, program)
    sizes = [page.size for _, page in render_pages(path, program, range(1, count + 1), 1, 128)]
    # portrait letter, landscape letter, a small square (enlarged), a letter page turned by /Rotate 90, 2 x 1 in
    expected = [(99, 128), (128, 99), (128, 128), (128, 99), (128, 64)]
    assert len(sizes) == len(expected) and all(close_to(size, want) for size, want in zip(sizes, expected))


@pytest.mark.parametrize('program', PDF_PROGRAMS)
def test_a_huge_page_is_rendered_at_the_bounded_size(tmp_path, program):
    """333 x 433 inches (a 1000 x 1300 scan stored at 3 dpi): at 100 dpi that was a 4.3 GB bitmap."""
    path = write_huge_page_pdf(str(tmp_path / 'huge.pdf'))
    (_, page), = render_pages(path, program, [1], 3, 128, max_dpi=100)
    assert isinstance(page, Image.Image) and close_to(page.size, (98, 128))
    assert page.convert('L').getpixel((49, 15)) < 100  # the black bar across the top of the scan


# Renders the huge page with each rasterizer in a fresh process; prints the peak RSS of it and of its children
# (pdftoppm, Ghostscript) in MiB. Its own peak is VmHWM: ru_maxrss would carry the peak of the test process it
# was forked from across the exec.
_PEAK_MEMORY = '''
import json, resource, sys
from deepzine.data.rasterize import render_pages
for program in ('pdfium', 'pdftoppm', 'ghostscript'):
    (_, page), = render_pages(sys.argv[1], program, [1], 3, 128, max_dpi=100)
    assert page.size[1] == 128
with open('/proc/self/status') as status:
    own_kib = next(int(line.split()[1]) for line in status if line.startswith('VmHWM'))
print(json.dumps({'self': own_kib / 1024, 'children': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
'''


def test_rendering_a_huge_page_takes_the_memory_of_a_small_one(tmp_path):
    path = write_huge_page_pdf(str(tmp_path / 'huge.pdf'))
    result = subprocess.run([sys.executable, '-c', _PEAK_MEMORY, path], cwd=REPOSITORY, capture_output=True, text=True,
                            timeout=120, check=True)
    peaks_mib = json.loads(result.stdout.strip().splitlines()[-1])
    assert peaks_mib['self'] < 300 and peaks_mib['children'] < 300, peaks_mib  # unbounded: 4,300 MiB


@pytest.mark.parametrize('program', PDF_PROGRAMS)
def test_grey_rendering_gives_single_channel_pages(three_page_pdf, program):
    (_, page), = render_pages(three_page_pdf, program, [1], 1, 100)
    assert page.mode == 'L'


@pytest.mark.parametrize('program', PDF_PROGRAMS)
@pytest.mark.parametrize('make, reason', [(write_empty_file, 'empty'), (write_random_bytes, 'not a PDF'),
                                          (write_encrypted_pdf, 'encrypted')])
def test_broken_documents_raise_a_document_error_with_the_reason(tmp_path, program, make, reason):
    path = make(str(tmp_path / 'broken.pdf'))
    with pytest.raises(DocumentError, match=reason):
        count_pages(path, program)


@pytest.mark.parametrize('program', PDF_PROGRAMS)
def test_a_truncated_pdf_never_raises_past_the_document_error(tmp_path, program):
    """Readers differ (PDFium refuses it, Ghostscript repairs what it can): each page is an image or a reason."""
    path = write_truncated_pdf(str(tmp_path / 'truncated.pdf'), page_count=3)
    try:
        count = count_pages(path, program)
    except DocumentError:
        return
    pages = list(render_pages(path, program, range(1, count + 1), 3, 100))
    assert len(pages) == count
    assert all(isinstance(page, (Image.Image, DocumentError)) for _, page in pages)


def test_missing_file_is_a_document_error(tmp_path):
    with pytest.raises(DocumentError, match='cannot be read'):
        count_pages(str(tmp_path / 'absent.pdf'), 'pdfium')


def test_image_files_are_documents_whose_frames_are_pages(tmp_path):
    path = str(tmp_path / 'scan.tif')
    frames = [draw_page(number, (120, 160)) for number in range(1, 4)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert count_pages(path, 'pdfium') == 3
    pages = list(render_pages(path, 'pdfium', [2, 3], 3, 32))
    assert [number for number, _ in pages] == [2, 3]
    assert all(page.size == (120, 160) for _, page in pages)  # image files come as they are


def test_an_unreadable_image_is_a_document_error(tmp_path):
    path = write_random_bytes(str(tmp_path / 'noise.png'))
    with pytest.raises(DocumentError, match='not a readable image'):
        count_pages(path, 'pdfium')
