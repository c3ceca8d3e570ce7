"""The page file as the writer lays it out: its datasets and columns, and what a file or a segment says it holds.

A segment (deepzine.data.writer) has the same layout as a finished page file,
growing along its first axis; see deepzine.data.store for what each dataset
and attribute means. h5py is imported where it is used: `--dry-run` imports
this module.
"""

import hashlib
import logging

import numpy as np

from deepzine.data.page_collections import COLLECTION_COLUMN, IMAGE_FILES, collection_entries_of
from deepzine.data.store import FORMAT_NAME, data_name
from deepzine.parameters import ConfigError

logger = logging.getLogger(__name__)

PROVENANCE_TYPES = {'identifier': 'str', 'file': 'str', 'page_number': 'int32', 'sha1': 'S40',
                    COLLECTION_COLUMN: 'int16'}
DOCUMENT_TYPES = {'file': 'str', COLLECTION_COLUMN: 'int16', 'size_bytes': 'int64', 'first_page_index': 'int64',
                  'pages_written': 'int32', 'pages_skipped': 'int32', 'status': 'str'}
ALWAYS_MATCHING = ('output_size', 'channels', 'square_mode')  # the schema keys every page of a file shares
PDF_SETTINGS = ('pdf_dpi', 'pdf_conversion_program')  # shared by the pages made from PDFs
GZIP_LEVEL = 1  # hdf5_compression gzip: fast to write, and the workers' zlib streams must use the same level
_COMPRESSION = {'gzip': {'compression': 'gzip', 'compression_opts': GZIP_LEVEL}, 'lzf': {'compression': 'lzf'}, 'none': {}}
_DIGEST_BLOCK_PAGES = 256


def attribute_value(value):
    """An HDF5 attribute value (bytes, numpy scalar) as a plain Python value."""
    value = value.decode() if isinstance(value, bytes) else value
    return value.item() if isinstance(value, np.generic) else value


def makes_pdf_pages(schema):
    """True for the schema of pages rendered from PDFs (not from page images)."""
    return attribute_value(schema.get('pdf_conversion_program')) not in (IMAGE_FILES, None)


def schema_differences(attributes, schema):
    """['square_mode: file has 'pad', config gives 'stretch'', ...] for every schema key that differs.

    schema: the attributes that fix what a stored page looks like
    (deepzine.data.pack.RenderSettings.schema()); new pages may only join a
    file whose values match. The size, channels and squaring always must;
    the rasterizer and the dpi bound only between pages made from PDFs, so
    a folder of page images can join a file of PDF pages and the other way
    round (the file's pdf_* attributes are those of its PDF pages).
    """
    keys = ALWAYS_MATCHING + (PDF_SETTINGS if makes_pdf_pages(attributes) and makes_pdf_pages(schema) else ())
    return [f'{key}: file has {attribute_value(attributes.get(key))!r}, config gives {schema[key]!r}'
            for key in keys if attribute_value(attributes.get(key)) != schema[key]]


def plain_attributes(handle):
    return {name: attribute_value(value) for name, value in handle.attrs.items()}


def collection_entries_in(handle):
    """The collections an open page file or segment records, in number order (deepzine.data.page_collections)."""
    return collection_entries_of(plain_attributes(handle))


def collection_column(group, rows):
    """The collection numbers of an open file's `pages` or `documents` group (zeros where it has none: one
    collection)."""
    column = group.get(COLLECTION_COLUMN)
    return column[:].astype(np.int64) if column is not None else np.zeros(rows, np.int64)


def finished_documents(handle, names=None):
    """{(collection name, relative file): size in bytes} of the documents recorded in an open page file or segment
    (names: its collections' names, in number order, when known; else read from it)."""
    group = handle['documents']
    names = names or [entry['name'] for entry in collection_entries_in(handle)]
    files = group['file'].asstr()[:]
    numbers = collection_column(group, len(files))
    return {(names[number], str(file)): int(size) for file, number, size in zip(files, numbers, group['size_bytes'][:])}


def stored_page_digests(handle, output_size):
    """SHA-1 digests (20 bytes) of every page of an open page file or segment, in order.

    Read from `pages/sha1`; a file written before that column existed is hashed
    from its pixels (about 1 ms per 256 px page).
    """
    column = handle['pages'].get('sha1')
    if column is not None:
        return [bytes.fromhex(value.decode('ascii')) for value in column[:]]
    dataset = handle[data_name(output_size)]
    logger.info('hashing the %d pages of %s (written before page hashes were stored; once)', dataset.shape[0],
                handle.filename)
    digests = []
    for start in range(0, dataset.shape[0], _DIGEST_BLOCK_PAGES):
        digests += [hashlib.sha1(page.tobytes()).digest() for page in dataset[start:start + _DIGEST_BLOCK_PAGES]]
    return digests


def read_finished_documents(path, schema):
    """Finished documents of an existing, complete page file whose schema matches; ConfigError if it does not."""
    return _read_finished_file(path, schema, finished_documents)


def read_collection_page_counts(path, schema):
    """[(collection entry, pages)] of an existing, complete page file whose schema matches, in number order."""
    def entries_and_counts(handle):
        entries = collection_entries_in(handle)
        numbers = collection_column(handle['pages'], handle[data_name(schema['output_size'])].shape[0])
        return list(zip(entries, np.bincount(numbers, minlength=len(entries)).tolist()))
    return _read_finished_file(path, schema, entries_and_counts)


def _read_finished_file(path, schema, read):
    import h5py
    try:
        with h5py.File(path, 'r') as handle:
            if handle.attrs.get('format') != FORMAT_NAME or not handle.attrs.get('complete', False):
                raise ConfigError(f'data_hdf5={path}: exists but is not a finished DeepZine page file; '
                                  'set overwrite: true to replace it')
            differences = schema_differences(handle.attrs, schema)
            if differences:
                raise ConfigError(f'data_hdf5={path} was built with other settings ({"; ".join(differences)}); '
                                  'set overwrite: true to rebuild it, or point data_hdf5 elsewhere')
            return read(handle)
    except OSError as error:
        raise ConfigError(f'data_hdf5={path}: cannot be read ({error}); set overwrite: true to replace it') from None


def create_layout(handle, sizes, channels, compression, page_count=0, document_count=0):
    """The page-file datasets; resizable along the first axis while page_count is 0 (segments grow)."""
    import h5py
    string = h5py.string_dtype()
    growing = page_count == 0
    for size in sizes:
        shape = (size, size, channels)
        handle.create_dataset(data_name(size), shape=(page_count, *shape), maxshape=(None, *shape), dtype=np.uint8,
                              chunks=(1, *shape), **_COMPRESSION[compression])
    for group_name, columns, rows in (('pages', PROVENANCE_TYPES, page_count), ('documents', DOCUMENT_TYPES, document_count)):
        group = handle.create_group(group_name)
        for name, kind in columns.items():
            group.create_dataset(name, shape=(0 if growing else rows,), maxshape=(None,),
                                 dtype=string if kind == 'str' else kind, chunks=(4096,), compression='gzip')
