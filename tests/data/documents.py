"""Test documents made on the spot: multi-page PDFs drawn with Pillow, page images, and broken PDFs of each kind."""

import io
import os
import random

from PIL import Image, ImageDraw, ImageFont

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LETTER_POINTS = (612, 792)  # 8.5 x 11 inches at 72 points per inch
GOOD_PAGES = 8  # pages in the conftest pdf_folder's two good PDFs


def draw_page(number, size=LETTER_POINTS, paper=(250, 248, 240), mode='RGB'):
    """A page with a black title bar, a grey block and its number, on off-white paper."""
    page = Image.new('RGB', size, paper)
    draw = ImageDraw.Draw(page)
    width, height = size
    draw.rectangle([width // 10, height // 10, width * 9 // 10, height // 10 + height // 20], fill=(0, 0, 0))
    draw.rectangle([width // 10, height // 3, width // 2, height // 2], fill=(90, 90, 90))
    draw.text((width // 10, height * 2 // 3), f'page {number}', fill=(0, 0, 0))
    return page.convert(mode)


def write_pdf(path, page_count, size=LETTER_POINTS):
    """A real multi-page PDF, one point per pixel (resolution 72) so a page renders at size * dpi / 72."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with open(path, 'wb') as handle:
        handle.write(pdf_bytes(page_count, size))
    return path


def write_truncated_pdf(path, page_count=3):
    write_pdf(path, page_count)
    with open(path, 'rb') as handle:
        data = handle.read()
    with open(path, 'wb') as handle:
        handle.write(data[:len(data) // 3])
    return path


def write_random_bytes(path, size=4000, seed=0):
    with open(path, 'wb') as handle:
        handle.write(random.Random(seed).randbytes(size))
    return path


def write_empty_file(path):
    open(path, 'wb').close()
    return path


def encrypted_pdf_bytes():
    """A minimal PDF protected by the standard security handler with an unknown user password.

    The /U value matches no password (not even the empty one), which is all a
    reader checks before refusing: 'Incorrect password' in PDFium and poppler,
    'requires a password' in Ghostscript.
    """
    objects = [
        b'<< /Type /Catalog /Pages 2 0 R >>',
        b'<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
        b'<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>',
        b'<< /Filter /Standard /V 1 /R 2 /O <' + b'11' * 32 + b'> /U <' + b'22' * 32 + b'> /P -4 >>',
    ]
    out = bytearray(b'%PDF-1.4\n')
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b'%d 0 obj\n' % number + body + b'\nendobj\n'
    xref_offset = len(out)
    out += b'xref\n0 %d\n0000000000 65535 f \n' % (len(objects) + 1)
    out += b''.join(b'%010d 00000 n \n' % offset for offset in offsets)
    out += (b'trailer\n<< /Size %d /Root 1 0 R /Encrypt 4 0 R /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n'
            % (len(objects) + 1, b'ab' * 16, b'ab' * 16, xref_offset))
    return bytes(out)


def write_encrypted_pdf(path):
    with open(path, 'wb') as handle:
        handle.write(encrypted_pdf_bytes())
    return path


def pdf_bytes(page_count, size=LETTER_POINTS):
    """The bytes of a Pillow-drawn PDF (also served by the fake archive)."""
    pages = [draw_page(number, size) for number in range(1, page_count + 1)]
    buffer = io.BytesIO()
    pages[0].save(buffer, format='PDF', save_all=True, append_images=pages[1:], resolution=72)
    return buffer.getvalue()


def files_under(root):
    """Every file below root, as sorted relative paths."""
    return sorted(os.path.relpath(os.path.join(folder, name), root)
                  for folder, _, names in os.walk(root) for name in names)


def write_huge_page_pdf(path):
    """One 333 x 433 inch page: a 1000 x 1300 pixel scan stored at 3 dpi, as an archive item did (black bar on top)."""
    scan = Image.new('RGB', (1000, 1300), (250, 248, 240))
    ImageDraw.Draw(scan).rectangle([100, 100, 900, 200], fill=(0, 0, 0))
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    scan.save(path, resolution=3)
    return path


MIXED_PAGE_POINTS = [(612, 792), (792, 612), (300, 300), (612, 792), (144, 72)]  # the 4th is turned by /Rotate 90


def write_mixed_pages_pdf(path):
    """Pages of several sizes in one PDF, one of them rotated by its /Rotate entry (as scanned books have)."""
    import pypdfium2
    pages = [draw_page(number, size) for number, size in enumerate(MIXED_PAGE_POINTS, 1)]
    buffer = io.BytesIO()
    pages[0].save(buffer, format='PDF', save_all=True, append_images=pages[1:], resolution=72)
    document = pypdfium2.PdfDocument(buffer.getvalue())
    document[3].set_rotation(90)
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    document.save(path)
    document.close()
    return path


# --- pages for the blank-page checks: letter pages drawn at 150 dpi with 10 pt text -----------------------------

_DPI = 150
_PAPER = (250, 248, 240)


def _text_font():
    return ImageFont.load_default(size=round(10 / 72 * _DPI))


def draw_kind_of_page(kind, words='the end of the chapter.'):
    """A letter page at 150 dpi: 'white', 'page number' (at the foot), 'faint border' (a light grey frame and a
    scanner shadow along one edge), 'line of text' (one short line where the text block starts) or 'text'."""
    width, height = round(8.5 * _DPI), 11 * _DPI
    page = Image.new('RGB', (width, height), _PAPER)
    draw = ImageDraw.Draw(page)
    if kind == 'page number':
        draw.text((width // 2, height - _DPI * 3 // 4), '217', fill=(0, 0, 0), font=_text_font())
    elif kind == 'faint border':
        margin = _DPI // 2
        draw.rectangle([margin, margin, width - margin, height - margin], outline=(205, 204, 198), width=2)
        draw.rectangle([0, 0, _DPI // 5, height], fill=(200, 198, 190))
    elif kind == 'line of text':
        draw.text((_DPI, _DPI), words, fill=(0, 0, 0), font=_text_font())
    elif kind == 'text':
        for top in range(_DPI, height - _DPI, _DPI // 6):
            draw.text((_DPI, top), 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod',
                      fill=(0, 0, 0), font=_text_font())
    elif kind != 'white':
        raise ValueError(f'unknown kind of page {kind!r}')
    return page


def write_kinds_pdf(path, kinds):
    """A PDF with one page of each kind (see draw_kind_of_page), in order."""
    pages = [draw_kind_of_page(kind) for kind in kinds]
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    pages[0].save(path, format='PDF', save_all=True, append_images=pages[1:], resolution=_DPI)
    return path


def write_numbered_pages_pdf(path, page_count, size=(306, 396)):
    """Pages that differ only by a large number drawn on them: a page tells its number (half-letter, 72 dpi)."""
    font = ImageFont.load_default(size=size[1] // 3)
    pages = []
    for number in range(1, page_count + 1):
        page = Image.new('RGB', size, _PAPER)
        ImageDraw.Draw(page).text((size[0] // 8, size[1] // 3), str(number), fill=(0, 0, 0), font=font)
        pages.append(page)
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    pages[0].save(path, format='PDF', save_all=True, append_images=pages[1:], resolution=72)
    return path
