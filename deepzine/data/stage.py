"""The load_data stage: Internet Archive collections, folders of PDFs or folders of page images -> one HDF5 page file.

The source key names one collection or a list of them (deepzine.data.page_collections);
every page keeps its collection. Heavy libraries (h5py, pypdfium2,
internetarchive) are imported only where the modules below use them, so
`--dry-run` and `params` stay instant.
"""

import dataclasses
import logging
import os
import sys

import yaml

from deepzine.data import archive, sources
from deepzine.data.archive import DownloadSettings
from deepzine.data.pack import IMAGE_FILES, RenderSettings, pack_documents
from deepzine.data.page_checks import PageSelection
from deepzine.data.page_collections import plan_collections
from deepzine.data.page_file_layout import read_collection_page_counts, read_finished_documents
from deepzine.data.preview import DEFAULT_PAGE_COUNT, default_preview_path, write_preview
from deepzine.data.store import PageFileFacts, segment_folder
from deepzine.data.writer import PageWriter
from deepzine.files import remove_leftovers
from deepzine.parameter_groups import DataFileParameters
from deepzine.parameters import ConfigError, Parameter, non_negative, positive, power_of_two, where_relative_paths_start
from deepzine.sizes import sizes_between
from deepzine.stage import Stage

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DownloadPlan:
    """What to fetch from the Internet Archive, and how (data_source: internetarchive)."""
    requests: tuple           # ((collection identifier, deepzine.data.archive.DownloadSettings), ...): where each goes
    query: str
    item_limit: int           # per collection; None: all of it
    workers: int


@dataclasses.dataclass(frozen=True)
class LoadDataPlan:
    """Everything `run` does, worked out once by `validate`; later stages of the same run rely on `page_file`."""
    page_file: object             # deepzine.data.store.PageFileFacts: the collections the file will hold (page
                                  # counts unknown until it has run)
    settings: dict                # the keys it ran with (saved in the page file)
    data_source: str
    collections: tuple            # deepzine.data.page_collections.CollectionSource of each collection it adds to
    existing_collections: tuple   # ((name, pages), ...) of the file it adds to, in number order (() for a new file)
    skip_bw_pdfs: bool
    download: DownloadPlan        # None unless data_source is internetarchive
    render: object                # deepzine.data.pack.RenderSettings: also the page file's schema
    selection: object             # deepzine.data.page_checks.PageSelection
    workers: int                  # conversion worker processes
    overwrite: bool
    file_attributes: dict         # written into the page file besides the schema
    preview_path: str


def _at_most_2400(value):
    if value is not None and not 0 < value <= 2400:
        return 'must be between 1 and 2400 dots per inch'


