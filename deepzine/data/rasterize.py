"""Turn one document (a PDF, or an image file) into PIL pages in memory, with any of three PDF rasterizers.

pdfium (pypdfium2) renders in process and is the fastest here (about 230
letter pages per CPU-second at 100 dpi against about 30 for pdftoppm and 20 for
Ghostscript, measured on one core of a 2-core AMD EPYC); pdftoppm (through pdf2image) and
Ghostscript are kept because they sometimes read a PDF that PDFium refuses,
and because the original DeepZine offered them. Nothing is written as PNG:
encoding dominated the original's conversion time.

PDFium is not thread-safe, so these functions are called from worker processes,
one document range at a time. Every failure becomes a `DocumentError` with a
reason a person can act on; a bad page is yielded as an error and the rest of
the document goes on.
"""

import os
import subprocess
import tempfile

PDF_PROGRAMS = ('pdfium', 'pdftoppm', 'ghostscript')
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff')

_POINTS_PER_INCH = 72
_GHOSTSCRIPT = 'gs'


class DocumentError(Exception):
    """A document or page that cannot be read; the message is the reason shown in the summary."""


def count_pages(path, program):
    """Number of pages of a PDF (program in PDF_PROGRAMS) or frames of an image file; DocumentError if unreadable."""
    _refuse_empty(path)
    if path.lower().endswith(IMAGE_EXTENSIONS):
        return _count_image_frames(path)
    counters = {'pdfium': _count_pdfium, 'pdftoppm': _count_pdftoppm, 'ghostscript': _count_ghostscript}
    count = counters[program](path)
    if count == 0:
        raise DocumentError('has no pages')
    return count


def render_pages(path, program, first_page, last_page, dpi, channels):
    """Yield (page_number, PIL image or DocumentError) for pages first_page..last_page (1-based, inclusive).

    Pages come in 'RGB' for channels 3 and 'L' for channels 1 (PDF rasterizers
    render grey directly, which is cheaper than converting afterwards).
    """
    if path.lower().endswith(IMAGE_EXTENSIONS):
        yield from _read_image_frames(path, first_page, last_page)
    elif program == 'pdfium':
        yield from _render_pdfium(path, first_page, last_page, dpi, channels)
    else:
        render_range = _render_range_pdftoppm if program == 'pdftoppm' else _render_range_ghostscript
        yield from _isolating_bad_pages(render_range, path, first_page, last_page, dpi, channels)


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


def _count_pdfium(path):
    document = _open_pdfium(path)
    try:
        return len(document)
    finally:
        document.close()


def _render_pdfium(path, first_page, last_page, dpi, channels):
    import pypdfium2
    document = _open_pdfium(path)
    try:
        for page_number in range(first_page, last_page + 1):
            try:
                page = document[page_number - 1]
                try:
                    bitmap = page.render(scale=dpi / _POINTS_PER_INCH, grayscale=channels == 1)
                    # copy(): the PIL image would otherwise share memory with a bitmap freed with the page.
                    image = bitmap.to_pil().copy()
                finally:
                    page.close()
            except (pypdfium2.PdfiumError, ValueError, MemoryError) as error:
                yield page_number, DocumentError(f'cannot be rendered by PDFium ({error})')
                continue
            yield page_number, image.convert('L') if channels == 1 and image.mode != 'L' else image
    finally:
        document.close()


# --- pdftoppm (poppler, through pdf2image) ----------------------------------------------------------------

def _count_pdftoppm(path):
    import pdf2image
    from pdf2image.exceptions import PDFInfoNotInstalledError, PDFPageCountError, PDFSyntaxError
    try:
        return int(pdf2image.pdfinfo_from_path(path, timeout=60)['Pages'])
    except PDFInfoNotInstalledError:
        raise DocumentError('cannot be read: pdfinfo/pdftoppm not installed (apt-get install poppler-utils)') from None
    except (PDFPageCountError, PDFSyntaxError) as error:
        reason = 'is encrypted (needs a password)' if 'password' in str(error).lower() else 'is not a PDF or is damaged'
        raise DocumentError(f'{reason} (poppler: {_first_line(error)})') from None
    except (subprocess.TimeoutExpired, KeyError, ValueError) as error:
        raise DocumentError(f'cannot be read by pdfinfo ({_first_line(error)})') from None


def _render_range_pdftoppm(path, first_page, last_page, dpi, channels):
    import pdf2image
    from pdf2image.exceptions import PDFPageCountError, PDFSyntaxError
    try:
        return pdf2image.convert_from_path(path, dpi=dpi, first_page=first_page, last_page=last_page,
                                           grayscale=channels == 1, use_cropbox=True,
                                           timeout=_subprocess_timeout_sec(first_page, last_page))
    except (PDFPageCountError, PDFSyntaxError, subprocess.TimeoutExpired, OSError) as error:
        raise DocumentError(f'pdftoppm failed ({_first_line(error)})') from None


# --- Ghostscript --------------------------------------------------------------------------------------------

