"""Test documents made on the spot: multi-page PDFs drawn with Pillow, page images, and broken PDFs of each kind."""

import io
import os
import random

from PIL import Image, ImageDraw

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
