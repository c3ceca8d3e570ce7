"""Write the page file safely: pages go to committed segment files, merged into data_hdf5 by temp name + rename.

Why segments: HDF5 is not crash-safe. A process killed while appending to an
open HDF5 file can leave it unreadable even where it was flushed (measured:
about 1 kill in 8 while writing gave 'filter returned failure during read'
or an unopenable file). So pages stream into a temporary file in the segment
folder `<data_hdf5>.partial/`; at a document boundary, at most every
`commit_interval_sec`, the segment is closed, flushed to the disk and renamed
to `segment-N.hdf5`. A closed, renamed file is complete, so:
- a killed run resumes from its committed segments (at most the last few
  seconds of documents are done again) and never from a damaged file;
- `finish()` merges the previous data_hdf5 (for an incremental run) and the
  segments into a temporary file beside it, marks it complete and renames it
  over data_hdf5: a file that looks finished is always complete, and the old
  file stays readable until the new one replaces it;
- memory does not grow with the collection: every page is written as it comes
  (only each stored page's SHA-1, ~100 bytes, is held, to find repeated pages).
The merge copies compressed chunks as they are (no recompression). Temporary
names are deepzine.files' own, so a killed run's are removed by the next.
h5py is imported where it is used: `--dry-run` imports this module.

`pages/sha1` holds each page's SHA-1 (hex) at the output size, so a later run
finds pages repeating ones already stored. Files written before that column
existed are read as well: their pages are hashed from the pixels once, when a
run adds to them, and the merged file has the column.

Every page and document belongs to one of the run's collections (by name);
each segment records the run's collections, and the merge renumbers them into
the file's list: its old collections, then the run's new ones
(deepzine.data.merge). A file written before collections existed joins as
its one collection, named after its source. A collection left without pages
is refused before the merge (training could not draw from it).
"""

import datetime
import glob
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
import zlib

import numpy as np

from deepzine.data.merge import SourceFacts, merge_into, page_counts
from deepzine.data.page_collections import (COLLECTION_COLUMN, COLLECTIONS_ATTRIBUTE, LEGACY_COLLECTION_NAME,
                                            SOURCE_KEYS, collection_entries_of)
from deepzine.data.page_file_layout import (PDF_SETTINGS, attribute_value, collection_column, create_layout,
                                            finished_documents, makes_pdf_pages, plain_attributes,
                                            read_finished_documents, stored_page_digests)
from deepzine.data.store import FORMAT_NAME, FORMAT_VERSION, data_name, segment_folder
from deepzine.files import atomic_path, commit, remove_leftovers, require_free_space, temporary_path_beside, write_json
from deepzine.parameters import ConfigError
from deepzine.sizes import sizes_between
from deepzine.test_hooks import pause_at

logger = logging.getLogger(__name__)

_GIVEN_PROVENANCE = ('identifier', 'file', 'page_number')  # what append_pages receives per page; sha1 it works out
_RUN_FILE = 'run.json'


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


