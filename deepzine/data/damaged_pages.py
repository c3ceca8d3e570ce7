"""Pages of a finished page file that cannot be read: each warned about once, skipped, counted; too many stop reading.

A disk or copy fault that overwrites part of a page file leaves the HDF5 file
readable except for the chunks it hit: h5py raises for those pages only. One
such page must not end a multi-day run, so `PageStore.read` puts the next
readable page in its place (batch shapes never change, and the choice is
deterministic) and notes it here. Past a share of the pages read, the file is
too damaged to train on faithfully, and reading stops with `DamagedPageFile`.

The threshold: more than MIN_UNREADABLE_PAGES pages AND more than
MAX_UNREADABLE_SHARE of the pages read (counted up to the file's page count,
which is what a shuffled epoch reads). One overwritten 4 KiB block ruins at
most one chunk of a 256x256 page (tens of KB each) but can ruin a few dozen of
the tiny 4x4 and 8x8 chunks, so a floor of a handful of pages keeps one bad
block in a small file from stopping it; 1% keeps the rest of the data
faithful (a skipped page is replaced by its neighbour in the file, so that
neighbour is seen twice as often).

Records are per file (by path, reset when load_data rebuilds the file) and
shared by every PageStore of the process: page_dataset's readers, the
trainer's sample grid and evaluation read the same file.
"""

import logging
import os
import threading

from deepzine.errors import RunFailed

logger = logging.getLogger(__name__)

MAX_UNREADABLE_SHARE = 0.01
MIN_UNREADABLE_PAGES = 10


class DamagedPageFile(RunFailed):
    """Too many pages of a page file are unreadable: rebuild it (printed as one line by the CLI)."""


class FileDamage:
    """The unreadable pages of one page file, by size (a damaged chunk of data_256 says nothing about data_8)."""

    def __init__(self, path, identity, page_count):
        self.path, self.identity, self.page_count = path, identity, page_count
        self.stopped_because = None  # the DamagedPageFile message that stopped reading, raised by every later read
        self._unreadable = {}  # size -> set of page indices
        self._pages_read = {}  # size -> pages whose reading was attempted
        self._lock = threading.Lock()

    def is_unreadable(self, size, index):
        return index in self._unreadable.get(size, ())

    def count_read(self, size):
        with self._lock:
            self._pages_read[size] = self._pages_read.get(size, 0) + 1

    @property
    def unreadable_page_count(self):
        """Distinct (page, size) pairs found unreadable so far."""
        with self._lock:
            return sum(len(indices) for indices in self._unreadable.values())

    def raise_if_stopped(self):
        if self.stopped_because is not None:
            raise DamagedPageFile(self.stopped_because)  # a new one each time: re-raising one would grow its traceback

    def note_unreadable(self, size, index, error, describe_page):
        """Warn once about page `index` at `size`; DamagedPageFile past the threshold. describe_page(index) -> str."""
        with self._lock:
            unreadable = self._unreadable.setdefault(size, set())
            if index in unreadable:
                return
            unreadable.add(index)
            count, pages_read = len(unreadable), min(self._pages_read.get(size, 0), self.page_count)
        logger.warning('data_hdf5=%s: page %d (%s) is unreadable at %dx%d (%s): skipped, the next readable page '
                       'takes its place; %d unreadable so far', self.path, index, _safe(describe_page, index), size,
                       size, _one_line(error), count)
        if count > max(MIN_UNREADABLE_PAGES, MAX_UNREADABLE_SHARE * pages_read) or count == self.page_count:
            self.stopped_because = (
                f'data_hdf5={self.path}: damaged, {count} of the {pages_read} pages read at {size}x{size} are '
                f'unreadable (tolerated: {MIN_UNREADABLE_PAGES}, or {MAX_UNREADABLE_SHARE:.0%} of the pages read); '
                'rebuild it with load_data (overwrite: true)')
            self.raise_if_stopped()


def _safe(describe_page, index):
    """The page's provenance, or a placeholder: provenance sits in the same damaged file, and warning must not fail."""
    try:
        return describe_page(index)
    except Exception:  # noqa: BLE001 (whatever a damaged file makes h5py raise)
        return 'provenance unreadable'


def _one_line(error):
    text = ' '.join(str(error).split()) or type(error).__name__
    return text if len(text) <= 160 else text[:157] + '...'


_RECORDS = {}
_RECORDS_LOCK = threading.Lock()


def file_identity(path):
    """(inode, mtime): a file rebuilt by load_data under the same name is another file."""
    status = os.stat(path)
    return status.st_ino, status.st_mtime_ns


def record_for(path, identity, page_count):
    """The FileDamage of this file, created on first use (a rebuilt file starts afresh)."""
    with _RECORDS_LOCK:
        record = _RECORDS.get(path)
        if record is None or record.identity != identity:
            record = _RECORDS[path] = FileDamage(path, identity, page_count)
        return record


def _current_record(path):
    path = os.path.abspath(path)
    with _RECORDS_LOCK:
        return _RECORDS.get(path)


def unreadable_page_count(path):
    """How many pages of the page file at `path` this process has skipped as unreadable (0 if none or never read)."""
    record = _current_record(path)
    return record.unreadable_page_count if record else 0


def raise_if_damaged(path):
    """Raise the DamagedPageFile that stopped reading `path` in this process, if one did.

    Inside page_dataset the error reaches the training loop as a TensorFlow
    OpError (it crosses tf.numpy_function); call this on catching one to turn
    it back into the one-line DamagedPageFile.
    """
    record = _current_record(path)
    if record is not None:
        record.raise_if_stopped()
