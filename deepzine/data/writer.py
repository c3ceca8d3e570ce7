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

from deepzine.data.page_file_layout import (DOCUMENT_TYPES, PROVENANCE_TYPES, attribute_value, create_layout,
                                            finished_documents, read_finished_documents, stored_page_digests)
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

    def __init__(self, path, schema, attributes, compression='gzip', overwrite=False, commit_interval_sec=1.0):
        """schema: values of SCHEMA_KEYS; attributes: other attributes for the final file (config YAML, source...)."""
        import h5py
        self._h5py = h5py
        self.path = os.path.abspath(path)
        self.segment_folder = segment_folder(self.path)
        self.schema, self.attributes = dict(schema), dict(attributes)
        self.compression, self.overwrite = compression, overwrite
        self.commit_interval_sec = commit_interval_sec
        self.sizes = sizes_between(4, schema['output_size'])
        self.channels = int(schema['channels'])
        self.final_page_count = None
        self._segment, self._segment_path, self._segment_opened, self._document_start = None, None, 0.0, 0
        self._digests_by_source = {}  # page file or segment -> its pages' digests, in order (for the merge)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        # a merge that was killed: its segments are still there
        remove_leftovers(os.path.dirname(self.path), [os.path.basename(self.path)])
        self.base_documents, self.created_utc = {}, _now()
        if os.path.exists(self.path) and not overwrite:
            self.base_documents = read_finished_documents(self.path, self.schema)
            with h5py.File(self.path, 'r') as handle:
                self.created_utc = attribute_value(handle.attrs.get('created_utc', self.created_utc))
        self._run_id = self._resume_or_start()
        self.segments = sorted(glob.glob(os.path.join(self.segment_folder, 'segment-*.hdf5')))
        self.finished_documents = dict(self.base_documents)
        if self.base_documents:
            with h5py.File(self.path, 'r') as handle:
                self._digests_by_source[self.path] = stored_page_digests(handle, self.sizes[-1])
        for segment in self.segments:
            with h5py.File(segment, 'r') as handle:
                self.finished_documents.update(finished_documents(handle))
                self._digests_by_source[segment] = stored_page_digests(handle, self.sizes[-1])
        # Digests of every page stored so far (the file being added to, committed segments, and this run's)
        self.page_digests = {digest for digests in self._digests_by_source.values() for digest in digests}
        self.resumed_documents = len(self.finished_documents) - len(self.base_documents)
        if self.resumed_documents:
            logger.info('resuming the interrupted run in %s: %d documents already done', self.segment_folder,
                        self.resumed_documents)

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
        self._segment.attrs.update({**self.schema, 'run_id': self._run_id})
        create_layout(self._segment, self.sizes, self.channels, self.compression)
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
        self._digests_by_source[final] = self._digests_by_source.pop(temporary, [])
        logger.debug('committed %s: %d documents, %d pages (%d documents done in all)', os.path.basename(final),
                     documents, pages, len(self.finished_documents))
        pause_at('segment committed', f'{os.path.basename(final)}, {len(self.finished_documents)} documents done in all')

    # --- writing --------------------------------------------------------------------------------------

    def append_pages(self, levels, provenance, compressed=False, digests=None):
        """levels: {size: uint8 [n, size, size, channels]} for every stored size; provenance: n (identifier, file, page).

        compressed: levels hold, per size, n zlib streams (level GZIP_LEVEL) of the
        pages' bytes (what HDF5's gzip filter stores), written as chunks without
        recompressing. digests: the pages' SHA-1 at the output size
        (deepzine.data.page_checks.page_digest), computed here when not given.
        """
        if not provenance:
            return
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
        _append(self._segment['pages'], {**columns, 'sha1': [digest.hex().encode('ascii') for digest in digests]})
        self._digests_by_source.setdefault(self._segment.filename, []).extend(digests)
        self.page_digests.update(digests)

    def commit_document(self, file, size_bytes, pages_written, pages_skipped, status):
        """Record a document (its pages appended since the last call) as done, packed or skipped and why."""
        if self._segment is None:
            self._open_segment()
        page_count = self._segment[data_name(self.sizes[-1])].shape[0]
        _append(self._segment['documents'], {'file': [file], 'size_bytes': [size_bytes],
                                             'first_page_index': [self._document_start], 'pages_written': [pages_written],
                                             'pages_skipped': [pages_skipped], 'status': [status]})
        self._document_start = page_count
        self.finished_documents[file] = size_bytes
        if time.monotonic() - self._segment_opened >= self.commit_interval_sec:
            self._close_segment()

    def finish(self):
        """Merge the previous file and every segment into data_hdf5 (temp name + rename); returns its path."""
        if self._segment is not None:
            self._close_segment()
        sources = ([self.path] if self.base_documents else []) + self.segments
        page_count = 0
        for source in sources:
            with self._h5py.File(source, 'r') as handle:
                page_count += handle[data_name(self.sizes[-1])].shape[0]
        if page_count == 0:
            self.discard()
            raise ConfigError(f'data_hdf5={self.path}: no usable pages at all; see the warnings above for why '
                              'each document was skipped')
        # The merged file is about the size of its sources; the old file and the segments stay until it is renamed.
        require_free_space(self.path, sum(os.path.getsize(source) for source in sources))
        with atomic_path(self.path, durable=True) as merging:
            with self._h5py.File(merging, 'w') as target:
                _merge(sources, target, self, page_count)
            pause_at('merged', os.path.basename(merging))
        shutil.rmtree(self.segment_folder, ignore_errors=True)
        self.final_page_count = page_count
        return self.path

    def close(self):
        """Stop without finishing: committed segments stay for the next run; the open one is dropped."""
        if self._segment is not None:
            temporary = self._segment.filename
            self._segment.close()
            self._segment = None
            os.remove(temporary)
            self._digests_by_source.pop(temporary, None)

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