class LoadDataStage(Stage, DataFileParameters):
    toggle = 'load_data'
    summary = 'documents -> pages -> one multi-resolution HDF5'

    load_data = Parameter(False, 'bool', 'run the load_data stage: fetch or find documents and pack their pages into data_hdf5')
    data_source = Parameter('internetarchive', 'str', 'where pages come from: an Internet Archive collection (downloaded to pdf_directory), '
                            'the PDFs already in pdf_directory, or the page images in image_directory',
                            choices=('internetarchive', 'pdf_directory', 'image_directory'))
    pdf_directory = Parameter('./data/pdfs', 'path_or_list', 'folder of PDFs, searched recursively, or a list of folders, one '
                              'collection each; downloads go to <pdf_directory>/<identifier>/ (with a list of archive '
                              'collections, <pdf_directory>/<collection>/<identifier>/)')
    image_directory = Parameter(None, 'path_or_list', 'folder of page images (png/jpg/tif, recursive) for data_source: '
                                'image_directory, or a list of folders, one collection each; and the one folder where '
                                'keep_page_images writes')
    keep_page_images = Parameter(False, 'bool', 'also save each rendered page as PNG under image_directory (slow: PNG encoding '
                                 'costs more than rendering); pages go to the HDF5 in memory either way')
    internetarchive_collection = Parameter('MBLWHOI', 'str_or_list', 'Internet Archive collection identifier to download, '
                                           'or a list of them, one collection each, e.g. [MBLWHOI, bluesky] (MBLWHOI: '
                                           'the Marine Biological Laboratory library, as in the original)')
    collection_names = Parameter(None, 'list', 'names for the collections of the source key (internetarchive_collection, '
                                 'pdf_directory or image_directory), one per entry in the same order, e.g. [manuals, '
                                 'music]; letters, digits, ".", "_", "-"; None: each named after its archive identifier '
                                 'or its folder')
    internetarchive_query = Parameter(None, 'str', 'extra search terms added to collection:<id>, e.g. "mediatype:texts AND year:[1900 TO 1950]"')
    internetarchive_host = Parameter('archive.org', 'str', 'archive host name[:port]; a mirror, a proxy or a local test server can stand in')
    internetarchive_secure = Parameter(True, 'bool', 'use https to reach internetarchive_host')
    pdf_num = Parameter(1000, 'int', 'at most this many items are downloaded per collection (0: the whole collection); '
                        '1000 items give tens of thousands of pages, plenty for a first model', check=non_negative)
    skip_bw_pdfs = Parameter(True, 'bool', "skip '<name>_bw.pdf' files: the archive's black-and-white copies of the same scans")
    download_workers = Parameter(4, 'int', 'items downloaded at once (be gentle with the archive)', check=positive)
    download_retries = Parameter(5, 'int', 'retries per file after a server error, time-out or bad checksum, '
                                 'waiting 1, 2, 4... s (at most 60 s) between tries', check=non_negative)
    download_timeout_sec = Parameter(60.0, 'float', 'seconds without data before a request is given up and retried', check=positive)
    pdf_conversion_program = Parameter('pdfium', 'str', 'PDF rasterizer: pdfium (in memory, ~5x faster than pdftoppm here), '
                                       'pdftoppm (poppler) or ghostscript (the original default was pdftoppm)',
                                       choices=('pdfium', 'pdftoppm', 'ghostscript'),
                                       aliases={'gs': 'ghostscript', 'pypdfium2': 'pdfium', 'poppler': 'pdftoppm'})
    pdf_dpi = Parameter(None, 'int', 'upper bound on the rendering resolution in dots per inch; every page is rendered '
                        'with its longer side at 2 x data_output_size pixels, lower when this bound says so; None: '
                        'no bound', check=_at_most_2400)
    conversion_workers = Parameter(None, 'int', 'processes rasterizing documents at once; None: every core', check=positive)
    data_output_size = Parameter(256, 'int', 'largest page size stored, in pixels (sizes 4..this are written); 256 keeps text '
                                 'shapes and trains in days on one GPU (the original wrote 1024: 16x the storage and rasterizing)',
                                 check=power_of_two)
    square_mode = Parameter('stretch', 'str', 'how a page becomes square: stretch (the original: squash to a square), '
                            'pad (keep proportions, fill with the page\'s paper colour) or crop (keep the centre square)',
                            choices=('stretch', 'pad', 'crop'))
    channels = Parameter(3, 'int', 'colour channels stored: 3 (RGB) or 1 (grey: a third of the storage and of the '
                         'first and last convolutions, fine for text)', choices=(3, 1))
    hdf5_compression = Parameter('gzip', 'str', 'HDF5 compression of the page arrays: gzip (level 1; readable by any '
                                'HDF5 tool), lzf (faster to write, larger) or none', choices=('none', 'gzip', 'lzf'))
    overwrite = Parameter(False, 'bool', 'rebuild data_hdf5 from scratch; false adds only documents not yet in it')
    skip_blank_pages = Parameter(False, 'bool', 'leave out blank pages (nothing but paper, a page number or faint marks, '
                                 'judged on the stored page); the summary counts them either way')
    skip_duplicate_pages = Parameter(False, 'bool', 'leave out pages whose stored pixels equal a page already in '
                                     'data_hdf5 (from any document or earlier run), keeping the first; counted either way')
    max_pages_per_document = Parameter(0, 'int', 'keep at most this many pages of each document, spread evenly through '
                                       'it (the same pages on every run), so long volumes do not outweigh short '
                                       'ones; 0: every page', check=non_negative)

    # --- derived values -------------------------------------------------------------------------------

    @property
    def resolved_workers(self):
        if self.conversion_workers:
            return self.conversion_workers
        return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1

    def _render_settings(self, by_collection):
        images = self.data_source == 'image_directory'
        return RenderSettings(program=IMAGE_FILES if images else self.pdf_conversion_program,
                              output_size=self.data_output_size, square_mode=self.square_mode, channels=self.channels,
                              max_dpi=None if images else self.pdf_dpi,
                              page_image_directory=self.image_directory if self.keep_page_images else None,
                              compression=self.hdf5_compression, page_images_by_collection=by_collection)

    def _download_plan(self, collections):
        return DownloadPlan(tuple((collection.source, DownloadSettings(
            collection.directory, host=self.internetarchive_host, secure=self.internetarchive_secure,
            skip_bw_pdfs=self.skip_bw_pdfs, retries=self.download_retries, timeout_sec=self.download_timeout_sec))
            for collection in collections), self.internetarchive_query, self.pdf_num or None, self.download_workers)

    # --- Stage interface ------------------------------------------------------------------------------

    def validate(self, earlier):
        listed = {'internetarchive': self.internetarchive_collection, 'pdf_directory': self.pdf_directory,
                  'image_directory': self.image_directory}[self.data_source]
        if self.data_source == 'image_directory' and not listed:
            raise ConfigError(f'image_directory={self.image_directory}: folder not found (data_source is '
                              f'image_directory, so the page images must already be there; {where_relative_paths_start()})')
        collections = plan_collections(self.data_source, listed, self.collection_names, self.pdf_directory)
        if self.data_source == 'internetarchive':
            if '://' in self.internetarchive_host or '/' in self.internetarchive_host or not self.internetarchive_host:
                raise ConfigError(f'internetarchive_host={self.internetarchive_host!r}: give host[:port] only, e.g. '
                                  'archive.org or 127.0.0.1:8000 (internetarchive_secure chooses https or http)')
        else:
            collections = tuple(self._found(collection) for collection in collections)
        if self.keep_page_images:
            self._check_page_image_folder()
        render = self._render_settings(by_collection=isinstance(listed, list))
        existing = self._existing_collections(render.schema())
        known = [name for name, _ in existing]
        names = tuple(known + [collection.name for collection in collections if collection.name not in known])
        settings = self.settings()
        single_folder = collections[0].directory if len(collections) == 1 else None
        return LoadDataPlan(
            page_file=PageFileFacts(self.data_hdf5, tuple(sizes_between(4, self.data_output_size)), self.channels,
                                    collections=names),
            settings=settings, data_source=self.data_source, collections=collections, existing_collections=existing,
            skip_bw_pdfs=self.skip_bw_pdfs,
            download=self._download_plan(collections) if self.data_source == 'internetarchive' else None,
            render=render, selection=PageSelection(self.max_pages_per_document, self.skip_blank_pages,
                                                   self.skip_duplicate_pages),
            workers=self.resolved_workers, overwrite=self.overwrite,
            file_attributes={'config': yaml.safe_dump(settings, sort_keys=True), 'data_source': self.data_source,
                             'source_directory': single_folder},
            preview_path=default_preview_path(self.data_hdf5))

    def _found(self, collection):
        """The collection with its documents counted; ConfigError naming the key and the folder when it has none."""
        key, folder = collection.key, collection.directory
        if not os.path.isdir(folder):
            what = 'PDFs' if key == 'pdf_directory' else 'page images'
            raise ConfigError(f'{key}={folder}: folder not found (data_source is {key}, so the {what} must already be '
                              f'there; {where_relative_paths_start()})')
        count = len(sources.find_collection(collection, self.skip_bw_pdfs))
        if not count:
            raise ConfigError(f'{key}={folder}: no documents found (looked recursively for '
                              f'{sources.what_is_looked_for(collection)})')
        return dataclasses.replace(collection, document_count=count)

    def _check_page_image_folder(self):
        if self.data_source == 'image_directory':
            raise ConfigError('keep_page_images=true: only PDFs are rendered; the pages already are images '
                              f'in image_directory={self.image_directory}')
        if not self.image_directory:
            raise ConfigError('keep_page_images=true: set image_directory to the folder for the page images')
        if isinstance(self.image_directory, list):
            raise ConfigError(f'image_directory=[{", ".join(self.image_directory)}]: keep_page_images writes into one '
                              'folder (a subfolder per collection when the source is a list); give one')

    def _existing_collections(self, schema):
        """((name, pages), ...) of the finished file this run adds to; ConfigError, before any download starts, when
        it was made with other settings."""
        if self.overwrite or not os.path.isfile(self.data_hdf5):
            return ()
        return tuple((entry['name'], pages) for entry, pages in read_collection_page_counts(self.data_hdf5, schema))

    def describe(self, plan):
        lines = []
        download, render, selection = plan.download, plan.render, plan.selection
        for collection, settings in (download.requests if download else ()):
            query = f' {download.query}' if download.query else ''
            scheme = 'https' if settings.secure else 'http'
            lines.append(f'download the PDFs of up to {download.item_limit or "all"} items matching "collection:'
                         f'{collection}{query}" from {scheme}://{settings.host} into {settings.pdf_directory}/'
                         f'<identifier>/ ({download.workers} at once'
                         + (', _bw.pdf copies skipped)' if settings.skip_bw_pdfs else ')'))
        if plan.data_source == 'image_directory':
            lines.append('pack the png/jpg/tif page images')
        else:
            bound = f', at most {render.max_dpi} dpi' if render.max_dpi else ''
            kept = render.page_image_directory
            if kept and render.page_images_by_collection:
                kept = os.path.join(kept, '<collection>')
            lines.append(f'rasterize the PDFs with {render.program}, each page\'s longer side at '
                         f'{render.longer_side_px} px{bound}, in {plan.workers} worker process'
                         + ('es' if plan.workers != 1 else '') + (f', keeping PNG pages in {kept}' if kept else ''))
        lines += self._collection_lines(plan)
        if selection.max_pages_per_document:
            lines.append(f'at most {selection.max_pages_per_document} pages of each document, spread through it')
        lines.append(f'pages: {render.square_mode} to {render.output_size}x{render.output_size}, {render.channels} '
                     f'channel(s), stored at sizes 4..{render.output_size} as uint8; blank pages '
                     + ('dropped' if selection.skip_blank_pages else 'kept') + ', duplicate pages '
                     + ('dropped' if selection.skip_duplicate_pages else 'kept') + ' (both counted)')
        lines.append(f'write {plan.page_file.path} ({render.compression} compression): {self._file_mode()}')
        lines.append(f'then a contact sheet of {DEFAULT_PAGE_COUNT} random pages: {plan.preview_path}')
        return lines

    def _collection_lines(self, plan):
        """A line per collection the file will hold: where its documents are, what the file holds of it already."""
        existing = dict(plan.existing_collections)
        lines = []
        for number, name in enumerate(plan.page_file.collections):
            collection = next((collection for collection in plan.collections if collection.name == name), None)
            held = (f'{existing[name]} pages in the file; documents not yet in it are added' if name in existing
                    else 'new to the file')
            if collection is None:
                lines.append(f'collection {number}, {name}: {existing[name]} pages in the file, kept as they are')
            elif collection.document_count is None:
                lines.append(f'collection {number}, {name}: the PDFs downloaded into {collection.directory} ({held})')
            else:
                lines.append(f'collection {number}, {name}: {collection.document_count} documents under '
                             f'{collection.directory} ({held})')
        return lines

    def _file_mode(self):
        if os.path.exists(segment_folder(self.data_hdf5)):
            return f'resume the interrupted run in {os.path.basename(segment_folder(self.data_hdf5))} if its settings match'
        if os.path.exists(self.data_hdf5):
            return 'rebuild it from scratch (overwrite: true)' if self.overwrite else 'add only documents not yet in it'
        return 'new file'

    def output_directory(self, plan):
        return os.path.dirname(self.data_hdf5)

    def saved_files(self, plan):
        """<page file>_load_data_config.yaml and <page file>_load_data.log, beside the page file they made."""
        stem = os.path.splitext(self.data_hdf5)[0]
        return f'{stem}_load_data_config.yaml', f'{stem}_load_data.log'

    def run(self, plan):
        """Fetch or find the documents, pack the new ones, write the preview; returns the finished HDF5 file's path."""
        progress = sys.stderr.isatty()
        path, schema = plan.page_file.path, plan.render.schema()
        # what a run killed while writing the preview or its settings left beside the page file (the page
        # writer removes its own)
        remove_leftovers(os.path.dirname(path), [os.path.basename(name) for name in (plan.preview_path,
                                                                                    *self.saved_files(plan))])
        download_line = None
        if plan.download:
            download = plan.download
            reports = archive.download_collections(download.requests, download.query, download.item_limit,
                                                   download.workers, progress)
            download_line = archive.summarize_downloads([report for found in reports.values() for report in found])
        documents = []
        for collection in plan.collections:
            found = sources.find_collection(collection, plan.skip_bw_pdfs)
            if not found:
                where = f' in {collection.directory}' if collection.directory != collection.source else ''
                raise ConfigError(f'{collection.key}={collection.source}: no documents found{where} (looked '
                                  f'recursively for {sources.what_is_looked_for(collection)})')
            documents += found
        if not plan.overwrite and os.path.isfile(path) and not os.path.exists(segment_folder(path)):
            already_done = read_finished_documents(path, schema)
            if all(document.done_key in already_done for document in documents):
                logger.info('load_data: nothing new; all %d documents are already in %s', len(documents), path)
                logger.info('  preview: %s', write_preview(path, plan.preview_path))
                return path
        writer = PageWriter(path, schema, plan.file_attributes, plan.render.compression, plan.overwrite,
                            collections=[collection.entry() for collection in plan.collections])
        try:
            summary = pack_documents(documents, writer, plan.render, plan.workers, progress, plan.selection)
            path = writer.finish()
        except BaseException:
            writer.close()  # keep the committed segments: the next run resumes them
            raise
        logger.info('load_data finished: %s now holds %d pages', path, writer.final_page_count)
        for line in ([download_line] if download_line else []) + summary.lines() + _collection_summary(
                plan, summary, writer.final_page_counts):
            logger.info('  %s', line)
        logger.info('  preview: %s', write_preview(path, plan.preview_path))
        return path


def _collection_summary(plan, summary, page_counts):
    """A line per collection of the finished file: what this run did with its documents, and its pages."""
    lines = []
    for number, (name, pages) in enumerate(page_counts.items()):
        counts = summary.by_collection.get(name)
        if counts is None:
            lines.append(f'collection {number}, {name}: {pages} pages (not in this run)')
        else:
            lines.append(f'collection {number}, {name}: {counts.documents_found} documents found, '
                         f'{counts.documents_already_done} already in the file, {counts.documents_packed} packed now, '
                         f'{counts.documents_skipped} skipped; {counts.pages_written} pages written now, '
                         f'{pages} in all')
    return lines
