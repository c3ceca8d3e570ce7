"""LoadDataStage end to end: local PDFs, page images, the fake archive, incremental runs, and kill-and-resume."""

import json
import os
import re
import signal
import subprocess
import sys

import h5py
import pytest
import yaml
from PIL import Image

from deepzine.data.stage import LoadDataStage
from deepzine.data.store import PageStore
from deepzine.parameters import ConfigError, describe, registry, resolve
from deepzine.test_hooks import VARIABLE as PAUSE_VARIABLE

from tests.stages import prepare_stage

from .documents import GOOD_PAGES, draw_page, pdf_bytes, write_pdf
from .fake_archive import FakeArchive

TABLE = registry([LoadDataStage])
REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_stage(tmp_path, **values):
    raw = {'load_data': True, 'data_hdf5': str(tmp_path / 'pages.hdf5'), 'data_output_size': 16,
           'conversion_workers': 1, **values}
    return prepare_stage(LoadDataStage, **raw)


def summary_number(caplog, pattern):
    found = re.findall(pattern, caplog.text)
    assert found, f'{pattern!r} not logged'
    return int(found[-1])


# --- parameters, checks, plan ---------------------------------------------------------------------------

def test_every_key_is_declared_once_with_help():
    names = set(LoadDataStage.declared())
    assert {'load_data', 'data_hdf5', 'pdf_directory', 'image_directory', 'internetarchive_collection', 'pdf_num',
            'data_output_size', 'overwrite', 'pdf_conversion_program', 'data_source', 'internetarchive_query',
            'internetarchive_host', 'internetarchive_secure', 'skip_bw_pdfs', 'download_workers',
            'conversion_workers', 'pdf_dpi', 'square_mode', 'channels', 'hdf5_compression', 'keep_page_images',
            'skip_blank_pages', 'skip_duplicate_pages', 'max_pages_per_document'} <= names
    assert all(parameter.help for parameter in LoadDataStage.declared().values())
    assert '| `hdf5_compression` | `gzip` |' in describe(TABLE)


def test_values_are_converted_and_checked():
    assert resolve({'hdf5_compression': 'none'}, TABLE)['hdf5_compression'] == 'none'
    assert resolve({'pdf_conversion_program': 'gs'}, TABLE)['pdf_conversion_program'] == 'ghostscript'
    for bad in ({'data_output_size': 300}, {'channels': 2}, {'square_mode': 'zoom'}, {'hdf5_compression': 'zip'},
                {'max_pages_per_document': -1}):
        with pytest.raises(ConfigError, match=list(bad)[0]):
            resolve(bad, TABLE)