def _same_filters(source, target):
    return (source.compression, source.compression_opts) == (target.compression, target.compression_opts)


def _merge(sources, target, writer, page_count):
    """Fill `target` with the pages, provenance and documents of every source, in order."""
    documents = []
    for source in sources:
        with writer._h5py.File(source, 'r') as handle:
            documents.append(handle['documents/file'].shape[0])
    create_layout(target, writer.sizes, writer.channels, writer.compression, page_count, sum(documents))
    offset, document_offset = 0, 0
    for source in sources:
        with writer._h5py.File(source, 'r') as handle:
            count = handle[data_name(writer.sizes[-1])].shape[0]
            for size in writer.sizes:
                _copy_pages(handle[data_name(size)], target[data_name(size)], offset, count)
            for name in PROVENANCE_TYPES:
                if name == 'sha1':
                    digests = writer._digests_by_source.get(source) or stored_page_digests(handle, writer.sizes[-1])
                    values = [digest.hex().encode('ascii') for digest in digests]
                else:
                    values = handle['pages'][name][:]
                target['pages'][name][offset:offset + count] = values
            rows = handle['documents/file'].shape[0]
            for name in DOCUMENT_TYPES:
                values = handle['documents'][name][:]
                target['documents'][name][document_offset:document_offset + rows] = (
                    values + offset if name == 'first_page_index' else values)
            offset, document_offset = offset + count, document_offset + rows
    target.attrs.update({'format': FORMAT_NAME, 'format_version': FORMAT_VERSION, 'complete': True,
                         'sizes': np.asarray(writer.sizes, np.int32), 'hdf5_compression': writer.compression,
                         'created_utc': writer.created_utc, 'updated_utc': _now(), 'merged_run_id': writer._run_id,
                         **writer.schema,
                         **{key: value for key, value in writer.attributes.items() if value is not None}})


def _copy_pages(source, target, offset, count):
    """Copy `count` pages; chunks move as stored (still compressed) when both sides use the same filters."""
    if _same_filters(source, target):
        tail = (0,) * (source.ndim - 1)
        for index in range(count):
            filter_mask, chunk = source.id.read_direct_chunk((index, *tail))
            target.id.write_direct_chunk((offset + index, *tail), chunk, filter_mask)
    else:
        for start in range(0, count, 256):
            stop = min(count, start + 256)
            target[offset + start:offset + stop] = source[start:stop]
