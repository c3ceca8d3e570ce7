"""Which pages reach the page file: bounded rendering of huge pages, blank and repeated pages, long volumes."""

import re
import shutil

import h5py
import numpy as np
import pytest

from deepzine.data.pack import RenderSettings, pages_per_chunk
from deepzine.data.page_checks import page_digest
from deepzine.data.stage import LoadDataStage
from deepzine.data.store import PageStore

from tests.stages import prepare_stage

from .documents import write_huge_page_pdf, write_kinds_pdf, write_numbered_pages_pdf, write_pdf

KINDS = ('white', 'line of text', 'page number', 'text', 'faint border')  # blank: 1, 3, 5


def load_data(tmp_path, caplog, **values):
    """Run load_data on tmp_path/pdfs at 32 px; returns (page file path, the summary lines logged by this run)."""
    caplog.clear()
    raw = {'load_data': True, 'data_source': 'pdf_directory', 'pdf_directory': str(tmp_path / 'pdfs'),
           'data_hdf5': str(tmp_path / 'pages.hdf5'), 'data_output_size': 32, 'conversion_workers': 1, **values}
    path = prepare_stage(LoadDataStage, **raw).run()
    return path, caplog.text


def stored_pages(path):
    """[(file, page number)] of every stored page, in order."""
    with PageStore(path) as store:
        return [(file, number) for _, file, number in store.provenance(range(store.page_count))]


def test_a_huge_page_is_packed_like_any_other(tmp_path, caplog):
    """A 333 x 433 inch page (a 1000 x 1300 scan stored at 3 dpi) used to ask PDFium for 4.3 GB and be skipped."""
    caplog.set_level('INFO')
    write_huge_page_pdf(str(tmp_path / 'pdfs' / 'huge.pdf'))
    path, log = load_data(tmp_path, caplog)
    assert stored_pages(path) == [('huge.pdf', 1)]
    with PageStore(path) as store:
        page = store.read(32, [0])[0]
    assert page[3:5].mean() < 100 < page[8:].mean()  # the black bar across the top of the scan (rows 100-200 of 1300)


def test_chunks_are_sized_by_the_bounded_rendering():
    assert pages_per_chunk(RenderSettings('pdfium', 256, 'stretch', 3)) == 16
    # 1024 px pages render at most 2048 x 2048 x 3 bytes (12 MiB): 5 to a chunk of at most 64 MiB
    assert pages_per_chunk(RenderSettings('pdfium', 1024, 'stretch', 3, max_dpi=2400)) == 5


def test_blank_pages_are_counted_and_dropped_only_when_asked(tmp_path, caplog):
    caplog.set_level('INFO')
    write_kinds_pdf(str(tmp_path / 'pdfs' / 'kinds.pdf'), KINDS)
    path, log = load_data(tmp_path, caplog)
    assert stored_pages(path) == [('kinds.pdf', number) for number in range(1, 6)]
    assert 'blank pages: 3 kept (skip_blank_pages: true drops them)' in log
    path, log = load_data(tmp_path, caplog, skip_blank_pages=True, overwrite=True)
    assert stored_pages(path) == [('kinds.pdf', 2), ('kinds.pdf', 4)]
    assert 'blank pages: 3 dropped (skip_blank_pages: true)' in log and 'pages: 2 written now' in log


def test_repeated_pages_across_documents_are_counted_and_dropped_when_asked(tmp_path, caplog):
    caplog.set_level('INFO')
    write_numbered_pages_pdf(str(tmp_path / 'pdfs' / 'a.pdf'), 3)
    write_numbered_pages_pdf(str(tmp_path / 'pdfs' / 'b_copy' / 'b.pdf'), 3)  # the same pages in another item
    path, log = load_data(tmp_path, caplog)
    assert len(stored_pages(path)) == 6 and 'same pixels as a page stored before): 3 kept' in log
    path, log = load_data(tmp_path, caplog, skip_duplicate_pages=True, overwrite=True)
    assert stored_pages(path) == [('a.pdf', 1), ('a.pdf', 2), ('a.pdf', 3)]
    assert '): 3 dropped, the first copy kept (skip_duplicate_pages: true)' in log
    with h5py.File(path, 'r') as handle:
        assert list(handle['documents/status'].asstr()[:]) == ['packed', 'skipped: every page was blank or a duplicate']
        with PageStore(path) as store:
            expected = [page_digest(page).hex() for page in store.read(32, range(3))]
        assert [value.decode() for value in handle['pages/sha1'][:]] == expected


