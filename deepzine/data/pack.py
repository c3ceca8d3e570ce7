"""Documents -> square pages at every size -> the page file, in parallel worker processes, streamed in order.

Work is cut into chunks of at most 16 pages of one document: workers count
pages first (cheap), then render, square and build the pyramid per chunk, and
the main process writes chunks in document order as they come back. At most
a few chunks are in flight, so memory stays flat however large the
collection, and a document's pages are contiguous in the file, which lets the
writer commit it as one unit (see `deepzine.data.writer`). Workers also
gzip-compress the pages, so the one writing process never becomes the
bottleneck, and note whether each page is blank and its SHA-1: the main
process, which sees pages in order, decides what is kept
(`page_checks.PageSelection`; pages past max_pages_per_document are never
rendered).

The worker processes (deepzine.data.workers) end at once on Ctrl-C or
SIGTERM; the writer keeps every document it committed.
"""

import collections
import dataclasses
import logging
import math
import os
import re
import shutil
import zlib

import numpy as np
from tqdm import tqdm

from deepzine.data.page_collections import IMAGE_FILES  # noqa: F401 (the program named for page images)
from deepzine.data.page_checks import PageSelection, is_blank, kept_positions, page_digest, spread_page_numbers
from deepzine.data.page_file_layout import GZIP_LEVEL
from deepzine.data.rasterize import DocumentError, measure_document, render_pages
from deepzine.data.squaring import build_pyramid, page_box, square_page
from deepzine.data.workers import Workers
from deepzine.files import OutOfSpace, atomic_path, remove_leftovers
from deepzine.sizes import sizes_between
from deepzine.test_hooks import pause_at

logger = logging.getLogger(__name__)

_MAX_PAGES_PER_CHUNK = 16
_MAX_CHUNK_BYTES = 64 * 2 ** 20


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    """How every page is made; also the page file's schema (`schema()`): the one place these values live."""
    program: str  # pdfium | pdftoppm | ghostscript | IMAGE_FILES
    output_size: int
    square_mode: str
    channels: int
    max_dpi: int = None  # pdf_dpi: an upper bound on the rendering resolution (None: none)
    page_image_directory: str = None  # keep each rendered page as PNG here (keep_page_images)
    compression: str = 'gzip'  # the page file's; gzip chunks are compressed here, in the workers
    page_images_by_collection: bool = False  # keep them in a subfolder per collection, <page_image_directory>/<name>/

    @property
    def longer_side_px(self):
        """A page's longer side is rendered at twice the stored size: enough for area averaging when squaring."""
        return 2 * self.output_size

    def schema(self):
        """The page file attributes that fix what a stored page looks like: new pages join only a file that matches."""
        return {'output_size': self.output_size, 'channels': self.channels, 'square_mode': self.square_mode,
                'pdf_dpi': self.max_dpi or 0, 'pdf_conversion_program': self.program}


@dataclasses.dataclass(frozen=True)
class ChunkTask:
    path: str
    key: str
    collection: str
    identifier: str
    page_numbers: tuple  # 1-based, ascending
    page_sizes: tuple  # per page (width, height) in points, or None (see rasterize.measure_document)
    settings: RenderSettings
    first_of_document: bool = True
    last_of_document: bool = True


@dataclasses.dataclass
class ChunkResult:
    levels: dict  # {size: uint8 [n, size, size, channels]} or, if compressed, {size: [n HDF5 gzip chunks]}
    page_numbers: list
    skipped: list  # [(page_number, reason)]
    compressed: bool = False
    digests: list = dataclasses.field(default_factory=list)  # per page: SHA-1 at the output size
    blank: list = dataclasses.field(default_factory=list)  # per page: True if blank (page_checks.is_blank)


@dataclasses.dataclass
class CollectionCounts:
    """What became of one collection's documents in this run."""
    documents_found: int = 0
    documents_already_done: int = 0
    documents_packed: int = 0
    documents_skipped: int = 0
    pages_written: int = 0


