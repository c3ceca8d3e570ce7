"""A fake Internet Archive on 127.0.0.1 that speaks the wire protocol the real `internetarchive` client uses.

Endpoints (as measured against the internetarchive 5.12 client):
- POST /services/search/v1/scrape?q=...&fields=...&count=...&cursor=...: pages of
  {"items": [{"identifier": ...}], "count": n, "total": N, "cursor": "..."}, the last page without cursor.
- GET /metadata/<identifier>: {"files": [{"name", "source", "format", "size" (a string), "md5", "mtime"}],
  "metadata": {"identifier", "mediatype"}}; {} for an unknown item.
- GET /download/<identifier>/<quoted name>: the bytes, with Range support (206) as the client resumes with it.

Faults are queued per (identifier, file name) - or (identifier, None) for the metadata - and each request
takes the next one: '500' (server error), 'slow' (answers after `slow_sec`), 'truncate' (announces the full
length, sends half, closes), 'corrupt' (right length, wrong bytes), 'stall' (announces the full length, sends
half, then nothing more until the server stops: a transfer hung mid-body). Extra metadata entries can name
files the server would never serve safely (e.g. '../evil.pdf'); `wrong_md5` items advertise a bad checksum.
`add_collection` serves more collections than the first.
"""

import collections
import hashlib
import json
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeArchive:
    def __init__(self, collection, items, page_size=2, slow_sec=2.0):
        """items: {identifier: {file name: bytes}}; every item belongs to `collection`."""
        self.collection = collection
        self.items = {identifier: dict(files) for identifier, files in items.items()}
        self.members = {collection: sorted(self.items)}  # collection -> its identifiers
        self.page_size = page_size
        self.slow_sec = slow_sec
        self._stopping = threading.Event()  # releases the stalled transfers
        self.faults = collections.defaultdict(list)
        self.advertised_md5 = {}  # (identifier, name) -> md5 to claim instead of the real one
        self.extra_listed_files = collections.defaultdict(list)  # identifier -> names listed but never served
        self.extra_search_identifiers = []  # identifiers the search returns beyond the items
        self.requests = []  # (method, path) of every request, for assertions
        self.range_requests = []  # (identifier, name, Range header) of resumed downloads
        self.authorizations = []  # Authorization headers received (IA-S3 keys: 'LOW access:secret')
        self._lock = threading.Lock()
        self._server = None
        self._thread = None

    # --- set-up -------------------------------------------------------------------------------------

    def add_collection(self, collection, items):
        """Serve another collection: items as for the first ({identifier: {file name: bytes}})."""
        self.items.update({identifier: dict(files) for identifier, files in items.items()})
        self.members[collection] = sorted(items)

    def add_fault(self, identifier, name, *kinds):
        self.faults[(identifier, name)].extend(kinds)

    @property
    def host(self):
        return f'127.0.0.1:{self._server.server_address[1]}'

    def start(self):
        archive = self

        class Handler(_Handler):
            fake = archive

        self._server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def downloads(self):
        """Paths of every GET /download/ request so far."""
        return [path for method, path in self.requests if path.startswith('/download/')]

    # --- behaviour ------------------------------------------------------------------------------------

    def _next_fault(self, identifier, name):
        with self._lock:
            queue = self.faults.get((identifier, name))
            return queue.pop(0) if queue else None

    def _search_page(self, query, cursor):
        asked = re.search(r'collection:(\S+)', query)
        asked = asked.group(1) if asked else None
        identifiers = list(self.members.get(asked, []))
        if asked == self.collection:
            identifiers += self.extra_search_identifiers
        start = int(cursor or 0)
        page = identifiers[start:start + self.page_size]
        answer = {'items': [{'identifier': identifier} for identifier in page], 'count': len(page),
                  'total': len(identifiers)}
        if start + self.page_size < len(identifiers):
            answer['cursor'] = str(start + self.page_size)
        return answer

    def _metadata(self, identifier):
        files = self.items.get(identifier)
        if files is None:
            return {}
        entries = [{'name': name, 'source': 'original', 'format': 'Text PDF', 'size': str(len(data)),
                    'md5': self.advertised_md5.get((identifier, name), hashlib.md5(data).hexdigest()),
                    'mtime': '1500000000'}
                   for name, data in files.items()]
        entries += [{'name': name, 'source': 'original', 'format': 'Text PDF', 'size': '10',
                     'md5': '0' * 32, 'mtime': '1500000000'} for name in self.extra_listed_files[identifier]]
        entries.append({'name': f'{identifier}_meta.xml', 'source': 'original', 'format': 'Metadata', 'size': '5'})
        return {'files': entries, 'metadata': {'identifier': identifier, 'mediatype': 'texts'}}


class _Handler(BaseHTTPRequestHandler):
    fake = None
    protocol_version = 'HTTP/1.0'

    def log_message(self, *args):
        pass

    def _record(self):
        with self.fake._lock:
            self.fake.requests.append((self.command, urllib.parse.urlsplit(self.path).path))
            if self.headers.get('Authorization'):
                self.fake.authorizations.append(self.headers['Authorization'])

    def _send_json(self, answer, status=200):
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _fail_or_delay(self, fault):
        if fault == '500':
            self._send_json({'error': 'injected fault'}, status=500)
            return True
        if fault == 'slow':
            time.sleep(self.fake.slow_sec)
        return False

    def do_POST(self):
        self._record()
        url = urllib.parse.urlsplit(self.path)
        if url.path != '/services/search/v1/scrape':
            return self._send_json({'error': 'not found'}, status=404)
        if self._fail_or_delay(self.fake._next_fault('search', None)):
            return
        params = urllib.parse.parse_qs(url.query)
        self._send_json(self.fake._search_page(params.get('q', [''])[0], params.get('cursor', [None])[0]))

    def do_GET(self):
        self._record()
        parts = urllib.parse.urlsplit(self.path).path.split('/', 3)
        try:
            if len(parts) >= 3 and parts[1] == 'metadata':
                if not self._fail_or_delay(self.fake._next_fault(parts[2], None)):
                    self._send_json(self.fake._metadata(parts[2]))
            elif len(parts) == 4 and parts[1] == 'download':
                self._download(parts[2], urllib.parse.unquote(parts[3]))
            else:
                self._send_json({'error': 'not found'}, status=404)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (time-out): nothing to answer

    def _download(self, identifier, name):
        data = self.fake.items.get(identifier, {}).get(name)
        if data is None:
            return self._send_json({'error': 'no such file'}, status=404)
        fault = self.fake._next_fault(identifier, name)
        if self._fail_or_delay(fault):
            return
        if fault == 'corrupt':
            data = bytes(byte ^ 0xFF for byte in data)
        start = 0
        ranged = self.headers.get('Range', '')
        if ranged.startswith('bytes=') and ranged.endswith('-'):
            self.fake.range_requests.append((identifier, name, ranged))
            start = int(ranged[len('bytes='):-1])
            if start >= len(data):
                self.send_response(416)
                self.send_header('Content-Range', f'bytes */{len(data)}')
                self.send_header('Content-Length', '0')
                self.end_headers()
                return
        body = data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header('Content-Range', f'bytes {start}-{len(data) - 1}/{len(data)}')
        self.send_header('Content-Type', 'application/pdf')
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Last-Modified', 'Fri, 14 Jul 2017 02:40:00 GMT')
        self.end_headers()
        if fault in ('truncate', 'stall'):
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            if fault == 'stall':
                self.fake._stopping.wait()
            else:
                self.connection.shutdown(2)
            return
        self.wfile.write(body)
