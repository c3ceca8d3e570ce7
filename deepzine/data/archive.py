"""Everything that talks to the Internet Archive: search a collection, read item metadata, download PDFs safely.

This is the only module that imports `internetarchive` (the official client,
AGPL-3 licensed), and only when a session opens: `--dry-run` imports this module. It adds what a long unattended run needs on top of it:
resume (a file already present with the right size and md5 is not fetched
again; a download goes to `<name>.part` and is renamed, flushed to the disk,
only once its size and md5 check out, so a partial file never counts as done), retries with
exponential back-off on 5xx answers, time-outs and bad checksums, parallel
items, and path safety (identifiers and file names come from the server and
are refused if they could land outside `pdf_directory`).

`host` and `secure` let a mirror, a proxy or the tests' local fake archive
stand in for archive.org: the client's own `host` config key would append
`.archive.org`, so the session's `host` is set after it is created.

Stopping (Ctrl-C, SIGTERM) takes effect at once, however long the queue:
deepzine.data.transfers runs the search and the downloads. An item whose
files were not all verified gets no record, so the next run fetches exactly
what is missing.
"""

import dataclasses
import hashlib
import json
import logging
import os
import random
import re
import threading

from tqdm import tqdm

from deepzine.data.transfers import Stopped, Transfers
from deepzine.files import RESUMABLE_DOWNLOAD_SUFFIX, commit, remove_leftovers, write_json
from deepzine.parameters import ConfigError

logger = logging.getLogger(__name__)

# Archive identifiers are letters, digits, '.', '_' and '-', starting with a letter or digit (at most 100 characters).
_IDENTIFIER_PATTERN = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,99}')
_MANIFEST_NAME = '.deepzine-download.json'
_SCRAPE_MINIMUM_COUNT = 100  # the scrape API refuses smaller pages


class UnsafePathError(ValueError):
    """An identifier or file name from the server that could escape pdf_directory."""


@dataclasses.dataclass
class ItemReport:
    """What happened to one item: files fetched, files already there, and failures with reasons."""
    identifier: str
    downloaded: list = dataclasses.field(default_factory=list)
    already_present: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)  # (file name, reason)
    refused: list = dataclasses.field(default_factory=list)  # (file name, reason)

    @property
    def ok(self):
        return not self.failed


@dataclasses.dataclass
class DownloadSettings:
    pdf_directory: str
    host: str = 'archive.org'
    secure: bool = True
    skip_bw_pdfs: bool = True
    retries: int = 5
    timeout_sec: float = 60.0
    backoff_base_sec: float = 1.0  # first wait after a failure; doubles each time, capped at a minute


def open_session(host='archive.org', secure=True):
    """An ArchiveSession for `host` (credentials from `ia configure` or IA_ACCESS_KEY_ID/IA_SECRET_ACCESS_KEY if any)."""
    import internetarchive
    try:
        session = internetarchive.get_session(config={'general': {'secure': secure}})
    except ValueError as error:  # e.g. only one of IA_ACCESS_KEY_ID / IA_SECRET_ACCESS_KEY is set
        raise ConfigError(f'Internet Archive credentials: {error}') from None
    session.host = host  # after creation: the config key would become '<host>.archive.org'
    return session


def search_identifiers(session, collection, extra_query=None, limit=None):
    """Identifiers of the collection's items (at most `limit`), in identifier order.

    The scrape API always sorts by identifier last, so the first `limit` items
    are the same on every run and a re-run finds its downloads again.
    """
    query = f'collection:{collection}' + (f' {extra_query}' if extra_query else '')
    params = {'count': max(_SCRAPE_MINIMUM_COUNT, min(limit, 10000))} if limit else None
    identifiers = []
    for result in session.search_items(query, fields=['identifier'], params=params):
        if 'error' in result:  # the client yields the server's error answer as a result
            raise ValueError(result['error'])
        identifiers.append(str(result['identifier']))
        if limit and len(identifiers) >= limit:
            break
    return identifiers


def safe_item_directory(pdf_directory, identifier):
    """pdf_directory/identifier, or UnsafePathError unless the identifier is a plain archive identifier."""
    if not isinstance(identifier, str) or not _IDENTIFIER_PATTERN.fullmatch(identifier):
        raise UnsafePathError(f'identifier {identifier!r} is not a valid archive identifier')
    return os.path.join(os.path.realpath(pdf_directory), identifier)


def safe_destination(pdf_directory, identifier, file_name):
    """pdf_directory/identifier/file_name, or UnsafePathError if either part could point anywhere else."""
    item_directory = safe_item_directory(pdf_directory, identifier)
    if (not isinstance(file_name, str) or not file_name or '\\' in file_name or file_name.startswith('/')
            or re.match(r'[A-Za-z]:', file_name) or any(ord(character) < 32 for character in file_name)):
        raise UnsafePathError(f'file name {file_name!r} is absolute or has odd separators or control characters')
    parts = file_name.split('/')
    if any(part in ('', '.', '..') for part in parts):
        raise UnsafePathError(f'file name {file_name!r} has an empty, "." or ".." part')
    root = os.path.realpath(pdf_directory)
    # realpath also catches a symlink planted inside pdf_directory that points elsewhere.
    target = os.path.realpath(os.path.join(item_directory, *parts))
    if os.path.commonpath([root, target]) != root:
        raise UnsafePathError(f'file name {file_name!r} resolves outside {pdf_directory}')
    return target


