"""The page writer's own duties: page hashes (also for files written before them), the schema, the final clean-up."""

import json
import os
import shutil
import zlib

import h5py
import numpy as np
import pytest

from deepzine.data.pack import IMAGE_FILES, RenderSettings
from deepzine.data.page_checks import page_digest
from deepzine.data.page_file_layout import GZIP_LEVEL
from deepzine.data.squaring import build_pyramid
from deepzine.data.writer import PageWriter
from deepzine.parameters import ConfigError

SETTINGS = RenderSettings('pdfium', 16, 'stretch', 3)


def pages(values):
    return build_pyramid(np.stack([np.full((16, 16, 3), value, np.uint8) for value in values]))


def new_writer(path, settings=SETTINGS):
    return PageWriter(path, settings.schema(), {}, commit_interval_sec=0)


def add_document(writer, name, values, collection=None, **options):
    writer.append_pages(pages(values), [(name, f'{name}.pdf', number) for number in range(1, len(values) + 1)],
                        collection=collection, **options)
    writer.commit_document(f'{name}.pdf', 100, len(values), 0, 'packed', collection=collection)


def stored_hashes(path):
    with h5py.File(path, 'r') as handle:
        return [value.decode() for value in handle['pages/sha1'][:]]


def test_render_settings_are_the_schema_of_the_page_file():
    assert SETTINGS.schema() == {'output_size': 16, 'channels': 3, 'square_mode': 'stretch', 'pdf_dpi': 0,
                                 'pdf_conversion_program': 'pdfium'}
    assert RenderSettings(IMAGE_FILES, 16, 'pad', 1, max_dpi=None).schema()['pdf_conversion_program'] == 'image files'
    assert RenderSettings('ghostscript', 16, 'pad', 1, max_dpi=150).schema()['pdf_dpi'] == 150


def test_every_page_is_stored_with_its_hash_computed_here_when_not_given(tmp_path):
    path = str(tmp_path / 'pages.hdf5')
    writer = new_writer(path)
    add_document(writer, 'plain', [10, 20])
    compressed = {size: [zlib.compress(page.tobytes(), GZIP_LEVEL) for page in level]
                  for size, level in pages([30]).items()}
    writer.append_pages(compressed, [('zipped', 'zipped.pdf', 1)], compressed=True)
    writer.commit_document('zipped.pdf', 100, 1, 0, 'packed')
    assert {page_digest(page) for page in pages([10, 20, 30])[16]} == writer.page_digests
    writer.finish()
    assert stored_hashes(path) == [page_digest(page).hex() for page in pages([10, 20, 30])[16]]


def test_a_file_written_before_page_hashes_is_hashed_once_and_gets_the_column(tmp_path, caplog):
    caplog.set_level('INFO')
    path = str(tmp_path / 'pages.hdf5')
    writer = new_writer(path)
    add_document(writer, 'old', [1, 2])
    writer.finish()
    with h5py.File(path, 'a') as handle:
        del handle['pages/sha1']  # as the first versions of DeepZine wrote it
    later = new_writer(path)
    assert later.page_digests == {page_digest(page) for page in pages([1, 2])[16]}
    assert 'hashing the 2 pages' in caplog.text
    add_document(later, 'new', [3])
    later.finish()
    assert stored_hashes(path) == [page_digest(page).hex() for page in pages([1, 2, 3])[16]]


@pytest.mark.parametrize('run_record, logged', [
    (True, 'its pages are already in'),             # killed after the final rename, before the clean-up began
    (False, 'left over from the run that finished'),  # killed while deleting the folder, after run.json went
], ids=['clean-up not begun', 'clean-up cut short'])
def test_a_segment_folder_already_merged_is_removed_not_merged_twice(tmp_path, caplog, run_record, logged):
    """The folder's pages are already in the finished file: it goes, and the next document is added once."""
    caplog.set_level('INFO')
    path = str(tmp_path / 'pages.hdf5')
    writer = new_writer(path)
    add_document(writer, 'first', [1, 2])
    shutil.copytree(path + '.partial', str(tmp_path / 'kept'))
    writer.finish()
    shutil.copytree(str(tmp_path / 'kept'), path + '.partial')
    if not run_record:
        os.remove(os.path.join(path + '.partial', 'run.json'))
    again = new_writer(path)
    assert logged in caplog.text
    assert again.resumed_documents == 0 and set(again.finished_documents) == {('pages', 'first.pdf')}
    add_document(again, 'second', [3])
    again.finish()
    assert len(stored_hashes(path)) == 3


def test_segments_of_another_run_without_their_run_record_are_still_reported(tmp_path, caplog):
    path = str(tmp_path / 'pages.hdf5')
    other = new_writer(str(tmp_path / 'other.hdf5'))
    add_document(other, 'elsewhere', [9])
    other.close()
    shutil.copytree(str(tmp_path / 'other.hdf5.partial'), path + '.partial')
    os.remove(os.path.join(path + '.partial', 'run.json'))
    new_writer(path)
    assert 'discarding' in caplog.text


def test_collections_are_renumbered_by_name_into_the_files_list(tmp_path):
    """The file's collections keep their numbers; a run's collection the file has gets its pages, a new one follows."""
    path = str(tmp_path / 'pages.hdf5')
    first = PageWriter(path, SETTINGS.schema(), {}, collections=[{'name': 'a'}, {'name': 'b'}])
    add_document(first, 'doc', [1], collection='a')
    add_document(first, 'doc', [2], collection='b')
    first.finish()
    second = PageWriter(path, SETTINGS.schema(), {}, commit_interval_sec=0, collections=[{'name': 'c'}, {'name': 'b'}])
    assert set(second.finished_documents) == {('a', 'doc.pdf'), ('b', 'doc.pdf')}
    add_document(second, 'doc', [3], collection='c')
    add_document(second, 'more', [4], collection='b')
    assert second.page_counts() == {'a': 1, 'b': 2, 'c': 1}
    second.finish()
    with h5py.File(path, 'r') as handle:
        assert [entry['name'] for entry in json.loads(handle.attrs['collections'])] == ['a', 'b', 'c']
        assert list(handle['pages/collection'][:]) == [0, 1, 2, 1]
        assert list(handle['documents/collection'][:]) == [0, 1, 2, 1]
        assert list(handle['documents/first_page_index'][:]) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="collection 'd' is not one of this run's"):
        second.append_pages(pages([5]), [('x', 'x.pdf', 1)], collection='d')


def test_a_collection_left_without_pages_is_refused_and_the_segments_stay(tmp_path):
    path = str(tmp_path / 'pages.hdf5')
    writer = PageWriter(path, SETTINGS.schema(), {}, commit_interval_sec=0,
                        collections=[{'name': 'good', 'data_source': 'pdf_directory', 'source': '/data/good'},
                                     {'name': 'bad', 'data_source': 'pdf_directory', 'source': '/data/bad'}])
    add_document(writer, 'doc', [1], collection='good')
    writer.commit_document('broken.pdf', 10, 0, 0, 'skipped: is an empty file', collection='bad')
    with pytest.raises(ConfigError, match=r'^pdf_directory=/data/bad: no usable pages in collection bad; '):
        writer.finish()
    assert not os.path.exists(path) and len(os.listdir(path + '.partial')) == 3  # run.json and two segments