@dataclasses.dataclass
class PackSummary:
    selection: PageSelection = PageSelection()
    documents_found: int = 0
    documents_already_done: int = 0
    documents_packed: int = 0
    pages_written: int = 0
    pages_blank: int = 0
    pages_duplicate: int = 0
    pages_left_out: int = 0
    documents_skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    pages_skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    by_collection: dict = dataclasses.field(default_factory=dict)  # name -> CollectionCounts, in the run's order

    def lines(self):
        selection = self.selection
        lines = [f'documents: {self.documents_found} found, {self.documents_already_done} already in the file, '
                 f'{self.documents_packed} packed now, {sum(self.documents_skipped.values())} skipped',
                 f'pages: {self.pages_written} written now, {sum(self.pages_skipped.values())} skipped']
        lines += [f'  documents skipped: {count} {reason}' for reason, count in self.documents_skipped.most_common()]
        lines += [f'  pages skipped: {count} {reason}' for reason, count in self.pages_skipped.most_common()]
        lines.append(f'blank pages: {self.pages_blank} '
                     + ('dropped (skip_blank_pages: true)' if selection.skip_blank_pages
                        else 'kept (skip_blank_pages: true drops them)'))
        lines.append(f'duplicate pages (same pixels as a page stored before): {self.pages_duplicate} '
                     + ('dropped, the first copy kept (skip_duplicate_pages: true)' if selection.skip_duplicate_pages
                        else 'kept (skip_duplicate_pages: true drops them)'))
        if selection.max_pages_per_document:
            lines.append(f'pages left out by max_pages_per_document={selection.max_pages_per_document}: '
                         f'{self.pages_left_out}')
        return lines


