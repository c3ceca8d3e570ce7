"""The HDF5 page file: its schema, `PageStore` (a checked read-only view) and `page_dataset` (the training input).

Layout (format version 1), written by `deepzine.data.writer`:
- `data_<size>` for size in 4, 8, ..., output size: uint8 [N, size, size, channels],
  one page per chunk (a training batch touches random pages), gzip level 1 by default.
  The original DeepZine stored float32 at every size: 4x the bytes before compression.
- `pages/identifier`, `pages/file`, `pages/page_number`: where page i came from;
  `pages/sha1`: the hex SHA-1 of the page at the output size (how duplicates are
  found across runs; absent in older files, which the writer hashes when it adds to them).
- `documents/file, collection, size_bytes, first_page_index, pages_written, pages_skipped,
  status`: one row per document processed ('packed', or 'skipped: <why>'), which is how an
  incremental run knows what is already done. A document is its (collection, file):
  two folders' `manual.pdf` are two documents.
- `pages/collection` (int16): the number of the collection each page came from, an index
  into the `collections` attribute (JSON: a list in number order of {"name", "data_source",
  "source" (the folder or the archive collection), "pdf_conversion_program", "pdf_dpi"
  (what it was first made with), "pages"}; see deepzine.data.page_collections). A file
  without them (written before collections existed) holds one collection, named after
  the source it records (LEGACY_COLLECTION_NAME when it records none).
- attributes: format ('deepzine-pages'), format_version, complete, channels, sizes,
  output_size, square_mode, pdf_dpi (the upper bound on the rendering dpi; 0 for none, each
  page's longer side then at 2 x output_size, and for image files), pdf_conversion_program
  (these two: the settings of the file's pages made from PDFs; 'image files' and 0 when it
  holds none), hdf5_compression, collections, data_source and source_directory (the
  latest run's; source_directory only when it read one folder), created_utc, updated_utc
  and config (the latest load_data run's settings, as YAML).

Trainers and evaluators import only `PageStore`, `page_dataset` and, to report a damaged file,
`unreadable_page_count`, `raise_if_damaged` and `DamagedPageFile` (deepzine.data.damaged_pages) from here.

h5py and TensorFlow (with deepzine.data.exit_gate, which needs it) are imported
where they are used: `--dry-run` imports this module.
"""

import dataclasses
import itertools
import os
import threading

import numpy as np

from deepzine.data.damaged_pages import (DamagedPageFile, file_identity, raise_if_damaged,  # noqa: F401 (re-exported)
                                         record_for, unreadable_page_count)
from deepzine.data.page_collections import (COLLECTION_COLUMN, COLLECTIONS_ATTRIBUTE,  # noqa: F401 (re-exported)
                                            LEGACY_COLLECTION_NAME, collection_names_of)
from deepzine.files import SEGMENT_FOLDER_SUFFIX
from deepzine.parameters import ConfigError, where_relative_paths_start

FORMAT_NAME = 'deepzine-pages'
FORMAT_VERSION = 1
REOPEN_EVERY_PAGES = 10000  # pages read between reopenings of the file (see PageStore.read)
PROVENANCE_COLUMNS = ('identifier', 'file', 'page_number')


def data_name(size):
    return f'data_{size}'


def segment_folder(page_file):
    """<data_hdf5>.partial: where an unfinished load_data keeps its committed segments for the next run to resume."""
    return os.fspath(page_file) + SEGMENT_FOLDER_SUFFIX


