"""Find the documents to pack: PDFs under pdf_directory, or page images under image_directory (recursively)."""

import dataclasses
import os

from deepzine.data.page_collections import LEGACY_COLLECTION_NAME
from deepzine.data.rasterize import IMAGE_EXTENSIONS


@dataclasses.dataclass(frozen=True)
class Document:
    """One file to turn into pages, known in the page file by its collection and its `key` (its path relative
    to the collection's folder): two folders' `manual.pdf` are two documents."""
    path: str
    key: str
    identifier: str
    size_bytes: int
    collection: str = LEGACY_COLLECTION_NAME

    @property
    def done_key(self):
        """How the page file's list of finished documents knows it (deepzine.data.page_file_layout)."""
        return self.collection, self.key


def _identifier(key):
    """The archive identifier for pdf_directory/<identifier>/<file>; a loose file's own name otherwise."""
    parts = key.split('/')
    return parts[0] if len(parts) > 1 else os.path.splitext(parts[0])[0]


def find_documents(root, extensions, skip_bw_pdfs=False, collection=LEGACY_COLLECTION_NAME):
    """Documents of `collection` under root whose names end with one of `extensions` (any case), sorted by key.

    Hidden files and folders (an interrupted download's `.part` file, the
    download manifest) are never documents; `_bw.pdf` files are the archive's
    black-and-white copies of the same scans and are skipped when asked.
    """
    documents = []
    root = os.path.abspath(root)
    for folder, subfolders, names in os.walk(root, followlinks=False):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith('.'))
        for name in names:
            lower = name.lower()
            if name.startswith('.') or not lower.endswith(extensions):
                continue
            if skip_bw_pdfs and lower.endswith('_bw.pdf'):
                continue
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                continue
            key = os.path.relpath(path, root).replace(os.sep, '/')
            documents.append(Document(path, key, _identifier(key), os.path.getsize(path), collection))
    return sorted(documents, key=lambda document: document.key)


def find_pdfs(pdf_directory, skip_bw_pdfs=True, collection=LEGACY_COLLECTION_NAME):
    return find_documents(pdf_directory, ('.pdf',), skip_bw_pdfs, collection)


def find_images(image_directory, collection=LEGACY_COLLECTION_NAME):
    return find_documents(image_directory, IMAGE_EXTENSIONS, collection=collection)


def find_collection(source, skip_bw_pdfs=True):
    """The documents of a collection of the run (deepzine.data.page_collections.CollectionSource), sorted by key;
    [] when its folder does not exist (yet)."""
    if not os.path.isdir(source.directory):
        return []
    if source.data_source == 'image_directory':
        return find_images(source.directory, source.name)
    return find_pdfs(source.directory, skip_bw_pdfs, source.name)


def what_is_looked_for(source):
    """'.pdf files' or 'png/jpg/tif files', for messages."""
    return 'png/jpg/tif files' if source.data_source == 'image_directory' else '.pdf files'