def pages_per_chunk(settings):
    """Pages per task so that neither the rendered pages nor the pyramid of a chunk passes ~64 MiB.

    A rendered page has at most longer_side_px squared pixels (a square page;
    rasterize.py bounds every page so), whatever size its PDF claims.
    """
    rendered = settings.longer_side_px ** 2 * settings.channels
    stored = settings.output_size ** 2 * settings.channels * 4 / 3
    return int(max(1, min(_MAX_PAGES_PER_CHUNK, _MAX_CHUNK_BYTES // max(rendered, stored))))


def _reason_category(reason):
    """'page 7 cannot be rendered by PDFium (bad xref)' -> 'cannot be rendered by PDFium', for counting."""
    reason = re.sub(r'^page \d+:?\s*', '', reason)
    return re.sub(r'\s*\(.*\)\s*$', '', reason) or reason


# --- worker-side functions (must be top-level to be sent to spawned processes) ---------------------------

def count_document(path, program):
    """(page count, page sizes or None, None) or (0, None, reason); see rasterize.measure_document.

    Sizes come as float32 [pages, 2] (NaN: unreadable), 8 bytes a page, as the
    main process holds them for every document until it is rendered.
    """
    try:
        count, sizes = measure_document(path, program)
        if sizes is not None:
            sizes = np.array([size or (np.nan, np.nan) for size in sizes], np.float32).reshape(-1, 2)
        return count, sizes, None
    except DocumentError as error:
        return 0, None, str(error)
    except Exception as error:  # noqa: BLE001 - a surprising failure of one document must not stop the run
        return 0, None, f'cannot be read ({type(error).__name__}: {error})'


def _page_image_path(settings, collection, key, page_number):
    """image_directory[/<collection>]/<document key without extension>-NNNN.png (keep_page_images)."""
    folder = (os.path.join(settings.page_image_directory, collection) if settings.page_images_by_collection
              else settings.page_image_directory)
    return os.path.join(folder, f'{os.path.splitext(key)[0]}-{page_number:04d}.png')


def _save_page_image(page, task, page_number):
    with atomic_path(_page_image_path(task.settings, task.collection, task.key, page_number),
                     suffix='.png') as temporary:
        page.save(temporary, format='PNG')


def render_chunk(task):
    """Render, square and downsample one chunk; a bad page is listed in `skipped`, never raised."""
    pause_at('rendering', f'{task.key} pages {task.page_numbers[0]}-{task.page_numbers[-1]}')
    settings = task.settings
    squares, page_numbers, skipped, blank = [], [], [], []
    try:
        for page_number, page in render_pages(task.path, settings.program, task.page_numbers, settings.channels,
                                              settings.longer_side_px, settings.max_dpi, task.page_sizes):
            if isinstance(page, DocumentError):
                skipped.append((page_number, str(page)))
                continue
            try:
                if settings.page_image_directory:
                    _save_page_image(page, task, page_number)
                square = square_page(page, settings.output_size, settings.square_mode, settings.channels)
                blank.append(is_blank(square, page_box(*page.size, settings.output_size, settings.square_mode)))
                squares.append(square)
                page_numbers.append(page_number)
            except (OSError, OutOfSpace, ValueError, MemoryError) as error:
                skipped.append((page_number, f'cannot be squared ({error})'))
    except Exception as error:  # noqa: BLE001 - the whole rest of the range is lost, the run goes on
        reason = str(error) if isinstance(error, DocumentError) else f'{type(error).__name__}: {error}'
        done = set(page_numbers) | {number for number, _ in skipped}
        skipped += [(number, reason) for number in task.page_numbers if number not in done]
    levels = build_pyramid(np.stack(squares)) if squares else {}
    checks = {'digests': [page_digest(square) for square in squares], 'blank': blank}
    if settings.compression == 'gzip':
        # HDF5's deflate filter stores plain zlib streams: compressing here, one chunk (page) at a time, spreads
        # the cost over the workers instead of serialising it in the one process that writes (2x overall here).
        levels = {size: [zlib.compress(page.tobytes(), GZIP_LEVEL) for page in pages] for size, pages in levels.items()}
        return ChunkResult(levels, page_numbers, skipped, compressed=True, **checks)
    return ChunkResult(levels, page_numbers, skipped, **checks)


# --- main-process side ----------------------------------------------------------------------------------

def document_chunks(document, page_numbers, page_sizes, settings):
    """ChunkTasks for the chosen pages of one document, in order (page_sizes: per page of the document, or None)."""
    step = pages_per_chunk(settings)
    for start in range(0, len(page_numbers), step):
        numbers = page_numbers[start:start + step]
        sizes = None if page_sizes is None else tuple(_page_size(page_sizes[number - 1]) for number in numbers)
        yield ChunkTask(document.path, document.key, document.collection, document.identifier, numbers, sizes, settings,
                        first_of_document=start == 0, last_of_document=start + step >= len(page_numbers))


def _page_size(row):
    """(width, height) in points from a row of count_document's sizes; None where it could not be read (NaN)."""
    width, height = float(row[0]), float(row[1])
    return None if math.isnan(width) else (width, height)


def _crashed_count(path, program):
    return 0, None, 'crashed the rasterizer'


def _crashed_chunk(task):
    return ChunkResult({}, [], [(number, 'crashed the rasterizer') for number in task.page_numbers])


def pack_documents(documents, writer, settings, workers=1, progress=True, selection=PageSelection()):
    """Render and write every document not yet finished in `writer`; returns a PackSummary."""
    summary = PackSummary(selection=selection, documents_found=len(documents))
    for document in documents:
        counts = summary.by_collection.setdefault(document.collection, CollectionCounts())
        counts.documents_found += 1
        done_size = writer.finished_documents.get(document.done_key)
        if done_size is not None:
            counts.documents_already_done += 1
            if done_size != document.size_bytes:
                logger.warning('%s changed since it was packed; its old pages stay (overwrite: true rebuilds)',
                               document.path)
    todo = [document for document in documents if document.done_key not in writer.finished_documents]
    summary.documents_already_done = len(documents) - len(todo)
    if not todo:
        return summary
    if settings.page_image_directory:  # what workers killed while saving a page image left
        for folder in sorted({os.path.dirname(_page_image_path(settings, document.collection, document.key, 1))
                              for document in todo}):
            remove_leftovers(folder)
    logger.info('packing %d documents (%d already in the page file) with %d worker process%s', len(todo),
                summary.documents_already_done, workers, '' if workers == 1 else 'es')
    pool = Workers(workers)
    try:
        readable = []
        calls = [(document.path, settings.program) for document in todo]
        with tqdm(total=len(todo), desc='count pages', unit='doc', disable=not progress) as bar:
            for document, (_, (count, sizes, reason)) in zip(todo, pool.in_order(count_document, calls, _crashed_count)):
                bar.update()
                if reason:
                    logger.warning('skipping %s: %s', document.path, reason)
                    summary.documents_skipped[_reason_category(reason)] += 1
                    summary.by_collection[document.collection].documents_skipped += 1
                    writer.commit_document(document.key, document.size_bytes, 0, 0, f'skipped: {reason}',
                                           collection=document.collection)
                else:
                    chosen = spread_page_numbers(count, selection.max_pages_per_document)
                    summary.pages_left_out += count - len(chosen)
                    readable.append((document, chosen, sizes))
        _warn_if_space_is_short(writer.segment_folder, sum(len(chosen) for _, chosen, _ in readable), settings)
        with tqdm(total=sum(len(chosen) for _, chosen, _ in readable), desc='rasterize', unit='page',
                  disable=not progress) as bar:
            _write_in_order(readable, writer, settings, selection, pool, summary, bar)
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            logger.info('rasterizing stopped: ending the worker processes; the documents committed so far stay '
                        'and a re-run packs only the others')
        pool.terminate()  # what the workers are doing would be thrown away: end them now
        raise
    pool.close()
    for name, counts in summary.by_collection.items():
        new = counts.documents_found - counts.documents_already_done
        if new and not counts.documents_packed:
            logger.warning('collection %s: none of its %d new documents gave a usable page', name, new)
    return summary


# Stored bytes per uncompressed byte of typeset pages (mostly white paper): gzip level 1 about 0.1, measured on
# 200 pages at 256x256 RGB (3.6 of 37.5 MiB); lzf about 0.14. Scans compress less: a generous factor.
_STORED_SHARE = {'gzip': 0.3, 'lzf': 0.4, 'none': 1.0}


def _warn_if_space_is_short(folder, page_count, settings):
    """One warning before rendering when the pages will not fit on the disk (the merge needs them twice)."""
    per_page = (sum(size * size for size in sizes_between(4, settings.output_size)) * settings.channels
                * _STORED_SHARE[settings.compression])
    needed = 2 * page_count * per_page
    probe = folder
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    free = shutil.disk_usage(probe).free
    if free < needed:
        logger.warning('%d pages need about %.0f MiB on the disk of %s (the page file is written twice while its parts '
                       'are merged), and %.0f MiB are free: the run will stop when the disk is full; free some space '
                       'first', page_count, needed / 2 ** 20, folder, free / 2 ** 20)


def _write_in_order(readable, writer, settings, selection, pool, summary, bar):
    """Append each chunk's kept pages as it comes back; commit a document after its last chunk."""
    sizes_bytes = {document.done_key: document.size_bytes for document, _, _ in readable}
    calls = ((task,) for document, chosen, sizes in readable for task in document_chunks(document, chosen, sizes, settings))
    written, skipped, dropped = 0, 0, 0
    for (task,), result in pool.in_order(render_chunk, calls, _crashed_chunk):
        if task.first_of_document:
            written, skipped, dropped = 0, 0, 0
        kept, blank, repeated = kept_positions(result.digests, result.blank, writer.page_digests, selection)
        summary.pages_blank += blank
        summary.pages_duplicate += repeated
        writer.append_pages(_select(result.levels, kept), [(task.identifier, task.key, result.page_numbers[position])
                                                           for position in kept],
                            compressed=result.compressed, digests=[result.digests[position] for position in kept],
                            collection=task.collection)
        for number, reason in result.skipped:
            logger.warning('skipping page %d of %s: %s', number, task.path, reason)
            summary.pages_skipped[_reason_category(reason)] += 1
        written += len(kept)
        skipped += len(result.skipped)
        dropped += len(result.page_numbers) - len(kept)
        summary.pages_written += len(kept)
        counts = summary.by_collection[task.collection]
        counts.pages_written += len(kept)
        bar.update(len(task.page_numbers))
        if task.last_of_document:
            if written:
                status = 'packed'
                summary.documents_packed += 1
                counts.documents_packed += 1
            else:
                reason = 'every page was blank or a duplicate' if dropped else 'no page could be rendered'
                status = f'skipped: {reason}'
                summary.documents_skipped[reason] += 1
                counts.documents_skipped += 1
            writer.commit_document(task.key, sizes_bytes[(task.collection, task.key)], written, skipped, status,
                                   collection=task.collection)
            logger.debug('packed %s: %d pages, %d skipped, %d dropped', task.key, written, skipped, dropped)


def _select(levels, positions):
    """The pages at `positions` of every level (arrays, or lists of compressed chunks)."""
    if not positions:
        return {}
    return {size: pages[positions] if hasattr(pages, 'shape') else [pages[position] for position in positions]
            for size, pages in levels.items()}