def test_repeated_pages_are_found_across_incremental_runs(tmp_path, caplog):
    caplog.set_level('INFO')
    write_numbered_pages_pdf(str(tmp_path / 'pdfs' / 'first.pdf'), 3)
    load_data(tmp_path, caplog, skip_duplicate_pages=True)
    write_numbered_pages_pdf(str(tmp_path / 'pdfs' / 'later.pdf'), 4)  # pages 1-3 as in first.pdf, then a new one
    path, log = load_data(tmp_path, caplog, skip_duplicate_pages=True)
    assert stored_pages(path) == [('first.pdf', 1), ('first.pdf', 2), ('first.pdf', 3), ('later.pdf', 4)]
    assert re.search(r'duplicate pages .*: 3 dropped', log) and '1 already in the file' in log


def test_a_repeated_page_within_one_document_keeps_its_first_copy(tmp_path, caplog):
    caplog.set_level('INFO')
    write_pdf(str(tmp_path / 'pdfs' / 'same.pdf'), 1)
    shutil.copy(tmp_path / 'pdfs' / 'same.pdf', tmp_path / 'pdfs' / 'same_again.pdf')
    write_kinds_pdf(str(tmp_path / 'pdfs' / 'two_blank.pdf'), ('white', 'white'))
    path, log = load_data(tmp_path, caplog, skip_duplicate_pages=True)
    assert stored_pages(path) == [('same.pdf', 1), ('two_blank.pdf', 1)]
    assert '): 2 dropped' in log and 'blank pages: 2 kept' in log


def test_long_documents_keep_the_same_pages_spread_through_them_on_every_run(tmp_path, caplog):
    caplog.set_level('INFO')
    write_numbered_pages_pdf(str(tmp_path / 'pdfs' / 'volume.pdf'), 12)
    write_numbered_pages_pdf(str(tmp_path / 'pdfs' / 'report.pdf'), 3)
    path, log = load_data(tmp_path, caplog, max_pages_per_document=5)
    expected = [('report.pdf', 1), ('report.pdf', 2), ('report.pdf', 3)] + [('volume.pdf', number)
                                                                          for number in (2, 4, 7, 9, 11)]
    assert stored_pages(path) == expected
    assert 'pages left out by max_pages_per_document=5: 7' in log
    with PageStore(path) as store:
        first_run = store.read(32, range(store.page_count))
    path, _ = load_data(tmp_path, caplog, max_pages_per_document=5, overwrite=True, conversion_workers=2)
    assert stored_pages(path) == expected
    with PageStore(path) as store:
        assert np.array_equal(store.read(32, range(store.page_count)), first_run)


@pytest.mark.parametrize('program', ['pdftoppm', 'ghostscript'])
def test_other_rasterizers_render_the_chosen_pages_of_documents_with_mixed_page_sizes(tmp_path, caplog, program):
    caplog.set_level('INFO')
    write_numbered_pages_pdf(str(tmp_path / 'pdfs' / 'volume.pdf'), 6)
    write_huge_page_pdf(str(tmp_path / 'pdfs' / 'zz_huge.pdf'))
    path, log = load_data(tmp_path, caplog, pdf_conversion_program=program, max_pages_per_document=3)
    assert stored_pages(path) == [('volume.pdf', 2), ('volume.pdf', 4), ('volume.pdf', 6), ('zz_huge.pdf', 1)]

