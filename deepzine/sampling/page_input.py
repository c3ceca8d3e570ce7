"""The user's own pages for projection: PDFs and page images in a folder (or one file), rendered and squared as load_data does.

Rendering, squaring and the 2x2-average pyramid are load_data's own
(deepzine.data.pack.render_chunk on deepzine.data.rasterize and
deepzine.data.squaring), run in this process: projecting a page costs
seconds, rendering it milliseconds. Pages come out at the model's size and
channel count whatever they were (colour pages turn grey for a grey model and
grey pages RGB for a colour one, transparency lands on white paper). A page
that cannot be read is skipped and named, and so is a page image smaller
than half the model's size, whose enlargement would be judged on blur.
"""

import dataclasses
import logging
import os

import numpy as np

from deepzine.data.rasterize import IMAGE_EXTENSIONS
from deepzine.data.sources import Document, find_documents
from deepzine.parameters import ConfigError

logger = logging.getLogger(__name__)

PAGE_EXTENSIONS = ('.pdf',) + IMAGE_EXTENSIONS


@dataclasses.dataclass(frozen=True)
class PageRendering:
    """How pages are made: the model's size and channels, and the squaring and rasterizer its own pages had."""
    size: int
    channels: int
    square_mode: str = 'stretch'
    program: str = 'pdfium'
    max_dpi: int = None


@dataclasses.dataclass
class UserPages:
    pages: np.ndarray   # uint8 [N, size, size, channels]
    sources: list       # [(document key, page number)] per page, in order
    skipped: list       # [(path, page number or None, reason)]


def find_page_documents(path, key='project_pages'):
    """Documents under a folder (recursively, sorted), or the one file given; ConfigError when there are none."""
    if os.path.isfile(path):
        if not path.lower().endswith(PAGE_EXTENSIONS):
            raise ConfigError(f'{key}={path}: not a PDF or a page image ({", ".join(PAGE_EXTENSIONS)})')
        name = os.path.basename(path)
        return [Document(os.path.abspath(path), name, os.path.splitext(name)[0], os.path.getsize(path))]
    if not os.path.isdir(path):
        raise ConfigError(f'{key}={path}: no such file or folder (a folder of PDFs or page images, or one of them)')
    documents = find_documents(path, PAGE_EXTENSIONS)
    if not documents:
        raise ConfigError(f'{key}={path}: no PDFs or page images ({", ".join(PAGE_EXTENSIONS)}) in it or below it')
    return documents


def _too_small(document, rendering):
    """The reason to refuse an image document whose longer side is under half the model's size, else None."""
    if not document.path.lower().endswith(IMAGE_EXTENSIONS):
        return None
    from PIL import Image
    try:
        with Image.open(document.path) as image:
            width, height = image.size
    except (OSError, ValueError):
        return None  # unreadable: the renderer names why
    if 2 * max(width, height) < rendering.size:
        return (f'is {width}x{height} px, less than half the model\'s {rendering.size} px: too small to compare '
                f'with its pages')
    return None


def read_user_pages(documents, rendering):
    """Every page of every document as UserPages; unreadable pages and documents are skipped and named."""
    from deepzine.data.pack import (
        RenderSettings,
        count_document,
        document_chunks,
        render_chunk,
    )
    settings = RenderSettings(program=rendering.program, output_size=rendering.size, square_mode=rendering.square_mode,
                              channels=rendering.channels, max_dpi=rendering.max_dpi, compression='none')
    pages, sources, skipped = [], [], []
    for document in documents:
        reason = _too_small(document, rendering)
        count, sizes, reason = (0, None, reason) if reason else count_document(document.path, rendering.program)
        if reason:
            logger.warning('skipping %s: %s', document.path, reason)
            skipped.append((document.path, None, reason))
            continue
        for task in document_chunks(document, tuple(range(1, count + 1)), sizes, settings):
            result = render_chunk(task)
            for number, why in result.skipped:
                logger.warning('skipping page %d of %s: %s', number, document.path, why)
                skipped.append((document.path, number, why))
            if result.page_numbers:
                pages.append(result.levels[rendering.size])
                sources += [(document.key, number) for number in result.page_numbers]
    if not sources:
        raise ConfigError('no page could be read: ' + '; '.join(f'{path}: {why}' for path, _, why in skipped[:3]))
    return UserPages(np.concatenate(pages), sources, skipped)
