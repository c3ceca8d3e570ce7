"""The page file as the writer lays it out: its datasets and columns, and what a file or a segment says it holds.

A segment (deepzine.data.writer) has the same layout as a finished page file,
growing along its first axis; see deepzine.data.store for what each dataset
and attribute means. h5py is imported where it is used: `--dry-run` imports
this module.
"""

import hashlib
import logging

import numpy as np

from deepzine.data.store import FORMAT_NAME, data_name
from deepzine.parameters import ConfigError

logger = logging.getLogger(__name__)

PROVENANCE_TYPES = {'identifier': 'str', 'file': 'str', 'page_number': 'int32', 'sha1': 'S40'}
DOCUMENT_TYPES = {'file': 'str', 'size_bytes': 'int64', 'first_page_index': 'int64',
                  'pages_written': 'int32', 'pages_skipped': 'int32', 'status': 'str'}
GZIP_LEVEL = 1  # hdf5_compression gzip: fast to write, and the workers' zlib streams must use the same level
_COMPRESSION = {'gzip': {'compression': 'gzip', 'compression_opts': GZIP_LEVEL}, 'lzf': {'compression': 'lzf'}, 'none': {}}
_DIGEST_BLOCK_PAGES = 256


def attribute_value(value):
    """An HDF5 attribute value (bytes, numpy scalar) as a plain Python value."""
    value = value.decode() if isinstance(value, bytes) else value
    return value.item() if isinstance(value, np.generic) else value


def schema_differences(attributes, schema):
    """['square_mode: file has 'pad', config gives 'stretch'', ...] for every schema key that differs.

    schema: the attributes that fix what a stored page looks like
    (deepzine.data.pack.RenderSettings.schema()); new pages may only join a
    file whose values match.
    """
    return [f'{key}: file has {attribute_value(attributes.get(key))!r}, config gives {value!r}'
            for key, value in schema.items() if attribute_value(attributes.get(key)) != value]


def finished_documents(handle):
    """{relative file: size in bytes} of the documents recorded in an open page file or segment."""
    group = handle['documents']
    return dict(zip((str(name) for name in group['file'].asstr()[:]), (int(size) for size in group['size_bytes'][:])))


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
            return finished_documents(handle)
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
