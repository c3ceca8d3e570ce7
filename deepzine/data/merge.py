"""The end of a load_data run: the page file being added to and the committed segments, merged into one new file.

Each source (the old file, then the segments in order) keeps its pages in
their order. Collections are renumbered by name into the merged file's list
(the old file's collections, then the run's new ones); the pages and
documents of a collection the merged file does not hold (a segment of an
interrupted run that listed a collection this run does not) are left out.
Compressed chunks move as stored when both sides use the same filters (no
recompression). h5py is imported where it is used: `--dry-run` imports the
writer, which imports this module.
"""

import dataclasses

import numpy as np

from deepzine.data.page_collections import COLLECTION_COLUMN
from deepzine.data.page_file_layout import DOCUMENT_TYPES, PROVENANCE_TYPES, collection_column, create_layout
from deepzine.data.store import data_name

_BLOCK_PAGES = 256  # pages copied at once when chunks must be recompressed


@dataclasses.dataclass
class SourceFacts:
    """What the merge needs of one source besides its datasets: its collections and each page's, and page digests."""
    names: list     # its collection names, in its own number order
    numbers: list   # per page: its collection number (an index into names)
    digests: list   # per page: the SHA-1 (20 bytes) at the output size

    def renumbering(self, final_names):
        """int64 [len(names)]: each of its collection numbers in the merged file (-1: left out)."""
        return np.array([final_names.index(name) if name in final_names else -1 for name in self.names], np.int64)

    def kept(self, final_names):
        """bool [pages]: the pages that go into the merged file."""
        return self.renumbering(final_names)[np.asarray(self.numbers, np.int64)] >= 0


def page_counts(sources, final_names):
    """Pages per collection of the merged file (in final_names order), from the sources' facts."""
    counts = np.zeros(len(final_names), np.int64)
    for facts in sources.values():
        renumbered = facts.renumbering(final_names)[np.asarray(facts.numbers, np.int64)]
        counts += np.bincount(renumbered[renumbered >= 0], minlength=len(final_names))
    return counts.tolist()


def merge_into(target, sources, sizes, channels, compression, final_names):
    """Fill the open, empty HDF5 file `target` with the pages, provenance and documents of `sources` ({path:
    SourceFacts}, in order), collections renumbered into final_names; returns the pages per collection."""
    import h5py
    kept_pages = {path: facts.kept(final_names) for path, facts in sources.items()}
    kept_documents = {}
    for path, facts in sources.items():
        with h5py.File(path, 'r') as handle:
            group = handle['documents']
            numbers = collection_column(group, group['file'].shape[0])
            kept_documents[path] = facts.renumbering(final_names)[numbers] >= 0
    create_layout(target, sizes, channels, compression, sum(int(kept.sum()) for kept in kept_pages.values()),
                  sum(int(kept.sum()) for kept in kept_documents.values()))
    offset, document_offset = 0, 0
    for path, facts in sources.items():
        with h5py.File(path, 'r') as handle:
            pages, documents = kept_pages[path], kept_documents[path]
            indices = np.flatnonzero(pages)
            for size in sizes:
                _copy_pages(handle[data_name(size)], target[data_name(size)], offset, indices)
            renumbering = facts.renumbering(final_names)
            for name in PROVENANCE_TYPES:
                if name == 'sha1':
                    values = [facts.digests[index].hex().encode('ascii') for index in indices]
                elif name == COLLECTION_COLUMN:
                    values = renumbering[np.asarray(facts.numbers, np.int64)[indices]]
                else:
                    values = handle['pages'][name][:][indices]
                target['pages'][name][offset:offset + len(indices)] = values
            rows = np.flatnonzero(documents)
            group = handle['documents']
            pages_before = np.concatenate([[0], np.cumsum(pages)])  # kept pages before each page index
            for name in DOCUMENT_TYPES:
                if name == COLLECTION_COLUMN:
                    values = renumbering[collection_column(group, len(documents))][rows]
                elif name == 'first_page_index':
                    values = offset + pages_before[group[name][:][rows]]
                else:
                    values = group[name][:][rows]
                target['documents'][name][document_offset:document_offset + len(rows)] = values
            offset, document_offset = offset + len(indices), document_offset + len(rows)
    return page_counts(sources, final_names)


def _same_filters(source, target):
    return (source.compression, source.compression_opts) == (target.compression, target.compression_opts)


def _copy_pages(source, target, offset, indices):
    """Copy the pages at `indices` (ascending) to target[offset:]; chunks move as stored when the filters agree."""
    if _same_filters(source, target):
        tail = (0,) * (source.ndim - 1)
        for position, index in enumerate(indices):
            filter_mask, chunk = source.id.read_direct_chunk((int(index), *tail))
            target.id.write_direct_chunk((offset + position, *tail), chunk, filter_mask)
        return
    for start in range(0, len(indices), _BLOCK_PAGES):
        block = indices[start:start + _BLOCK_PAGES]
        target[offset + start:offset + start + len(block)] = source[block[0]:block[-1] + 1][block - block[0]]
