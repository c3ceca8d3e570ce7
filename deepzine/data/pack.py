"""Documents -> square pages at every size -> the page file, in parallel worker processes, streamed in order.

Work is cut into chunks of at most 16 pages of one document: workers count
pages first (cheap), then render, square and build the pyramid per chunk, and
the main process writes chunks in document order as they come back. At most
a few chunks are in flight, so memory stays flat however large the
collection, and a document's pages are contiguous in the file, which lets the
writer commit it as one unit (see `deepzine.data.writer`). Workers also
gzip-compress the pages, so the one writing process never becomes the
bottleneck.

Processes, not threads: PDFium is not thread-safe, and Python-level squaring
would serialise on the GIL. 'spawn' because forking a process that may
already hold TensorFlow or HTTP threads can deadlock.

Stopping (Ctrl-C, SIGTERM: a KeyboardInterrupt in the main process) ends the
workers at once instead of letting them finish the queue: the main process
terminates them (SIGTERM kills even a worker busy inside PDFium; SIGKILL
follows if one lingers), and the writer keeps every document it committed.
A terminal's Ctrl-C also reaches the workers (same process group); they do
not act on it, so they print no tracebacks and how they end stays the main
process's decision. And they end with the main process however it ends
(SIGKILL, the out-of-memory killer, a second Ctrl-C that exits at once):
an orphaned worker would otherwise finish its chunk, or hang on a bad PDF.
"""

import collections
import dataclasses
import logging
import multiprocessing
import os
import re
import signal
import threading
import time
import zlib
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from deepzine.data.rasterize import DocumentError, count_pages, render_pages

logger = logging.getLogger(__name__)

_MAX_PAGES_PER_CHUNK = 16
_MAX_CHUNK_BYTES = 64 * 2 ** 20
_LETTER_INCHES = (8.5, 11.0)
_TERMINATE_GRACE_SEC = 1.0  # how long a terminated worker may take to die before it is killed


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    program: str  # pdfium | pdftoppm | ghostscript (ignored for image files)
    dpi: int
    output_size: int
    square_mode: str
    channels: int
    page_image_directory: str = None  # keep each rendered page as PNG here (keep_page_images)
    compression: str = 'gzip'  # the page file's; gzip chunks are compressed here, in the workers


@dataclasses.dataclass(frozen=True)
class ChunkTask:
    path: str
    key: str
    identifier: str
    first_page: int
    last_page: int
    settings: RenderSettings


@dataclasses.dataclass
class ChunkResult:
    levels: dict  # {size: uint8 [n, size, size, channels]} or, if compressed, {size: [n HDF5 gzip chunks]}
    page_numbers: list
    skipped: list  # [(page_number, reason)]
    compressed: bool = False


@dataclasses.dataclass
class PackSummary:
    documents_found: int = 0
    documents_already_done: int = 0
    documents_packed: int = 0
    pages_written: int = 0
    documents_skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    pages_skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def lines(self):
        lines = [f'documents: {self.documents_found} found, {self.documents_already_done} already in the file, '
                 f'{self.documents_packed} packed now, {sum(self.documents_skipped.values())} skipped',
                 f'pages: {self.pages_written} written now, {sum(self.pages_skipped.values())} skipped']
        lines += [f'  documents skipped: {count} {reason}' for reason, count in self.documents_skipped.most_common()]
        lines += [f'  pages skipped: {count} {reason}' for reason, count in self.pages_skipped.most_common()]
        return lines