class PageWriter:
    """Collects pages into committed segments and merges them into data_hdf5; see the module docstring."""

    def __init__(self, path, schema, attributes, compression='gzip', overwrite=False, commit_interval_sec=1.0,
                 collections=None):
        """schema: values of SCHEMA_KEYS; attributes: other attributes for the final file (config YAML, source...);
        collections: what the file records of each collection this run adds pages to ({'name', 'data_source',
        'source'}, deepzine.data.page_collections), in order; None: one, named LEGACY_COLLECTION_NAME."""
        import h5py
        self._h5py = h5py
        self.path = os.path.abspath(path)
        self.segment_folder = segment_folder(self.path)
        self.schema, self.attributes = dict(schema), dict(attributes)
        self.compression, self.overwrite = compression, overwrite
        self.commit_interval_sec = commit_interval_sec
        self.sizes = sizes_between(4, schema['output_size'])
        self.channels = int(schema['channels'])
        made_with = {key: self.schema[key] for key in PDF_SETTINGS}
        self.collections = [{**entry, **made_with} for entry in collections or [{'name': LEGACY_COLLECTION_NAME}]]
        self.run_names = [entry['name'] for entry in self.collections]
        self.final_page_count, self.final_page_counts = None, None
        self._segment, self._segment_path, self._segment_opened, self._document_start = None, None, 0.0, 0
        self._sources = {}  # page file or segment -> SourceFacts (its pages' collections and digests), merge order
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        # a merge that was killed: its segments are still there
        remove_leftovers(os.path.dirname(self.path), [os.path.basename(self.path)])
        self.base_documents, self.created_utc, base_entries, self._file_pdf_settings = {}, _now(), [], None
        if os.path.exists(self.path) and not overwrite:
            self.base_documents = read_finished_documents(self.path, self.schema)
            with h5py.File(self.path, 'r') as handle:
                base = plain_attributes(handle)
                self.created_utc = base.get('created_utc', self.created_utc)
                base_entries = collection_entries_of(base)
                if makes_pdf_pages(base):
                    self._file_pdf_settings = {key: base[key] for key in PDF_SETTINGS}
                self._sources[self.path] = self._read_facts(handle)
        known = [entry['name'] for entry in base_entries]
        # the file's collections, in number order: the old file's, then this run's new ones
        self.entries = base_entries + [entry for entry in self.collections if entry['name'] not in known]
        self.names = [entry['name'] for entry in self.entries]
        self._run_id = self._resume_or_start()
        self.segments = sorted(glob.glob(os.path.join(self.segment_folder, 'segment-*.hdf5')))
        self.finished_documents, left_out = dict(self.base_documents), set()
        for segment in self.segments:
            with h5py.File(segment, 'r') as handle:
                self._sources[segment] = self._read_facts(handle)
                for key, size in finished_documents(handle, self._sources[segment].names).items():
                    if key[0] in self.names:
                        self.finished_documents[key] = size
                    else:
                        left_out.add(key[0])
        if left_out:
            logger.warning('leaving out what the interrupted run in %s packed of collection %s: this run does not '
                           'list it', self.segment_folder, ', '.join(sorted(left_out)))
        # Digests of every page stored so far that the merged file keeps (the file being added to, committed
        # segments, and this run's)
        self.page_digests = {digest for facts in self._sources.values()
                             for digest, kept in zip(facts.digests, facts.kept(self.names)) if kept}
        self.resumed_documents = len(self.finished_documents) - len(self.base_documents)
        if self.resumed_documents:
            logger.info('resuming the interrupted run in %s: %d documents already done', self.segment_folder,
                        self.resumed_documents)

    def _read_facts(self, handle):
        """SourceFacts of an open page file or segment (a segment of before collections: the run's first one)."""
        entries = (collection_entries_of(plain_attributes(handle)) if handle.attrs.get('format') == FORMAT_NAME
                   or COLLECTIONS_ATTRIBUTE in handle.attrs else self.collections[:1])
        page_count = handle[data_name(self.sizes[-1])].shape[0]
        numbers = collection_column(handle['pages'], page_count).tolist()
        return SourceFacts([entry['name'] for entry in entries], numbers, stored_page_digests(handle, self.sizes[-1]))

    # --- the segment folder ---------------------------------------------------------------------------

    def _resume_or_start(self):
        """The run id of a usable segment folder (discarding one that cannot serve this run), or of a new one."""
        run_file = os.path.join(self.segment_folder, _RUN_FILE)
        if os.path.isdir(self.segment_folder):
            try:
                with open(run_file, encoding='utf-8') as handle:
                    run = json.load(handle)
            except (OSError, ValueError):
                run = {}
            reason = None
            if not run and self._left_over_from_the_finished_file():
                # the clean-up after the final rename was cut short (run.json already gone): nothing is lost
                logger.info('removing %s: left over from the run that finished %s', self.segment_folder, self.path)
                shutil.rmtree(self.segment_folder)
                reason = False
            elif run.get('schema') != self.schema:
                reason = 'it was made with other settings'
            elif run.get('overwrite') and not self.overwrite:
                # its segments rebuild documents the finished file also holds: merging both would repeat them
                reason = 'it was rebuilding the file (overwrite: true) and this run adds to it'
            elif self._already_merged(run.get('run_id')):
                reason = f'its pages are already in {self.path}'
            if reason is None:
                remove_leftovers(self.segment_folder)  # the segment being written when the run stopped
                return run['run_id']
            if reason:
                logger.warning('discarding %s: %s', self.segment_folder, reason)
                shutil.rmtree(self.segment_folder)
        os.makedirs(self.segment_folder)
        run_id = uuid.uuid4().hex
        # durable: without its run record a segment folder cannot be resumed
        write_json(run_file, {'run_id': run_id, 'schema': self.schema, 'overwrite': self.overwrite,
                              'started_utc': _now()}, durable=True)
        return run_id

    def _already_merged(self, run_id):
        """True if the finished file came from this segment folder (killed after the rename, before the clean-up)."""
        if not os.path.exists(self.path) or run_id is None:
            return False
        with self._h5py.File(self.path, 'r') as handle:
            return attribute_value(handle.attrs.get('merged_run_id')) == run_id

    def _left_over_from_the_finished_file(self):
        """A segment folder without run.json is the finished file's own when its segments carry that run id,
        or when it holds no committed segment at all (nothing to lose)."""
        segments = sorted(glob.glob(os.path.join(self.segment_folder, 'segment-*.hdf5')))
        if not segments:
            return True
        try:
            with self._h5py.File(segments[0], 'r') as handle:
                run_id = attribute_value(handle.attrs.get('run_id'))
        except OSError:
            return False
        return self._already_merged(run_id)

    def _open_segment(self):
        self._segment_path = os.path.join(self.segment_folder, f'segment-{len(self.segments) + 1:06d}.hdf5')
        self._segment = self._h5py.File(temporary_path_beside(self._segment_path), 'w')
        self._segment.attrs.update({**self.schema, 'run_id': self._run_id,
                                    COLLECTIONS_ATTRIBUTE: json.dumps(self.collections)})
        create_layout(self._segment, self.sizes, self.channels, self.compression)
        self._sources[self._segment.filename] = SourceFacts(list(self.run_names), [], [])
        self._segment_opened, self._document_start = time.monotonic(), 0

    def _close_segment(self):
        """Commit: close the open segment and give it its final name (everything in it survives a kill from now)."""
        temporary = self._segment.filename
        documents = self._segment['documents/file'].shape[0]
        pages = self._segment[data_name(self.sizes[-1])].shape[0]
        self._segment.close()
        self._segment, final = None, self._segment_path
        commit(temporary, final, durable=True)
        self.segments.append(final)
        self._sources[final] = self._sources.pop(temporary)
        logger.debug('committed %s: %d documents, %d pages (%d documents done in all)', os.path.basename(final),
                     documents, pages, len(self.finished_documents))
        pause_at('segment committed', f'{os.path.basename(final)}, {len(self.finished_documents)} documents done in all')

    # --- writing --------------------------------------------------------------------------------------

    def append_pages(self, levels, provenance, compressed=False, digests=None, collection=None):
        """levels: {size: uint8 [n, size, size, channels]} for every stored size; provenance: n (identifier, file, page).

        compressed: levels hold, per size, n zlib streams (level GZIP_LEVEL) of the
        pages' bytes (what HDF5's gzip filter stores), written as chunks without
        recompressing. digests: the pages' SHA-1 at the output size
        (deepzine.data.page_checks.page_digest), computed here when not given.
        collection: the name of the run's collection they belong to (None: its first).
        """
        if not provenance:
            return
        number = self._run_number(collection)
        if compressed and self.compression != 'gzip':
            raise ValueError(f'pre-compressed pages need gzip compression, this file uses {self.compression}')
        if digests is None:
            largest = levels[self.sizes[-1]]
            digests = [hashlib.sha1(zlib.decompress(page) if compressed else page.tobytes()).digest() for page in largest]
        if compressed:
            incoming = sum(len(chunk) for size in self.sizes for chunk in levels[size])
        else:
            incoming = sum(levels[size].nbytes for size in self.sizes)
        require_free_space(self.segment_folder, incoming)
        if self._segment is None:
            self._open_segment()
        if compressed:
            for size in self.sizes:
                dataset = self._segment[data_name(size)]
                start = dataset.shape[0]
                dataset.resize(start + len(levels[size]), axis=0)
                for index, chunk in enumerate(levels[size]):
                    dataset.id.write_direct_chunk((start + index, 0, 0, 0), chunk)
        else:
            _append(self._segment, {data_name(size): levels[size] for size in self.sizes})
        columns = {name: [row[position] for row in provenance] for position, name in enumerate(_GIVEN_PROVENANCE)}
        _append(self._segment['pages'], {**columns, 'sha1': [digest.hex().encode('ascii') for digest in digests],
                                         COLLECTION_COLUMN: [number] * len(provenance)})
        facts = self._sources[self._segment.filename]
        facts.digests.extend(digests)
        facts.numbers.extend([number] * len(provenance))
        self.page_digests.update(digests)

    def _run_number(self, collection):
        if collection is None:
            return 0
        if collection not in self.run_names:
            raise ValueError(f'collection {collection!r} is not one of this run\'s ({", ".join(self.run_names)})')
        return self.run_names.index(collection)

    def commit_document(self, file, size_bytes, pages_written, pages_skipped, status, collection=None):
        """Record a document of `collection` (its pages appended since the last call) as done, packed or skipped and
        why; a document is known by its collection and its file."""
        number = self._run_number(collection)
        if self._segment is None:
            self._open_segment()
        page_count = self._segment[data_name(self.sizes[-1])].shape[0]
        _append(self._segment['documents'], {'file': [file], COLLECTION_COLUMN: [number], 'size_bytes': [size_bytes],
                                             'first_page_index': [self._document_start], 'pages_written': [pages_written],
                                             'pages_skipped': [pages_skipped], 'status': [status]})
        self._document_start = page_count
        self.finished_documents[(self.run_names[number], file)] = size_bytes
        if time.monotonic() - self._segment_opened >= self.commit_interval_sec:
            self._close_segment()

    def page_counts(self):
        """{collection name: pages} of the file as it would be merged now, for every collection it will hold."""
        return dict(zip(self.names, page_counts(self._sources, self.names)))

    def finish(self):
        """Merge the previous file and every segment into data_hdf5 (temp name + rename); returns its path.

        ConfigError when there are no pages at all (the segments are discarded), or when a collection has none
        (the segments stay: a run without it, or with documents it can read, goes on from them).
        """
        if self._segment is not None:
            self._close_segment()
        counts = self.page_counts()
        if sum(counts.values()) == 0:
            self.discard()
            raise ConfigError(f'data_hdf5={self.path}: no usable pages at all; see the warnings above for why '
                              'each document was skipped')
        empty = [entry for entry in self.entries if counts[entry['name']] == 0]
        if empty:
            self.close()
            raise ConfigError(_no_pages_in(empty))
        sources = {path: facts for path, facts in self._sources.items() if path == self.path or path in self.segments}
        # The merged file is about the size of its sources; the old file and the segments stay until it is renamed.
        require_free_space(self.path, sum(os.path.getsize(source) for source in sources))
        with atomic_path(self.path, durable=True) as merging:
            with self._h5py.File(merging, 'w') as target:
                merge_into(target, sources, self.sizes, self.channels, self.compression, self.names)
                target.attrs.update(self._final_attributes(counts))
            pause_at('merged', os.path.basename(merging))
        shutil.rmtree(self.segment_folder, ignore_errors=True)
        self.final_page_count, self.final_page_counts = sum(counts.values()), counts
        return self.path

    def _final_attributes(self, counts):
        """The merged file's attributes: its schema (the pdf_* of its PDF pages, if any), its collections, ..."""
        schema = dict(self.schema)
        if not makes_pdf_pages(schema) and self._file_pdf_settings:
            schema.update(self._file_pdf_settings)  # page images joined a file of PDF pages
        entries = [{**entry, 'pages': counts[entry['name']]} for entry in self.entries]
        return {'format': FORMAT_NAME, 'format_version': FORMAT_VERSION, 'complete': True,
                'sizes': np.asarray(self.sizes, np.int32), 'hdf5_compression': self.compression,
                'created_utc': self.created_utc, 'updated_utc': _now(), 'merged_run_id': self._run_id, **schema,
                COLLECTIONS_ATTRIBUTE: json.dumps(entries),
                **{key: value for key, value in self.attributes.items() if value is not None}}

    def close(self):
        """Stop without finishing: committed segments stay for the next run; the open one is dropped."""
        if self._segment is not None:
            temporary = self._segment.filename
            self._segment.close()
            self._segment = None
            os.remove(temporary)
            self._sources.pop(temporary, None)

    def discard(self):
        self.close()
        shutil.rmtree(self.segment_folder, ignore_errors=True)


def _append(group, columns):
    """Append rows to each named resizable dataset of `group`."""
    for name, rows in columns.items():
        dataset = group[name]
        start = dataset.shape[0]
        dataset.resize(start + len(rows), axis=0)
        dataset[start:start + len(rows)] = rows


def _no_pages_in(entries):
    """One line: which collections have no usable page, the key and sources that name them, and what to do."""
    key = SOURCE_KEYS.get(entries[0].get('data_source'), 'data_hdf5')
    names = ', '.join(entry['name'] for entry in entries)
    sources = ', '.join(str(entry.get('source') or entry['name']) for entry in entries)
    return (f'{key}={sources}: no usable pages in collection {names}; see the warnings above for why each document '
            f'was skipped; leave it out of {key} or give it documents that can be read (the pages packed so far are '
            'kept for the next run)')