def _postscript_string(text):
    return '(' + text.replace('\\', '\\\\').replace('(', '\\(').replace(')', '\\)') + ')'


def _run_ghostscript(arguments, timeout_sec):
    try:
        return subprocess.run([_GHOSTSCRIPT, *arguments], capture_output=True, timeout=timeout_sec, check=False)
    except FileNotFoundError:
        raise DocumentError('cannot be read: Ghostscript (gs) not installed (apt-get install ghostscript)') from None
    except subprocess.TimeoutExpired:
        raise DocumentError(f'Ghostscript took longer than {timeout_sec} s') from None


def _count_ghostscript(path):
    path = os.path.abspath(path)
    # -dSAFER forbids file access from PostScript; --permit-file-read opens exactly this one file.
    result = _run_ghostscript(['-q', '-dNODISPLAY', '-dSAFER', f'--permit-file-read={path}',
                               '-c', f'{_postscript_string(path)} (r) file runpdfbegin pdfpagecount = quit'], 60)
    output = result.stdout.decode('utf-8', 'replace')
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    message = result.stderr.decode('utf-8', 'replace') + output
    if 'password' in message.lower():
        raise DocumentError('is encrypted (needs a password)')
    if result.returncode != 0 or not lines or not lines[-1].isdigit():
        raise DocumentError(f'is not a PDF or is damaged (Ghostscript: {_first_line(message)})')
    if int(lines[-1]) == 0 and 'Error' in message:
        raise DocumentError(f'is not a PDF or is damaged (Ghostscript: {_first_line(message)})')
    return int(lines[-1])


def _render_range_ghostscript(path, first_page, last_page, dpi, channels):
    from PIL import Image
    device = 'pgmraw' if channels == 1 else 'ppmraw'
    with tempfile.TemporaryDirectory(prefix='deepzine-gs-') as folder:
        # Argument list (never a shell), -dSAFER, anti-aliasing on, the crop box as pdfium and pdftoppm use it.
        # Raw PNM output costs no encoding; an absolute input path can never be read as a switch.
        result = _run_ghostscript(
            ['-q', '-dNOPAUSE', '-dBATCH', '-dSAFER', f'-sDEVICE={device}', f'-r{dpi}',
             '-dTextAlphaBits=4', '-dGraphicsAlphaBits=4', '-dUseCropBox',
             f'-dFirstPage={first_page}', f'-dLastPage={last_page}',
             '-sOutputFile=' + os.path.join(folder, 'page-%06d.pnm'), os.path.abspath(path)],
            _subprocess_timeout_sec(first_page, last_page))
        names = sorted(os.listdir(folder))
        if result.returncode != 0 or len(names) != last_page - first_page + 1:
            message = (result.stderr + result.stdout).decode('utf-8', 'replace')
            raise DocumentError(f'Ghostscript failed ({_first_line(message) or f"exit code {result.returncode}"})')
        pages = []
        for name in names:
            with Image.open(os.path.join(folder, name)) as image:
                image.load()
                pages.append(image.copy())
        return pages


# --- shared -------------------------------------------------------------------------------------------------

def _isolating_bad_pages(render_range, path, first_page, last_page, dpi, channels):
    """Render a range in one call (one process start); if that fails, page by page so one bad page costs one page."""
    try:
        pages = render_range(path, first_page, last_page, dpi, channels)
        if len(pages) == last_page - first_page + 1:
            yield from zip(range(first_page, last_page + 1), pages)
            return
    except DocumentError:
        if first_page == last_page:
            raise
    for page_number in range(first_page, last_page + 1):
        try:
            pages = render_range(path, page_number, page_number, dpi, channels)
        except DocumentError as error:
            yield page_number, error
            continue
        if len(pages) != 1:
            yield page_number, DocumentError('the rasterizer returned no image')
        else:
            yield page_number, pages[0]


def _subprocess_timeout_sec(first_page, last_page):
    return 60 + 20 * (last_page - first_page + 1)


def _first_line(error):
    lines = [line.strip(' *') for line in str(error).splitlines() if line.strip(' *')]
    return lines[0] if lines else ''


# --- image files --------------------------------------------------------------------------------------------

def _open_image(path):
    from PIL import Image, UnidentifiedImageError
    try:
        return Image.open(path)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
        raise DocumentError(f'is not a readable image ({_first_line(error)})') from None


def _count_image_frames(path):
    with _open_image(path) as image:
        return getattr(image, 'n_frames', 1)


def _read_image_frames(path, first_page, last_page):
    """Frames of a (possibly multi-page TIFF) image; a frame that fails to decode is a bad page."""
    with _open_image(path) as image:
        for page_number in range(first_page, last_page + 1):
            try:
                image.seek(page_number - 1)
                image.load()
                yield page_number, image.copy()
            except (OSError, ValueError, EOFError, SyntaxError) as error:
                yield page_number, DocumentError(f'cannot be decoded ({_first_line(error)})')
