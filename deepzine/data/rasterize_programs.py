"""pdftoppm (poppler, through pdf2image) and Ghostscript: rasterizers run as programs, a range of pages per call.

Starting a program costs more than rendering a small page, so pages go in
runs: consecutive pages that render at the same size (most documents: all of
them) are rendered by one call. Each page's size in points is read first (by
`measure_pdftoppm` / `measure_ghostscript`, with the page count), and a run
is cut wherever the rendered size changes. When a run fails, its pages are
rendered one by one, so one bad page costs only itself. Output stays in
memory (pdf2image) or in raw PNM files in a temporary folder (Ghostscript):
no PNG encoding, which dominated the original DeepZine's conversion time.
"""

import math
import os
import re
import subprocess
import tempfile

import pdf2image
from pdf2image.exceptions import PDFInfoNotInstalledError, PDFPageCountError, PDFSyntaxError
from PIL import Image

from deepzine.data.rasterize_common import POINTS_PER_INCH, DocumentError, first_line, pixels_per_point

_GHOSTSCRIPT = 'gs'


def render_with_program(path, program, page_numbers, channels, longer_side_px, max_dpi, page_sizes):
    """Yield (page_number, PIL image or DocumentError) for each of `page_numbers`; program: pdftoppm | ghostscript.

    page_sizes: per page of page_numbers, (width, height) in points or None (unreadable).
    """
    targets = {'pdftoppm': _pdftoppm_target, 'ghostscript': _ghostscript_target}[program]
    render_range = _render_range_pdftoppm if program == 'pdftoppm' else _render_range_ghostscript
    for run in _runs_of_equal_targets(page_numbers, page_sizes, targets, longer_side_px, max_dpi):
        if isinstance(run, tuple):
            yield run  # (page_number, DocumentError): a page whose size cannot be read
        else:
            yield from _isolating_bad_pages(render_range, path, run, channels)


def _runs_of_equal_targets(page_numbers, page_sizes, target_of, longer_side_px, max_dpi):
    """Consecutive pages rendered at the same size, as _Run objects (one program call each), in page order."""
    run = None
    for number, size in zip(page_numbers, page_sizes):
        try:
            if size is None:
                raise DocumentError('page size cannot be read')
            target = target_of(size, longer_side_px, max_dpi)
        except DocumentError as error:
            if run:
                yield run
                run = None
            yield number, error
            continue
        if run and run.target == target and number == run.last_page + 1:
            run.last_page = number
        else:
            if run:
                yield run
            run = _Run(number, number, target)
    if run:
        yield run


class _Run:
    """Pages first_page..last_page, all rendered at `target` (what the program is told: a size, a resolution)."""

    def __init__(self, first_page, last_page, target):
        self.first_page, self.last_page, self.target = first_page, last_page, target

    def single(self, page_number):
        return _Run(page_number, page_number, self.target)

    @property
    def page_count(self):
        return self.last_page - self.first_page + 1


# --- pdftoppm (poppler, through pdf2image) ----------------------------------------------------------------

_PDFINFO_LAST_PAGE = 10 ** 9  # pdfinfo -l: stops at the last page, so this lists every page


def measure_pdftoppm(path):
    try:
        info = pdf2image.pdfinfo_from_path(path, timeout=60, first_page=1, last_page=_PDFINFO_LAST_PAGE)
        count = int(info['Pages'])
    except PDFInfoNotInstalledError:
        raise DocumentError('cannot be read: pdfinfo/pdftoppm not installed (apt-get install poppler-utils)') from None
    except (PDFPageCountError, PDFSyntaxError) as error:
        reason = 'is encrypted (needs a password)' if 'password' in str(error).lower() else 'is not a PDF or is damaged'
        raise DocumentError(f'{reason} (poppler: {first_line(error)})') from None
    except (subprocess.TimeoutExpired, KeyError, ValueError) as error:
        raise DocumentError(f'cannot be read by pdfinfo ({first_line(error)})') from None
    return count, [_pdfinfo_page_size(info, number) for number in range(1, count + 1)]


