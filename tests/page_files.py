"""Page files for tests, written by the real PageWriter exactly as the load_data stage writes them."""

import h5py
import numpy as np

from deepzine.data.squaring import build_pyramid
from deepzine.data.writer import PageWriter


def write_page_hdf5(path, pages, collections=None):
    """A finished DeepZine page file holding `pages` (uint8 [N, S, S, C]) at every size 4..S, page i at index i.

    collections: None for one collection (one document); else the collection of
    every page, either as N names (['manuals', 'manuals', 'cards', ...]) or as
    (name, page count) pairs in page order ([('manuals', 6), ('cards', 2)]). The
    collections are numbered in the order their names first appear; each run
    of pages of one collection is a document of it (synthetic.pdf, then
    synthetic-2.pdf, ...).
    """
    schema = {'output_size': pages.shape[1], 'channels': pages.shape[3], 'square_mode': 'stretch', 'pdf_dpi': 72,
              'pdf_conversion_program': 'pypdfium2'}
    names = _page_collections(collections, len(pages))
    order = list(dict.fromkeys(names))
    entries = ([{'name': name, 'data_source': 'pdf_directory', 'source': name} for name in order]
               if collections else None)
    writer = PageWriter(str(path), schema, attributes={}, collections=entries)
    documents = {}
    for start, stop in _runs(names):
        name = names[start] if collections else None
        documents[name] = documents.get(name, 0) + 1
        file = 'synthetic.pdf' if documents[name] == 1 else f'synthetic-{documents[name]}.pdf'
        writer.append_pages(build_pyramid(pages[start:stop]),
                            [('synthetic', file, number + 1) for number in range(stop - start)], collection=name)
        writer.commit_document(file, size_bytes=0, pages_written=stop - start, pages_skipped=0, status='packed',
                               collection=name)
    return writer.finish()


def _runs(names):
    """(start, stop) of each run of equal names."""
    starts = [index for index in range(len(names)) if index == 0 or names[index] != names[index - 1]]
    return list(zip(starts, starts[1:] + [len(names)]))


def _page_collections(collections, page_count):
    """The collection name of every page (None for each when there is one collection)."""
    if collections is None:
        return [None] * page_count
    collections = list(collections)
    if collections and isinstance(collections[0], (tuple, list)):
        collections = [name for name, count in collections for _ in range(count)]
    if len(collections) != page_count:
        raise ValueError(f'{len(collections)} collections given for {page_count} pages')
    return [str(name) for name in collections]


def overwrite_chunk(path, dataset_name, chunk_index, seed=0):
    """Overwrite exactly the stored bytes of one chunk with random bytes, as a disk fault would."""
    with h5py.File(path, 'r') as handle:
        info = handle[dataset_name].id.get_chunk_info(chunk_index)
    with open(path, 'r+b') as file:
        file.seek(info.byte_offset)
        file.write(np.random.default_rng(seed).integers(0, 256, info.size, dtype=np.uint8).tobytes())
