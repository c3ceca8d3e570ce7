import pytest
from PIL import Image

from deepzine.data.rasterize import PDF_PROGRAMS, DocumentError, count_pages, render_pages

from .documents import (draw_page, write_empty_file, write_encrypted_pdf, write_pdf, write_random_bytes,
                        write_truncated_pdf)


@pytest.fixture(scope='module')
def three_page_pdf(tmp_path_factory):
    return write_pdf(str(tmp_path_factory.mktemp('pdf') / 'three.pdf'), 3)


@pytest.mark.parametrize('program', PDF_PROGRAMS)
def test_each_rasterizer_counts_and_renders_pages_at_the_asked_dpi(three_page_pdf, program):
    assert count_pages(three_page_pdf, program) == 3
    pages = list(render_pages(three_page_pdf, program, 2, 3, 100, 3))
    assert [number for number, _ in pages] == [2, 3]
    for _, page in pages:
        assert isinstance(page, Image.Image) and page.mode == 'RGB'
        # a letter page (8.5 x 11 in) at 100 dpi
        assert abs(page.size[0] - 850) <= 1 and abs(page.size[1] - 1100) <= 1
        # the black title bar drawn at a tenth of the page height is there
        assert page.convert('L').getpixel((425, 125)) < 60


@pytest.mark.parametrize('program', PDF_PROGRAMS)
def test_grey_rendering_gives_single_channel_pages(three_page_pdf, program):
    (_, page), = render_pages(three_page_pdf, program, 1, 1, 50, 1)
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
    pages = list(render_pages(path, program, 1, count, 50, 3))
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
    pages = list(render_pages(path, 'pdfium', 2, 3, 100, 3))
    assert [number for number, _ in pages] == [2, 3]
    assert all(page.size == (120, 160) for _, page in pages)


def test_an_unreadable_image_is_a_document_error(tmp_path):
    path = write_random_bytes(str(tmp_path / 'noise.png'))
    with pytest.raises(DocumentError, match='not a readable image'):
        count_pages(path, 'pdfium')