def _pdfinfo_page_size(info, page_number):
    """(width, height) as shown, from pdfinfo's 'Page N size: W x H pts' (the crop box) and 'Page N rot'."""
    found = re.match(r'([\d.]+) x ([\d.]+) pts', info.get(f'Page {page_number:4d} size', ''))
    if not found:
        return None
    width, height = float(found.group(1)), float(found.group(2))
    rotation = str(info.get(f'Page {page_number:4d} rot', '0')).strip()
    return (height, width) if rotation.lstrip('-').isdigit() and int(rotation) % 180 == 90 else (width, height)


def _pdftoppm_target(size, longer_side_px, max_dpi):
    """(dpi, None) where the pdf_dpi bound applies, else (None, longer side px) for -scale-to: either way the same
    for every page of most documents, which then render in one call."""
    if _dpi_bound_applies(size, longer_side_px, max_dpi):
        return max_dpi, None
    return None, longer_side_px


def _dpi_bound_applies(size, longer_side_px, max_dpi):
    return bool(max_dpi) and pixels_per_point(*size, longer_side_px, max_dpi) < longer_side_px / max(size)


def _render_range_pdftoppm(path, run, channels):
    dpi, longer_side_px = run.target
    # pdftoppm applies the page's rotation itself; -scale-to fits the longer side, whichever way it lies
    size = {'dpi': dpi} if dpi else {'size': longer_side_px}
    try:
        return pdf2image.convert_from_path(path, first_page=run.first_page, last_page=run.last_page, **size,
                                           grayscale=channels == 1, use_cropbox=True,
                                           timeout=_subprocess_timeout_sec(run.page_count))
    except (PDFPageCountError, PDFSyntaxError, subprocess.TimeoutExpired, OSError) as error:
        raise DocumentError(f'pdftoppm failed ({first_line(error)})') from None


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


# Prints "pages N", then "page I <MediaBox> <CropBox or null> <Rotate>" per page ("unreadable" when a page's
# dictionary cannot be read, so one bad page does not hide the size of the others).
_GHOSTSCRIPT_MEASURE = (
    '(pages ) print pdfpagecount = '
    '1 1 pdfpagecount { dup (page ) print =only ( ) print '
    '{ pdfgetpage dup /MediaBox pget { ==only } { (null) print } ifelse ( ) print '
    'dup /CropBox pget { ==only } { (null) print } ifelse ( ) print '
    '/Rotate pget { =only } { (0) print } ifelse } stopped { (unreadable) print } if (\\n) print } for quit')


def measure_ghostscript(path):
    path = os.path.abspath(path)
    # -dSAFER forbids file access from PostScript; --permit-file-read opens exactly this one file.
    result = _run_ghostscript(['-q', '-dNODISPLAY', '-dSAFER', f'--permit-file-read={path}',
                               '-c', f'{_postscript_string(path)} (r) file runpdfbegin {_GHOSTSCRIPT_MEASURE}'], 120)
    output = result.stdout.decode('utf-8', 'replace')
    message = result.stderr.decode('utf-8', 'replace') + output
    if 'password' in message.lower():
        raise DocumentError('is encrypted (needs a password)')
    counts = re.findall(r'^pages (\d+)\s*$', output, re.MULTILINE)
    if result.returncode != 0 or not counts:
        raise DocumentError(f'is not a PDF or is damaged (Ghostscript: {first_line(message)})')
    count = int(counts[-1])
    if count == 0 and 'Error' in message:
        raise DocumentError(f'is not a PDF or is damaged (Ghostscript: {first_line(message)})')
    sizes = [None] * count
    for number, rest in re.findall(r'^page (\d+) (.*)$', output, re.MULTILINE):
        if 1 <= int(number) <= count:
            sizes[int(number) - 1] = _ghostscript_page_size(rest)
    return count, sizes


def _ghostscript_page_size(text):
    """(width, height) as shown from '<MediaBox> <CropBox or null> <Rotate>'; None if unreadable."""
    boxes = [[float(value) for value in box.split()] for box in re.findall(r'\[([^\]]*)\]', text)]
    rotation = re.search(r'(-?\d+)(?:\.0*)?\s*$', text)
    if not boxes or any(len(box) != 4 for box in boxes) or not rotation:
        return None
    media = boxes[0]
    left, bottom, right, top = min(media[0], media[2]), min(media[1], media[3]), max(media[0], media[2]), max(media[1], media[3])
    if len(boxes) > 1:  # -dUseCropBox renders the crop box, clipped to the media box
        crop = boxes[1]
        left, bottom = max(left, min(crop[0], crop[2])), max(bottom, min(crop[1], crop[3]))
        right, top = min(right, max(crop[0], crop[2])), min(top, max(crop[1], crop[3]))
    width, height = right - left, top - bottom
    return (height, width) if int(rotation.group(1)) % 180 == 90 else (width, height)


