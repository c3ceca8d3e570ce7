"""Turn one document (a PDF, or an image file) into PIL pages in memory, with any of three PDF rasterizers.

pdfium (pypdfium2) renders in process and is the fastest here (about 230
letter pages per CPU-second at 100 dpi against about 30 for pdftoppm and 20 for
Ghostscript, measured on one core of a 2-core AMD EPYC); pdftoppm (through pdf2image) and
Ghostscript (deepzine.data.rasterize_programs) are kept because they sometimes
read a PDF that PDFium refuses, and because the original DeepZine offered them.
Nothing is written as PNG: encoding dominated the original's conversion time.

PDFium is not thread-safe, so these functions are called from worker processes,
one document range at a time. Every failure becomes a `DocumentError` with a
reason a person can act on; a bad page is yielded as an error and the rest of
the document goes on.

Every page is rendered at a bounded size (deepzine.data.rasterize_common).
PDFium reads each page's size as it renders; pdftoppm and Ghostscript render
ranges of pages in one call, so their page sizes are read first (with the
page count: `measure_document`).

pypdfium2 is imported where it renders: `--dry-run` imports this module.
"""

import os

from PIL import Image, UnidentifiedImageError

from deepzine.data.rasterize_common import DocumentError, first_line, pixels_per_point
from deepzine.data.rasterize_programs import measure_ghostscript, measure_pdftoppm, render_with_program

PDF_PROGRAMS = ('pdfium', 'pdftoppm', 'ghostscript')
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff')


def count_pages(path, program):
    """Number of pages of a PDF (program in PDF_PROGRAMS) or frames of an image file; DocumentError if unreadable."""
    return measure_document(path, program)[0]


def measure_document(path, program):
    """(page count, page sizes); DocumentError if unreadable or without pages.

    Page sizes are (width, height) in points as the page is shown (crop box,
    rotation applied), one per page and None for a page whose size cannot be
    read, for the programs that need them before rendering (pdftoppm,
    Ghostscript); None for PDFium (it reads them as it renders) and image files.
    """
    _refuse_empty(path)
    if path.lower().endswith(IMAGE_EXTENSIONS):
        return _count_image_frames(path), None
    measurers = {'pdfium': _measure_pdfium, 'pdftoppm': measure_pdftoppm, 'ghostscript': measure_ghostscript}
    count, sizes = measurers[program](path)
    if count == 0:
        raise DocumentError('has no pages')
    return count, sizes


def render_pages(path, program, page_numbers, channels, longer_side_px, max_dpi=None, page_sizes=None):
    """Yield (page_number, PIL image or DocumentError) for each of `page_numbers` (1-based, ascending).

    Pages come in 'RGB' for channels 3 and 'L' for channels 1 (PDF rasterizers
    render grey directly, which is cheaper than converting afterwards), sized
    as the module docstring says. page_sizes: the sizes `measure_document`
    gave for these pages (read here when pdftoppm or Ghostscript needs them).
    """
    page_numbers = list(page_numbers)
    if path.lower().endswith(IMAGE_EXTENSIONS):
        yield from _read_image_frames(path, page_numbers)
    elif program == 'pdfium':
        yield from _render_pdfium(path, page_numbers, channels, longer_side_px, max_dpi)
    else:
        if page_sizes is None:
            sizes = measure_document(path, program)[1]
            page_sizes = [sizes[number - 1] if number <= len(sizes) else None for number in page_numbers]
        yield from render_with_program(path, program, page_numbers, channels, longer_side_px, max_dpi, page_sizes)


def _refuse_empty(path):
    try:
        if os.path.getsize(path) == 0:
            raise DocumentError('is an empty file')
    except OSError as error:
        raise DocumentError(f'cannot be read ({error.strerror})') from None


# --- pdfium ---------------------------------------------------------------------------------------------

def _pdfium_reason(error):
    text = str(error)
    if 'password' in text.lower():
        return 'is encrypted (needs a password)'
    if 'format' in text.lower():
        return 'is not a PDF or is damaged (PDFium: data format error)'
    return f'cannot be opened by PDFium ({text})'


def _open_pdfium(path):
    import pypdfium2
    try:
        return pypdfium2.PdfDocument(path)
    except pypdfium2.PdfiumError as error:
        raise DocumentError(_pdfium_reason(error)) from None


def _measure_pdfium(path):
    document = _open_pdfium(path)
    try:
        return len(document), None
    finally:
        document.close()


def _render_pdfium(path, page_numbers, channels, longer_side_px, max_dpi):
    import pypdfium2
    document = _open_pdfium(path)
    try:
        for page_number in page_numbers:
            try:
                page = document[page_number - 1]
                try:
                    scale = pixels_per_point(*page.get_size(), longer_side_px, max_dpi)
                    bitmap = page.render(scale=scale, grayscale=channels == 1)
                    # copy(): the PIL image would otherwise share memory with a bitmap freed with the page.
                    image = bitmap.to_pil().copy()
                finally:
                    page.close()
            except DocumentError as error:
                yield page_number, error
                continue
            except (pypdfium2.PdfiumError, ValueError, MemoryError) as error:
                yield page_number, DocumentError(f'cannot be rendered by PDFium ({error})')
                continue
            yield page_number, image.convert('L') if channels == 1 and image.mode != 'L' else image
    finally:
        document.close()


# --- image files --------------------------------------------------------------------------------------------

def _open_image(path):
    try:
        return Image.open(path)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
        raise DocumentError(f'is not a readable image ({first_line(error)})') from None


def _count_image_frames(path):
    with _open_image(path) as image:
        return getattr(image, 'n_frames', 1)


def _read_image_frames(path, page_numbers):
    """Frames of a (possibly multi-page TIFF) image; a frame that fails to decode is a bad page."""
    with _open_image(path) as image:
        for page_number in page_numbers:
            try:
                image.seek(page_number - 1)
                image.load()
                yield page_number, image.copy()
            except (OSError, ValueError, EOFError, SyntaxError) as error:
                yield page_number, DocumentError(f'cannot be decoded ({first_line(error)})')