def wanted_pdfs(file_entries, skip_bw_pdfs):
    """The metadata entries of the item's PDFs, without the `_bw.pdf` black-and-white copies when asked."""
    chosen = []
    for entry in file_entries:
        name = str(entry.get('name', ''))
        lower = name.lower()
        if lower.endswith('.pdf') and not (skip_bw_pdfs and lower.endswith('_bw.pdf')):
            chosen.append(entry)
    return chosen


def file_md5(path):
    digest = hashlib.md5()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _is_intact(path, size, md5):
    return (os.path.isfile(path) and os.path.getsize(path) == size
            and (not md5 or file_md5(path) == md5))


def _backoff_sec(settings, attempt):
    # Full jitter (AWS architecture blog): parallel workers that failed together do not retry together.
    return random.uniform(0.5, 1.0) * min(60.0, settings.backoff_base_sec * 2 ** attempt)


def _with_retries(settings, description, action, stopping):
    """Run action() up to settings.retries + 1 times, waiting with back-off in between; re-raise the last error.

    Raises Stopped instead once `stopping` is set: a failure then is most
    likely the transfer the stop cut, and no retry may start.
    """
    for attempt in range(settings.retries + 1):
        _check(stopping)
        try:
            return action()
        except (OSError, ValueError) as error:  # requests' errors are OSErrors; bad JSON and md5 are ValueErrors
            _check(stopping)
            if attempt == settings.retries:
                raise
            logger.debug('%s failed (%s); retry %d of %d', description, error, attempt + 1, settings.retries)
            if stopping.wait(_backoff_sec(settings, attempt)):
                raise Stopped() from None


def _check(stopping):
    if stopping.is_set():
        raise Stopped()


def _read_manifest(item_directory, skip_bw_pdfs):
    """The record of a finished item, if its files are all still there with their sizes; else None."""
    try:
        with open(os.path.join(item_directory, _MANIFEST_NAME), encoding='utf-8') as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        return None
    if manifest.get('skip_bw_pdfs') != skip_bw_pdfs:
        return None
    for relative, size in manifest.get('files', {}).items():
        path = os.path.join(item_directory, relative)
        if not os.path.isfile(path) or os.path.getsize(path) != size:
            return None
    return manifest


def _write_manifest(item_directory, skip_bw_pdfs, files, refused):
    """Record a finished item so that later runs skip it without asking the archive."""
    write_json(os.path.join(item_directory, _MANIFEST_NAME), {'skip_bw_pdfs': skip_bw_pdfs, 'files': files,
                                                              'refused': refused})


def _download_file(item, entry, target, settings, stopping):
    """Fetch one file to target + '.part', check size and md5, rename. Raises on failure after the retries."""
    size, md5 = int(entry.get('size') or 0), entry.get('md5')
    partial = target + RESUMABLE_DOWNLOAD_SUFFIX
    os.makedirs(os.path.dirname(target), exist_ok=True)

    def attempt():
        archive_file = item.get_file(entry['name'])
        # The client resumes a left-over .part with a Range request and checks the md5 of resumed files;
        # one inner retry only, because the back-off lives in _with_retries.
        # destdir: the client's own traversal guard checks against it (else against the working directory).
        archive_file.download(file_path=os.path.basename(partial), destdir=os.path.dirname(partial),
                              retries=1, timeout=settings.timeout_sec,
                              no_change_timestamp=True, ignore_errors=False)
        if not os.path.isfile(partial):
            raise OSError('the client wrote no file')
        actual_size = os.path.getsize(partial)
        if size and actual_size != size:
            os.remove(partial)
            raise ValueError(f'size mismatch: got {actual_size} bytes, the archive lists {size}')
        if md5 and file_md5(partial) != md5:
            os.remove(partial)
            raise ValueError('md5 mismatch: the bytes received differ from the archive\'s checksum')
        commit(partial, target, durable=True)

    _with_retries(settings, f'{item.identifier}/{entry["name"]}', attempt, stopping)