@pytest.mark.parametrize('values, message', [
    ({'internetarchive_collection': 'two words'}, 'internetarchive_collection'),
    ({'internetarchive_host': 'https://archive.org'}, 'internetarchive_host'),
    ({'data_source': 'pdf_directory', 'pdf_directory': '/nonexistent/pdfs'}, 'pdf_directory=/nonexistent/pdfs: folder not found'),
    ({'download_pdf': False, 'pdf_directory': '/nonexistent/pdfs'}, 'folder not found (data_source is pdf_directory'),
    ({'data_source': 'image_directory'}, 'image_directory=None: folder not found'),
    ({'convert_pdf': False, 'image_directory': '/nonexistent/images'}, 'folder not found (data_source is image_directory'),
    ({'keep_page_images': True}, 'keep_page_images=true: set image_directory'),
])
def test_validate_names_the_key_and_the_problem(tmp_path, values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_stage(tmp_path, **values)


def test_plan_says_what_will_happen(tmp_path):
    text = make_stage(tmp_path, internetarchive_query='mediatype:texts', pdf_num=10).describe()
    assert 'up to 10 items matching "collection:MBLWHOI mediatype:texts" from https://archive.org' in text
    assert "pdfium, each page's longer side at 32 px, in 1 worker process" in text and 'sizes 4..16' in text
    assert str(tmp_path / 'pages.hdf5') in text and 'new file' in text
    assert 'blank pages kept, duplicate pages kept' in text and str(tmp_path / 'pages_preview.png') in text
    text = make_stage(tmp_path, pdf_dpi=50, max_pages_per_document=5, skip_blank_pages=True).describe()
    assert 'longer side at 32 px, at most 50 dpi' in text and 'at most 5 pages of each document' in text
    assert 'blank pages dropped' in text


# --- end to end -----------------------------------------------------------------------------------------

def test_local_pdfs_are_packed_with_broken_ones_reported(tmp_path, pdf_folder, caplog):
    caplog.set_level('INFO')
    path = make_stage(tmp_path, data_source='pdf_directory', pdf_directory=pdf_folder, square_mode='pad').run()
    with PageStore(path) as store:
        assert store.page_count == GOOD_PAGES and store.sizes == [4, 8, 16]
        assert store.read(16, range(GOOD_PAGES)).shape == (GOOD_PAGES, 16, 16, 3)
        assert store.provenance([0, 5, 7]) == [('item_a', 'item_a/item_a.pdf', 1), ('loose', 'loose.pdf', 1),
                                               ('loose', 'loose.pdf', 3)]
        assert store.attributes['square_mode'] == 'pad' and store.attributes['pdf_dpi'] == 0  # no dpi bound
        assert yaml.safe_load(store.attributes['config'])['pdf_directory'] == pdf_folder
    for name in ('empty.pdf', 'random.pdf', 'encrypted.pdf', 'truncated.pdf'):
        assert name in caplog.text
    assert summary_number(caplog, r'(\d+) packed now') == 2
    assert summary_number(caplog, r'packed now, (\d+) skipped') == 4
    assert 'documents skipped: 1 is encrypted' in caplog.text


@pytest.mark.parametrize('program', ['pdftoppm', 'ghostscript'])
def test_other_rasterizers_and_grey_pages_in_worker_processes(tmp_path, program):
    pdfs = tmp_path / 'pdfs'
    write_pdf(str(pdfs / 'one.pdf'), 2)
    path = make_stage(tmp_path, data_source='pdf_directory', pdf_directory=str(pdfs), pdf_conversion_program=program,
                      channels=1, pdf_dpi=50, conversion_workers=2).run()
    with PageStore(path) as store:
        assert store.channels == 1 and store.read(8, [0, 1]).shape == (2, 8, 8, 1)
        assert store.attributes['pdf_conversion_program'] == program


def test_rerun_adds_only_new_documents_and_overwrite_rebuilds(tmp_path, caplog):
    caplog.set_level('INFO')
    pdfs = tmp_path / 'pdfs'
    write_pdf(str(pdfs / 'one.pdf'), 2)
    path = make_stage(tmp_path, data_source='pdf_directory', pdf_directory=str(pdfs)).run()
    modified = os.path.getmtime(path)
    make_stage(tmp_path, data_source='pdf_directory', pdf_directory=str(pdfs)).run()
    assert 'nothing new' in caplog.text and os.path.getmtime(path) == modified
    write_pdf(str(pdfs / 'two.pdf'), 3)
    make_stage(tmp_path, data_source='pdf_directory', pdf_directory=str(pdfs)).run()
    assert summary_number(caplog, r'(\d+) already in the file') == 1
    with PageStore(path) as store:
        assert store.page_count == 5 and [row[1] for row in store.provenance(range(5))] == ['one.pdf'] * 2 + ['two.pdf'] * 3
    with pytest.raises(ConfigError, match='square_mode'):
        make_stage(tmp_path, data_source='pdf_directory', pdf_directory=str(pdfs), square_mode='crop')
    make_stage(tmp_path, data_source='pdf_directory', pdf_directory=str(pdfs), square_mode='crop', overwrite=True).run()
    with PageStore(path) as store:
        assert store.page_count == 5 and store.attributes['square_mode'] == 'crop'


def test_page_images_are_a_source_and_can_be_kept_from_pdfs(tmp_path):
    images = tmp_path / 'images'
    (images / 'scans').mkdir(parents=True)
    draw_page(1, (300, 400)).save(images / 'scans' / 'a.png')
    draw_page(2, (300, 400)).save(images / 'b.JPG')
    frames = [draw_page(number, (300, 400)) for number in (3, 4)]
    frames[0].save(images / 'c.tif', save_all=True, append_images=frames[1:])
    (images / 'notes.txt').write_text('not a page')
    path = make_stage(tmp_path, data_source='image_directory', image_directory=str(images)).run()
    with PageStore(path) as store:
        assert store.page_count == 4
        assert store.provenance(range(4)) == [('b', 'b.JPG', 1), ('c', 'c.tif', 1), ('c', 'c.tif', 2),
                                              ('scans', 'scans/a.png', 1)]

    pdfs, kept = tmp_path / 'pdfs', tmp_path / 'kept'
    write_pdf(str(pdfs / 'item' / 'doc.pdf'), 2)
    make_stage(tmp_path, data_source='pdf_directory', pdf_directory=str(pdfs), image_directory=str(kept),
               keep_page_images=True, data_hdf5=str(tmp_path / 'kept.hdf5'), pdf_dpi=40, data_output_size=256).run()
    assert sorted(os.listdir(kept / 'item')) == ['doc-0001.png', 'doc-0002.png']
    # a letter page at the pdf_dpi bound (40 dpi), below the longer side of 512 px that 256 px pages would get
    assert Image.open(kept / 'item' / 'doc-0001.png').size == (340, 440)


def test_internet_archive_source_end_to_end_and_a_second_run_downloads_nothing(tmp_path, caplog):
    caplog.set_level('INFO')
    items = {'first': {'first.pdf': pdf_bytes(2), 'first_bw.pdf': pdf_bytes(2)}, 'second': {'second.pdf': pdf_bytes(3)}}
    with FakeArchive('COLL', items) as fake:
        fake.add_fault('second', 'second.pdf', '500', 'truncate')
        fake.extra_listed_files['first'].append('../../evil.pdf')
        values = dict(internetarchive_collection='COLL', internetarchive_host=fake.host, internetarchive_secure=False,
                      pdf_directory=str(tmp_path / 'pdfs'), download_timeout_sec=2)
        path = make_stage(tmp_path, **values).run()
        with PageStore(path) as store:
            assert store.page_count == 5
            assert sorted({row[1] for row in store.provenance(range(5))}) == ['first/first.pdf', 'second/second.pdf']
        assert "refused first/../../evil.pdf" in caplog.text
        assert '2 items: 2 PDFs downloaded' in caplog.text
        downloads_before, modified = len(fake.downloads()), os.path.getmtime(path)
        make_stage(tmp_path, **values).run()
        assert len(fake.downloads()) == downloads_before and os.path.getmtime(path) == modified
    assert not (tmp_path / 'evil.pdf').exists() and not (tmp_path.parent / 'evil.pdf').exists()


def test_no_documents_at_all_is_a_config_error(tmp_path):
    (tmp_path / 'pdfs').mkdir()
    with pytest.raises(ConfigError, match='no documents found'):
        make_stage(tmp_path, data_source='pdf_directory', pdf_directory=str(tmp_path / 'pdfs')).run()


# --- kill and resume ------------------------------------------------------------------------------------

DOCUMENTS = 6
KILLABLE_RUN = '''
import json, sys
from deepzine.data import sources
from deepzine.data.pack import pack_documents
from deepzine.data.stage import LoadDataStage
from deepzine.data.writer import PageWriter
from tests.stages import prepare_stage
plan = prepare_stage(LoadDataStage, **json.loads(sys.argv[1])).plan
# The stage's own packing, each document committed on its own (commit_interval_sec 0) as a slow real run would
writer = PageWriter(plan.page_file.path, plan.render.schema(), plan.file_attributes, commit_interval_sec=0,
                    collections=[collection.entry() for collection in plan.collections])
documents = [document for collection in plan.collections for document in sources.find_collection(collection)]
pack_documents(documents, writer, plan.render, plan.workers, progress=False)
writer.finish()
'''


def kill_at_the_first_commit(tmp_path, config):
    """Run KILLABLE_RUN with `config`, held by the test hook right after its first committed segment, and kill it
    there with its workers (a session of its own, so the kill reaches them too, as an out-of-memory kill of the job
    would); returns the hook's line."""
    process = subprocess.Popen([sys.executable, '-c', KILLABLE_RUN, json.dumps(config)], cwd=REPOSITORY,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               env={**os.environ, PAUSE_VARIABLE: f'segment committed={tmp_path / "never"}'})
    try:
        paused = next((line for line in process.stderr if line.startswith('test hook: paused at segment committed')),
                      None)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert paused, 'the run ended before its first commit'
    return paused


def test_a_run_killed_mid_way_resumes_without_redoing_finished_documents(tmp_path, caplog):
    caplog.set_level('INFO')
    pdfs = tmp_path / 'pdfs'
    for number in range(DOCUMENTS):
        write_pdf(str(pdfs / f'doc{number:02d}.pdf'), 3)
    config = {'load_data': True, 'data_source': 'pdf_directory', 'pdf_directory': str(pdfs), 'data_output_size': 16,
              'data_hdf5': str(tmp_path / 'pages.hdf5'), 'pdf_conversion_program': 'ghostscript', 'pdf_dpi': 150,
              'conversion_workers': 2}
    paused = kill_at_the_first_commit(tmp_path, config)
    assert '(segment-000001.hdf5, 1 documents done in all)' in paused, paused
    assert not os.path.exists(config['data_hdf5']) and os.path.isdir(config['data_hdf5'] + '.partial')

    prepare_stage(LoadDataStage, **config).run()
    assert summary_number(caplog, r'(\d+) already in the file') == 1
    with PageStore(config['data_hdf5']) as store:
        rows = store.provenance(range(store.page_count))
    expected = [(f'doc{number:02d}', f'doc{number:02d}.pdf', page) for number in range(DOCUMENTS) for page in (1, 2, 3)]
    assert sorted(rows) == expected
    with h5py.File(config['data_hdf5'], 'r') as handle:
        assert list(handle['documents/status'].asstr()[:]) == ['packed'] * DOCUMENTS