def _plain(value):
    """HDF5 attribute values (numpy scalars, arrays, bytes) as plain Python values."""
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    if isinstance(value, np.ndarray):
        return [_plain(element) for element in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _looks_like_original_deepzine(handle):
    """The 2018 DeepZine wrote PyTables files: float32 `data_<size>` arrays and an `imagenames` array."""
    return 'imagenames' in handle or 'PYTABLES_FORMAT_VERSION' in handle.attrs


def describe_sizes(sizes):
    return f'{sizes[0]}..{sizes[-1]}' if len(sizes) > 1 else str(sizes[0])


class PageStore:
    """A finished DeepZine page file, opened read-only and checked; use as a context manager or call close()."""

    def __init__(self, path):
        import h5py
        self.path = os.path.abspath(path)
        if not os.path.isfile(self.path):
            hint = (' (an interrupted load_data left ' + os.path.basename(segment_folder(self.path))
                    + ': re-run load_data to finish it)') if os.path.exists(segment_folder(self.path)) else ''
            raise ConfigError(f'data_hdf5={self.path}: file not found{hint}; run load_data (load_data: true) to build '
                              f'it ({where_relative_paths_start()})')
        try:
            self._file = h5py.File(self.path, 'r')
        except OSError as error:
            raise ConfigError(f'data_hdf5={self.path}: not a readable HDF5 file ({error}); rebuild it with '
                              'load_data (overwrite: true)') from None
        try:
            self._check()
        except Exception:
            self._file.close()
            raise
        self.attributes = {name: _plain(value) for name, value in self._file.attrs.items()}
        self.sizes = sorted(int(size) for size in self.attributes['sizes'])
        self.channels = int(self.attributes['channels'])
        self.page_count = int(self._file[data_name(self.sizes[-1])].shape[0])
        self.collection_names = collection_names_of(self.attributes)
        self._collection_numbers = None
        self._damage = record_for(self.path, file_identity(self.path), self.page_count)
        self._provenance_columns = None
        self._read_lock = threading.Lock()
        self._pages_since_open = 0

    def _check(self):
        handle = self._file
        if handle.attrs.get('format') != FORMAT_NAME:
            if _looks_like_original_deepzine(handle):
                raise ConfigError(f'data_hdf5={self.path}: an ORIGINAL DeepZine (PyTables, float32) file; this version '
                                  'needs its own format: rebuild it with load_data (overwrite: true)')
            raise ConfigError(f'data_hdf5={self.path}: an HDF5 file but not a DeepZine page file; '
                              'point data_hdf5 elsewhere or rebuild it with load_data (overwrite: true)')
        version = int(handle.attrs.get('format_version', 0))
        if version > FORMAT_VERSION:
            raise ConfigError(f'data_hdf5={self.path}: format version {version} was written by a newer DeepZine '
                              f'(this one reads up to {FORMAT_VERSION}); update DeepZine or rebuild the file')
        if not handle.attrs.get('complete', False):
            raise ConfigError(f'data_hdf5={self.path}: not finished (an interrupted load_data run); '
                              're-run load_data to complete it')
        for size in handle.attrs['sizes']:
            if data_name(int(size)) not in handle:
                raise ConfigError(f'data_hdf5={self.path}: damaged, {data_name(int(size))} is missing; '
                                  'rebuild it with load_data (overwrite: true)')

    def require_size(self, size):
        """ConfigError unless pages of `size` are stored (training at 128 needs data_output_size >= 128)."""
        if size not in self.sizes:
            raise ConfigError(f'data_hdf5={self.path} holds sizes {describe_sizes(self.sizes)} but training needs '
                              f'{size}: re-run load_data with data_output_size: {max(size, self.sizes[-1])}')

    @property
    def collection_numbers(self):
        """int64 [page_count]: the collection of every page (an index into collection_names), read once."""
        if self._collection_numbers is None:
            column = self._file['pages'].get(COLLECTION_COLUMN)
            self._collection_numbers = (column[:].astype(np.int64) if column is not None
                                        else np.zeros(self.page_count, np.int64))
        return self._collection_numbers

    @property
    def collection_page_counts(self):
        return tuple(int(count) for count in np.bincount(self.collection_numbers,
                                                         minlength=len(self.collection_names)))

    @property
    def unreadable_page_count(self):
        """Pages of this file skipped as unreadable so far in this process (by any PageStore or page_dataset)."""
        return self._damage.unreadable_page_count

    def read(self, size, indices):
        """uint8 [n, size, size, channels] for the given page indices, in that order (safe from several threads).

        A page that cannot be read (a damaged chunk) is replaced by the next
        readable page after it, warned about once and counted; past a share of
        the pages read, DamagedPageFile (see deepzine.data.damaged_pages).
        """
        self.require_size(size)
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        pages = np.empty((len(indices), size, size, self.channels), dtype=np.uint8)
        with self._read_lock:  # h5py serializes its calls anyway; this also keeps the reopen below atomic
            self._damage.raise_if_stopped()
            if self._pages_since_open >= REOPEN_EVERY_PAGES:
                # HDF5 keeps state for every chunk it has read (~0.3 KB each, bench/README.md "Table 4"):
                # reopening drops it, so reading a large collection runs in constant memory.
                import h5py
                self._file.close()
                self._file, self._pages_since_open = h5py.File(self.path, 'r'), 0
            dataset = self._file[data_name(size)]
            # One ds[i] per page: h5py's fancy indexing (ds[sorted_list]) is ~40x slower here (265 ms against 7 ms per batch of 16).
            for position, index in enumerate(indices):
                pages[position] = self._read_readable_page(dataset, size, int(index))
            self._pages_since_open += len(indices)
        return pages

    def _read_readable_page(self, dataset, size, index):
        """Page `index`, or if it is unreadable the first readable one after it (wrapping around)."""
        for candidate in itertools.chain(range(index, self.page_count), range(index)):
            if self._damage.is_unreadable(size, candidate):
                continue
            self._damage.count_read(size)
            try:
                return dataset[candidate]
            except Exception as error:  # noqa: BLE001 (OSError for a bad chunk; a bad chunk index raises others)
                self._damage.note_unreadable(size, candidate, error, self._describe_page)
        raise AssertionError('unreachable: reading stops once every page is unreadable')

    def _describe_page(self, index):
        """'<document file>, page <n>' from the provenance columns, reading only that row (may raise)."""
        group = self._file['pages']
        return f"{group['file'].asstr()[index]}, page {int(group['page_number'][index])}"

    def provenance(self, indices):
        """[(identifier, file, page_number)] for the given page indices."""
        if self._provenance_columns is None:
            group = self._file['pages']
            self._provenance_columns = (group['identifier'].asstr()[:], group['file'].asstr()[:],
                                        group['page_number'][:])
        identifiers, files, page_numbers = self._provenance_columns
        return [(str(identifiers[i]), str(files[i]), int(page_numbers[i])) for i in np.asarray(indices).reshape(-1)]

    def close(self):
        if self._file:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        return f'PageStore({self.path!r}: {self.page_count} pages, sizes {describe_sizes(self.sizes)}, {self.channels} channels)'


# One open file per (process, file): tf.data calls the reader from its thread pool, and re-opening per batch
# would cost more than the read. Keyed by pid so a forked worker never uses its parent's HDF5 handle, and by
# inode and mtime so a file rebuilt by load_data in the same process is opened afresh.
_OPEN_STORES = {}
_OPEN_STORES_LOCK = threading.Lock()


def _shared_store(path, identity):
    key = (os.getpid(), path, identity)
    with _OPEN_STORES_LOCK:
        if key not in _OPEN_STORES:
            _OPEN_STORES[key] = PageStore(path)
        return _OPEN_STORES[key]


def shuffled_index_function(page_count, seed=None):
    """position -> page index: a fresh permutation of range(page_count) per epoch, computed, never stored.

    `tf.random.experimental.index_shuffle` maps a position to its place in a
    seeded permutation, so memory stays constant however many pages the
    collection holds (a shuffle buffer of every index grows with it).
    """
    import tensorflow as tf
    base_seed = int(np.random.default_rng(seed).integers(2 ** 31))

    def shuffled_index(position):
        epoch, offset = position // page_count, position % page_count
        key = tf.stack([tf.constant(base_seed, tf.int64), epoch])
        return tf.random.experimental.index_shuffle(offset, key, page_count - 1)
    return shuffled_index


def balanced_index_function(collection_numbers, collection_count, seed=None):
    """position -> page index, the collections in turn (position % collection_count), each drawn through its own
    permutation of its pages, new every time it is used up: every collection is drawn equally often, and every
    batch holds each collection's share, whatever the collections' sizes. Memory: one index per page."""
    import tensorflow as tf
    base_seed = int(np.random.default_rng(seed).integers(2 ** 31))
    counts = np.bincount(collection_numbers, minlength=collection_count)
    grouped = tf.constant(np.argsort(collection_numbers, kind='stable'), tf.int64)  # page indices, by collection
    counts_tensor = tf.constant(counts, tf.int64)
    offsets = tf.constant(np.cumsum(counts) - counts, tf.int64)

    def balanced_index(position):
        collection = position % collection_count
        draw, count = position // collection_count, tf.gather(counts_tensor, collection)
        key = tf.stack([tf.constant(base_seed, tf.int64) + collection, draw // count])
        return tf.gather(grouped, tf.gather(offsets, collection)
                         + tf.random.experimental.index_shuffle(draw % count, key, count - 1))
    return balanced_index


def page_dataset(path, size, batch_size, seed=None, repeat=True, drop_remainder=True, collection_balance=False):
    """tf.data.Dataset of (float32 [batch_size, size, size, channels] pages in [-1, 1], int32 [batch_size] collection
    numbers), reshuffled every epoch; `collection_balance`: every collection drawn equally often (else each page).

    position -> shuffled index -> batch -> read with h5py inside tf.numpy_function -> scale -> prefetch. Only
    indices flow through the pipeline, so it works unchanged under
    `strategy.experimental_distribute_dataset`.

    Iterators may live until the process exits: the reads go through
    `deepzine.data.exit_gate`, which stops them calling Python before the
    interpreter shuts down (an iterator alive at exit used to hang it).

    Unreadable pages (damaged chunks) are replaced by readable ones, so every
    batch is full (see PageStore.read). When too many are, the iterator
    raises a TensorFlow InvalidArgumentError naming the file; the training
    loop turns it back into the one-line DamagedPageFile with
    `raise_if_damaged(path)`.
    """
    import tensorflow as tf
    from deepzine.data.exit_gate import gated_numpy_function
    path = os.path.abspath(path)
    with PageStore(path) as store:
        store.require_size(size)
        page_count, channels = store.page_count, store.channels
        numbers, collection_count = store.collection_numbers, len(store.collection_names)
    identity = file_identity(path)
    numbers_tensor = tf.constant(numbers, tf.int32)
    if drop_remainder and page_count < batch_size:
        raise ConfigError(f'data_hdf5={path} holds {page_count} pages, fewer than one batch of {batch_size}: '
                          'add documents with load_data or lower the batch size')

    def read_batch(indices):
        """(pages, b'') or (zeros, the problem): the exit gate needs a reader that never raises."""
        try:
            return _shared_store(path, identity).read(size, indices), b''
        except Exception as error:  # noqa: BLE001 (reported through the graph, below)
            return np.zeros((len(indices), size, size, channels), np.uint8), str(error).encode('utf-8', 'replace')

    def unread(indices):
        return [tf.zeros([tf.size(indices), size, size, channels], tf.uint8), tf.constant(b'')]

    def to_model_range(indices):
        pages, problem = gated_numpy_function(read_batch, [indices], [tf.uint8, tf.string], lambda: unread(indices))
        with tf.control_dependencies([tf.debugging.Assert(tf.equal(problem, b''), [problem])]):
            pages = tf.identity(pages)
        pages.set_shape([batch_size if drop_remainder else None, size, size, channels])
        return tf.cast(pages, tf.float32) * (1.0 / 127.5) - 1.0, tf.gather(numbers_tensor, indices)

    dataset = tf.data.Dataset.counter() if repeat else tf.data.Dataset.range(page_count)
    order = (balanced_index_function(numbers, collection_count, seed) if collection_balance and collection_count > 1
             else shuffled_index_function(page_count, seed))
    dataset = dataset.map(order)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(to_model_range, num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)
    return dataset.prefetch(tf.data.AUTOTUNE)


@dataclasses.dataclass(frozen=True)
class PageFileFacts:
    """What a stage must know of a page file before any work: where it is, its sizes, its channels and its
    collections (names in number order, and their page counts).

    Read from the file's attributes, or promised by the load_data stage of the
    same run (page_count and collection_page_counts None: not known until it has run).
    """
    path: str
    sizes: tuple
    channels: int
    page_count: int = None
    collections: tuple = (LEGACY_COLLECTION_NAME,)
    collection_page_counts: tuple = None

    def require_size(self, size, stage):
        """ConfigError unless pages of `size` are stored (training at 128 needs data_output_size >= 128)."""
        if size not in self.sizes:
            raise ConfigError(f'data_hdf5={self.path} holds sizes {describe_sizes(self.sizes)} but {stage} needs '
                              f'{size}x{size} pages: run load_data with data_output_size: {max(size, self.sizes[-1])}')


def read_page_file_facts(path):
    """PageFileFacts of a finished DeepZine page file; ConfigError naming the file when it is missing or not one."""
    with PageStore(path) as store:
        return PageFileFacts(store.path, tuple(store.sizes), store.channels, store.page_count, store.collection_names,
                             store.collection_page_counts)
