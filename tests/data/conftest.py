"""Fixtures for the data tests: no 3 s sleeps in the archive client, and a small folder of good and broken PDFs."""

import pytest

from .documents import (write_empty_file, write_encrypted_pdf, write_pdf, write_random_bytes,
                        write_truncated_pdf)


@pytest.fixture(autouse=True)
def no_client_sleep(monkeypatch):
    """The internetarchive client sleeps 3 s before each of its own retries; the fake archive needs no rest."""
    import internetarchive.files
    monkeypatch.setattr(internetarchive.files, 'sleep', lambda seconds: None)


@pytest.fixture
def pdf_folder(tmp_path):
    """pdfs/: two good PDFs (5 portrait pages in a sub-folder, 3 landscape pages; GOOD_PAGES) and four broken files."""
    folder = tmp_path / 'pdfs'
    write_pdf(str(folder / 'item_a' / 'item_a.pdf'), 5)
    write_pdf(str(folder / 'loose.pdf'), 3, size=(792, 612))
    write_truncated_pdf(str(folder / 'truncated.pdf'))
    write_random_bytes(str(folder / 'random.pdf'))
    write_empty_file(str(folder / 'empty.pdf'))
    write_encrypted_pdf(str(folder / 'encrypted.pdf'))
    return str(folder)