_DPI_STEP = 1.005
_GHOSTSCRIPT_MIN_DPI = 2  # below this Ghostscript stops ('rangecheck in setscreen'): it cannot set up its halftones


def _ghostscript_target(size, longer_side_px, max_dpi):
    """(dpi, None) or, for a page too large for even 2 dpi, (None, (width px, height px)) to fit it into.

    The dpi is rounded down to a step of 1/2 %: scanned pages differ in size
    by a few points, and pages of one dpi render in one Ghostscript call.
    """
    scale = pixels_per_point(*size, longer_side_px, max_dpi)
    if _dpi_bound_applies(size, longer_side_px, max_dpi):
        return max_dpi, None
    dpi = scale * POINTS_PER_INCH
    if dpi >= _GHOSTSCRIPT_MIN_DPI:
        return round(_DPI_STEP ** math.floor(math.log(dpi, _DPI_STEP)), 3), None
    return None, (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))


def _render_range_ghostscript(path, run, channels):
    device = 'pgmraw' if channels == 1 else 'ppmraw'
    dpi, fitted = run.target
    if fitted:
        # A page of hundreds of inches: drawn scaled into exactly that many pixels (its own proportions) at the
        # lowest resolution Ghostscript accepts. Only for such pages: this way misplaces a crop box here (GS 10.0).
        size = [f'-r{_GHOSTSCRIPT_MIN_DPI}', f'-g{fitted[0]}x{fitted[1]}', '-dFIXEDMEDIA', '-dPDFFitPage']
    else:
        size = [f'-r{dpi}']
    with tempfile.TemporaryDirectory(prefix='deepzine-gs-') as folder:
        # Argument list (never a shell), -dSAFER, anti-aliasing on, the crop box as pdfium and pdftoppm use it.
        # Raw PNM output costs no encoding; an absolute input path can never be read as a switch.
        result = _run_ghostscript(
            ['-q', '-dNOPAUSE', '-dBATCH', '-dSAFER', f'-sDEVICE={device}', *size,
             '-dTextAlphaBits=4', '-dGraphicsAlphaBits=4', '-dUseCropBox',
             f'-dFirstPage={run.first_page}', f'-dLastPage={run.last_page}',
             '-sOutputFile=' + os.path.join(folder, 'page-%06d.pnm'), os.path.abspath(path)],
            _subprocess_timeout_sec(run.page_count))
        names = sorted(os.listdir(folder))
        if result.returncode != 0 or len(names) != run.page_count:
            message = (result.stderr + result.stdout).decode('utf-8', 'replace')
            raise DocumentError(f'Ghostscript failed ({first_line(message) or f"exit code {result.returncode}"})')
        pages = []
        for name in names:
            with Image.open(os.path.join(folder, name)) as image:
                image.load()
                pages.append(image.copy())
        return pages


# --- runs that fail -------------------------------------------------------------------------------------------------

def _isolating_bad_pages(render_range, path, run, channels):
    """Render a run in one call (one process start); if that fails, page by page so one bad page costs one page."""
    try:
        pages = render_range(path, run, channels)
        if len(pages) == run.page_count:
            yield from zip(range(run.first_page, run.last_page + 1), pages)
            return
    except DocumentError as error:
        if run.page_count == 1:
            yield run.first_page, error
            return
    for page_number in range(run.first_page, run.last_page + 1):
        try:
            pages = render_range(path, run.single(page_number), channels)
        except DocumentError as error:
            yield page_number, error
            continue
        if len(pages) != 1:
            yield page_number, DocumentError('the rasterizer returned no image')
        else:
            yield page_number, pages[0]


def _subprocess_timeout_sec(page_count):
    return 60 + 20 * page_count