def download_item(session, identifier, settings, stopping=None):
    """Download one item's PDFs into pdf_directory/identifier/; never raises for network trouble (see the report).

    Once `stopping` (a threading.Event) is set it raises Stopped between steps
    and writes no record: the item counts as not downloaded.
    """
    stopping = stopping or threading.Event()
    report = ItemReport(identifier)
    try:
        item_directory = safe_item_directory(settings.pdf_directory, identifier)
    except UnsafePathError as error:
        report.refused.append(('', str(error)))
        return report
    manifest = _read_manifest(item_directory, settings.skip_bw_pdfs)
    if manifest is not None:
        report.already_present.extend(manifest['files'])
        report.refused.extend(tuple(refusal) for refusal in manifest.get('refused', []))
        return report
    try:
        item = _with_retries(settings, f'metadata of {identifier}', lambda: session.get_item(identifier), stopping)
    except Exception as error:  # noqa: BLE001 - any failure of one item is reported, never fatal
        report.failed.append(('', f'metadata: {error}'))
        return report
    if not item.item_metadata:
        report.failed.append(('', 'no such item (empty metadata)'))
        return report
    remove_leftovers(item_directory)  # a record being written when a run was killed
    finished = {}
    for entry in wanted_pdfs(item.item_metadata.get('files', []), settings.skip_bw_pdfs):
        name = str(entry['name'])
        try:
            target = safe_destination(settings.pdf_directory, identifier, name)
        except UnsafePathError as error:
            report.refused.append((name, str(error)))
            continue
        try:
            if _is_intact(target, int(entry.get('size') or 0), entry.get('md5')):
                report.already_present.append(name)
            else:
                _download_file(item, entry, target, settings, stopping)
                report.downloaded.append(name)
            finished[os.path.relpath(target, item_directory)] = os.path.getsize(target)
        except Exception as error:  # noqa: BLE001 - reported and skipped, the other files go on
            report.failed.append((name, str(error).splitlines()[0] if str(error) else type(error).__name__))
    if report.ok:
        _write_manifest(item_directory, settings.skip_bw_pdfs, finished, report.refused)
    return report


def download_collection(collection, settings, extra_query=None, limit=None, workers=4, progress=True):
    """Search, then download every item's PDFs with `workers` threads; returns the list of ItemReports.

    An item that keeps failing is logged as a warning and reported; only a
    search that fails (no way to know the items) raises ConfigError. A
    KeyboardInterrupt stops everything at once (see the module docstring).
    """
    return download_collections([(collection, settings)], extra_query, limit, workers, progress)[collection]


def download_collections(requests, extra_query=None, limit=None, workers=4, progress=True):
    """download_collection for several collections, [(collection, DownloadSettings)]: every search first (a
    collection without items is a ConfigError before anything is downloaded), then every item of all of them
    with `workers` threads; returns {collection: [ItemReport]}. At most `limit` items per collection."""
    # The client logs every failed attempt at WARNING/ERROR; this module reports each file's outcome instead.
    logging.getLogger('internetarchive').setLevel(logging.CRITICAL)
    host = requests[0][1].host
    transfers = Transfers(lambda: open_session(host, requests[0][1].secure))

    def search(session, request):
        collection, settings = request
        return _with_retries(settings, f'search of collection {collection}',
                             lambda: search_identifiers(session, collection, extra_query, limit), transfers.stopping)

    def download(session, task):
        collection, settings, identifier = task
        return collection, download_item(session, identifier, settings, transfers.stopping)

    reports = {collection: [] for collection, _ in requests}
    try:
        tasks = []
        for collection, settings in requests:
            try:
                [identifiers] = transfers.run_each(search, [(collection, settings)], workers=1)
            except (OSError, ValueError) as error:
                raise ConfigError(f'internetarchive_collection={collection}: search on {host} failed ({error})') from None
            if not identifiers:
                raise ConfigError(f'internetarchive_collection={collection}: no items found on {host}'
                                  + (f' with internetarchive_query={extra_query!r}' if extra_query else ''))
            logger.info('Internet Archive: %d items in collection %s, PDFs go to %s', len(identifiers), collection,
                        settings.pdf_directory)
            tasks += [(collection, settings, identifier) for identifier in identifiers]
        for _, settings in requests:
            os.makedirs(settings.pdf_directory, exist_ok=True)
        with tqdm(total=len(tasks), desc='download', unit='item', disable=not progress) as bar:
            for collection, report in transfers.run_each(download, tasks, workers):
                for name, reason in report.refused:
                    logger.warning('refused %s/%s from the archive: %s', report.identifier, name, reason)
                for name, reason in report.failed:
                    logger.warning('could not download %s/%s: %s', report.identifier, name, reason)
                reports[collection].append(report)
                bar.update()
    except KeyboardInterrupt:
        cut = transfers.stop()
        logger.info('downloads stopped: %d items done, the rest cancelled (%d transfers cut mid-way); '
                    'a re-run fetches only what is missing', sum(map(len, reports.values())), cut)
        raise
    finally:
        transfers.stop()
    return reports


def summarize_downloads(reports):
    """One line for the final summary."""
    downloaded = sum(len(report.downloaded) for report in reports)
    present = sum(len(report.already_present) for report in reports)
    failed_items = sum(1 for report in reports if report.failed)
    refused = sum(len(report.refused) for report in reports)
    return (f'{len(reports)} items: {downloaded} PDFs downloaded, {present} already present, '
            f'{failed_items} items with failures, {refused} unsafe names refused')