def pages_per_chunk(settings):
    """Pages per task so that neither the rendered pages nor the pyramid of a chunk passes ~64 MiB."""
    rendered = _LETTER_INCHES[0] * _LETTER_INCHES[1] * settings.dpi ** 2 * settings.channels
    stored = settings.output_size ** 2 * settings.channels * 4 / 3
    return int(max(1, min(_MAX_PAGES_PER_CHUNK, _MAX_CHUNK_BYTES // max(rendered, stored))))


def _reason_category(reason):
    """'page 7 cannot be rendered by PDFium (bad xref)' -> 'cannot be rendered by PDFium', for counting."""
    reason = re.sub(r'^page \d+:?\s*', '', reason)
    return re.sub(r'\s*\(.*\)\s*$', '', reason) or reason


# --- worker-side functions (must be top-level to be sent to spawned processes) ---------------------------

def _start_worker():
    """Worker initializer: Ctrl-C does nothing here, and the worker ends with the main process (module docstring).

    A handler that returns, not SIG_IGN: an ignored signal stays ignored in
    the programs a worker starts (pdftoppm, Ghostscript), and those should
    still stop on a terminal's Ctrl-C.
    """
    signal.signal(signal.SIGINT, _do_nothing)
    threading.Thread(target=_exit_with_parent, name='exit-with-parent', daemon=True).start()


def _do_nothing(signal_number, frame):
    pass


def _exit_with_parent():
    # The parent's sentinel (a pipe) becomes readable when the parent is gone, whatever ended it; this thread
    # runs even while the main thread is inside PDFium, which releases the GIL.
    multiprocessing.parent_process().join()
    os._exit(1)


def count_document(path, program):
    """(page count, None) or (0, reason)."""
    try:
        return count_pages(path, program), None
    except DocumentError as error:
        return 0, str(error)
    except Exception as error:  # noqa: BLE001 - a surprising failure of one document must not stop the run
        return 0, f'cannot be read ({type(error).__name__}: {error})'


def _save_page_image(page, task, page_number):
    stem = os.path.splitext(task.key)[0]
    target = os.path.join(task.settings.page_image_directory, f'{stem}-{page_number:04d}.png')
    os.makedirs(os.path.dirname(target), exist_ok=True)
    temporary = target + '.partial'
    page.save(temporary, format='PNG')
    os.replace(temporary, target)


def render_chunk(task):
    """Render, square and downsample one chunk; a bad page is listed in `skipped`, never raised."""
    import numpy as np

    from deepzine.data.squaring import build_pyramid, square_page
    settings = task.settings
    squares, page_numbers, skipped = [], [], []
    try:
        for page_number, page in render_pages(task.path, settings.program, task.first_page, task.last_page,
                                              settings.dpi, settings.channels):
            if isinstance(page, DocumentError):
                skipped.append((page_number, str(page)))
                continue
            try:
                if settings.page_image_directory:
                    _save_page_image(page, task, page_number)
                squares.append(square_page(page, settings.output_size, settings.square_mode, settings.channels))
                page_numbers.append(page_number)
            except (OSError, ValueError, MemoryError) as error:
                skipped.append((page_number, f'cannot be squared ({error})'))
    except Exception as error:  # noqa: BLE001 - the whole rest of the range is lost, the run goes on
        reason = str(error) if isinstance(error, DocumentError) else f'{type(error).__name__}: {error}'
        done = set(page_numbers) | {number for number, _ in skipped}
        skipped += [(number, reason) for number in range(task.first_page, task.last_page + 1) if number not in done]
    levels = build_pyramid(np.stack(squares)) if squares else {}
    if settings.compression == 'gzip':
        # HDF5's deflate filter stores plain zlib streams: compressing here, one chunk (page) at a time, spreads
        # the cost over the workers instead of serialising it in the one process that writes (2x overall here).
        levels = {size: [zlib.compress(page.tobytes(), 1) for page in pages] for size, pages in levels.items()}
        return ChunkResult(levels, page_numbers, skipped, compressed=True)
    return ChunkResult(levels, page_numbers, skipped)


# --- main-process side ----------------------------------------------------------------------------------

class _InlineExecutor:
    """The executor interface, run in this process: conversion_workers: 1 (also easiest to debug)."""

    def submit(self, function, *args):
        future = Future()
        try:
            future.set_result(function(*args))
        except Exception as error:  # noqa: BLE001 - delivered through the future like a process pool would
            future.set_exception(error)
        return future

    def map(self, function, *iterables, chunksize=1):
        return map(function, *iterables)

    def shutdown(self, wait=True, cancel_futures=False):
        pass


class _Workers:
    """A process pool that can be rebuilt when a worker dies (e.g. PDFium crashing on a malicious PDF)."""

    def __init__(self, count):
        self.count = count
        self.lookahead = 2 * count + 1  # enough queued work to keep every worker busy, little memory held
        self.executor = self._new()

    def _new(self):
        if self.count == 1:
            return _InlineExecutor()
        executor = ProcessPoolExecutor(self.count, mp_context=multiprocessing.get_context('spawn'),
                                       initializer=_start_worker)
        try:
            executor.submit(os.getpid).result()
        except BrokenProcessPool:
            raise RuntimeError('conversion worker processes could not start; when load_data is called from your own '
                               "script, put the call under if __name__ == '__main__': (spawned workers import it), "
                               'or set conversion_workers: 1') from None
        except BaseException:
            _terminate(executor)
            raise
        return executor

    def restart(self):
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._new()

    def close(self):
        """After the last result: the idle workers exit."""
        try:
            self.executor.shutdown(wait=True, cancel_futures=True)
        except BaseException:
            self.terminate()
            raise

    def terminate(self):
        """Stop now: queued calls are dropped and the workers ended, whatever they are doing."""
        if not isinstance(self.executor, _InlineExecutor):
            _terminate(self.executor)

    def in_order(self, function, calls, crashed):
        """Yield (arguments, result) for each call, in order, with a bounded queue ahead.

        If a worker dies, the pool is rebuilt and the call retried alone once; if
        it kills a worker again, `crashed(*arguments)` stands in for its result.
        """
        pending = collections.deque()
        calls = iter(calls)
        while True:
            while len(pending) < self.lookahead:
                arguments = next(calls, None)
                if arguments is None:
                    break
                pending.append((arguments, self.executor.submit(function, *arguments)))
            if not pending:
                return
            arguments, future = pending.popleft()
            try:
                result = future.result()
            except BrokenProcessPool:
                self.restart()
                try:
                    result = self.executor.submit(function, *arguments).result()
                except BrokenProcessPool:
                    self.restart()
                    result = crashed(*arguments)
                # the other queued calls died with the old pool: queue them again
                pending = collections.deque((queued, self.executor.submit(function, *queued)) for queued, _ in pending)
            yield arguments, result


def _terminate(executor):
    """End a process pool's workers now (Python 3.14's terminate_workers(), for the versions before it)."""
    processes = list((executor._processes or {}).values())  # private, but the pool offers no other handle
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + _TERMINATE_GRACE_SEC
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def _chunks(document, page_count, settings):
    step = pages_per_chunk(settings)
    for first_page in range(1, page_count + 1, step):
        yield ChunkTask(document.path, document.key, document.identifier, first_page,
                        min(page_count, first_page + step - 1), settings)


def _crashed_count(path, program):
    return 0, 'crashed the rasterizer'


def _crashed_chunk(task):
    return ChunkResult({}, [], [(number, 'crashed the rasterizer') for number in range(task.first_page, task.last_page + 1)])


def pack_documents(documents, writer, settings, workers=1, progress=True):
    """Render and write every document not yet finished in `writer`; returns a PackSummary."""
    from tqdm import tqdm
    summary = PackSummary(documents_found=len(documents))
    for document in documents:
        done_size = writer.finished_documents.get(document.key)
        if done_size is not None and done_size != document.size_bytes:
            logger.warning('%s changed since it was packed; its old pages stay (overwrite: true rebuilds)', document.path)
    todo = [document for document in documents if document.key not in writer.finished_documents]
    summary.documents_already_done = len(documents) - len(todo)
    if not todo:
        return summary
    logger.info('packing %d documents (%d already in the page file) with %d worker process%s', len(todo),
                summary.documents_already_done, workers, '' if workers == 1 else 'es')
    pool = _Workers(workers)
    try:
        readable = []
        calls = [(document.path, settings.program) for document in todo]
        with tqdm(total=len(todo), desc='count pages', unit='doc', disable=not progress) as bar:
            for document, (_, (count, reason)) in zip(todo, pool.in_order(count_document, calls, _crashed_count)):
                bar.update()
                if reason:
                    logger.warning('skipping %s: %s', document.path, reason)
                    summary.documents_skipped[_reason_category(reason)] += 1
                    writer.commit_document(document.key, document.size_bytes, 0, 0, f'skipped: {reason}')
                else:
                    readable.append((document, count))
        with tqdm(total=sum(count for _, count in readable), desc='rasterize', unit='page', disable=not progress) as bar:
            _write_in_order(readable, writer, settings, pool, summary, bar)
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            logger.info('rasterizing stopped: ending the worker processes; the documents committed so far stay '
                        'and a re-run packs only the others')
        pool.terminate()  # what the workers are doing would be thrown away: end them now
        raise
    pool.close()
    return summary


def _write_in_order(readable, writer, settings, pool, summary, bar):
    """Append each chunk as it comes back; commit a document after its last chunk."""
    page_counts = {document.key: count for document, count in readable}
    sizes_bytes = {document.key: document.size_bytes for document, _ in readable}
    calls = ((task,) for document, count in readable for task in _chunks(document, count, settings))
    written, skipped = 0, 0
    for (task,), result in pool.in_order(render_chunk, calls, _crashed_chunk):
        if task.first_page == 1:
            written, skipped = 0, 0
        writer.append_pages(result.levels, [(task.identifier, task.key, number) for number in result.page_numbers],
                            compressed=result.compressed)
        for number, reason in result.skipped:
            logger.warning('skipping page %d of %s: %s', number, task.path, reason)
            summary.pages_skipped[_reason_category(reason)] += 1
        written += len(result.page_numbers)
        skipped += len(result.skipped)
        summary.pages_written += len(result.page_numbers)
        bar.update(task.last_page - task.first_page + 1)
        if task.last_page == page_counts[task.key]:
            status = 'packed' if written else 'skipped: no page could be rendered'
            writer.commit_document(task.key, sizes_bytes[task.key], written, skipped, status)
            if written:
                summary.documents_packed += 1
            else:
                summary.documents_skipped['no page could be rendered'] += 1
            logger.debug('packed %s: %d pages, %d skipped', task.key, written, skipped)
