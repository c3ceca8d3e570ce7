"""LoadDataStage with several collections: lists of folders or archive collections, collections added run by run
(of another kind, to a file written before collections existed), renaming, empty collections, page images kept
per collection, and a killed run resumed."""

import json
import os
import re

import h5py
import pytest

from deepzine.data.stage import LoadDataStage
from deepzine.data.store import PageStore, read_page_file_facts
from deepzine.parameters import ConfigError

from tests.stages import prepare_stage

from .documents import draw_page, pdf_bytes, write_empty_file, write_pdf, write_random_bytes
from .fake_archive import FakeArchive
from .test_stage import kill_at_the_first_commit


def make_stage(tmp_path, **values):
    raw = {'load_data': True, 'data_hdf5': str(tmp_path / 'pages.hdf5'), 'data_output_size': 16,
           'conversion_workers': 1, **values}
    return prepare_stage(LoadDataStage, **raw)


def documents_of(path):
    """[(collection name, file)] of every document row of a page file."""
    with h5py.File(path, 'r') as handle:
        names = [entry['name'] for entry in json.loads(handle.attrs['collections'])]
        return [(names[number], file) for number, file in zip(handle['documents/collection'][:],
                                                               handle['documents/file'].asstr()[:])]


def entries_of(path):
    with h5py.File(path, 'r') as handle:
        return json.loads(handle.attrs['collections'])


def write_images(folder, count, first=1):
    os.makedirs(folder, exist_ok=True)
    for number in range(first, first + count):
        draw_page(number, (300, 400)).save(os.path.join(folder, f'page{number}.png'))


def test_two_folders_holding_a_same_named_pdf_are_two_documents_of_two_collections(tmp_path, caplog):
    caplog.set_level('INFO')
    write_pdf(str(tmp_path / 'a' / 'manuals' / 'manual.pdf'), 3)
    write_pdf(str(tmp_path / 'b' / 'music' / 'manual.pdf'), 2)
    folders = [str(tmp_path / 'a' / 'manuals'), str(tmp_path / 'b' / 'music')]
    stage = make_stage(tmp_path, data_source='pdf_directory', pdf_directory=folders)
    assert stage.plan.page_file.collections == ('manuals', 'music') and stage.plan.page_file.page_count is None
    assert 'collection 1, music: 1 documents under' in stage.describe()
    path = stage.run()
    facts = read_page_file_facts(path)
    assert facts.collections == ('manuals', 'music') and facts.collection_page_counts == (3, 2)
    assert documents_of(path) == [('manuals', 'manual.pdf'), ('music', 'manual.pdf')]
    assert [(entry['name'], entry['source'], entry['pages']) for entry in entries_of(path)] == [
        ('manuals', folders[0], 3), ('music', folders[1], 2)]
    assert re.search(r'collection 1, music: 1 documents found, 0 already in the file, 1 packed now, 0 skipped; '
                     r'2 pages written now, 2 in all', caplog.text)

    write_pdf(str(tmp_path / 'b' / 'music' / 'score.pdf'), 4)
    make_stage(tmp_path, data_source='pdf_directory', pdf_directory=folders).run()
    assert 'packing 1 documents (2 already in the page file)' in caplog.text
    with PageStore(path) as store:
        assert store.collection_page_counts == (3, 6) and list(store.collection_numbers) == [0] * 3 + [1] * 6
    caplog.clear()
    make_stage(tmp_path, data_source='pdf_directory', pdf_directory=folders).run()
    assert 'nothing new; all 3 documents are already in' in caplog.text


def test_a_list_of_image_folders_is_a_collection_each(tmp_path):
    write_images(tmp_path / 'scans', 2)
    write_images(tmp_path / 'photos', 3)
    path = make_stage(tmp_path, data_source='image_directory',
                      image_directory=[str(tmp_path / 'scans'), str(tmp_path / 'photos')]).run()
    with PageStore(path) as store:
        assert store.collection_names == ('scans', 'photos') and store.collection_page_counts == (2, 3)
        assert store.attributes['pdf_conversion_program'] == 'image files'


def test_a_list_of_archive_collections_downloads_each_into_its_own_folder(tmp_path, caplog):
    caplog.set_level('INFO')
    with FakeArchive('MANUALS', {'m1': {'m1.pdf': pdf_bytes(2)}, 'm2': {'m2.pdf': pdf_bytes(1)}}) as fake:
        fake.add_collection('MUSIC', {'s1': {'s1.pdf': pdf_bytes(3)}})
        values = dict(internetarchive_host=fake.host, internetarchive_secure=False, pdf_directory=str(tmp_path / 'pdfs'))
        with pytest.raises(ConfigError, match=r'internetarchive_collection=NONE: no items found'):
            make_stage(tmp_path, internetarchive_collection=['MANUALS', 'NONE'], **values).run()
        assert fake.downloads() == [] and not (tmp_path / 'pdfs').exists()  # every search before any download

        stage = make_stage(tmp_path, internetarchive_collection=['MANUALS', 'MUSIC'], collection_names=['manuals', 'music'],
                           **values)
        assert f'into {tmp_path}/pdfs/MUSIC/<identifier>/' in stage.describe()
        path = stage.run()
    for relative in ('MANUALS/m1/m1.pdf', 'MANUALS/m2/m2.pdf', 'MUSIC/s1/s1.pdf'):
        assert (tmp_path / 'pdfs' / relative).is_file()
    assert '3 items: 3 PDFs downloaded' in caplog.text
    with PageStore(path) as store:
        assert store.collection_names == ('manuals', 'music') and store.collection_page_counts == (3, 3)
        assert store.provenance([0, 5]) == [('m1', 'm1/m1.pdf', 1), ('s1', 's1/s1.pdf', 3)]
    assert [(entry['data_source'], entry['source']) for entry in entries_of(path)] == [
        ('internetarchive', 'MANUALS'), ('internetarchive', 'MUSIC')]


def test_page_images_join_a_file_of_pdf_pages_as_a_collection_of_their_own(tmp_path):
    write_pdf(str(tmp_path / 'manuals' / 'one.pdf'), 2)
    write_images(tmp_path / 'cards', 2)
    pdfs = dict(data_source='pdf_directory', pdf_directory=str(tmp_path / 'manuals'), pdf_dpi=50)
    path = make_stage(tmp_path, **pdfs).run()
    assert read_page_file_facts(path).collections == ('manuals',)
    images = make_stage(tmp_path, data_source='image_directory', image_directory=str(tmp_path / 'cards'))
    assert images.plan.page_file.collections == ('manuals', 'cards')
    assert 'collection 0, manuals: 2 pages in the file, kept as they are' in images.describe()
    images.run()
    with PageStore(path) as store:
        assert store.collection_names == ('manuals', 'cards') and list(store.collection_numbers) == [0, 0, 1, 1]
        # the file's pdf_* are those of its PDF pages; each collection says what it was made with
        assert store.attributes['pdf_dpi'] == 50 and store.attributes['pdf_conversion_program'] == 'pdfium'
    assert [entry['pdf_conversion_program'] for entry in entries_of(path)] == ['pdfium', 'image files']
    with pytest.raises(ConfigError, match=r"pdf_dpi: file has 50, config gives 0"):
        make_stage(tmp_path, data_source='pdf_directory', pdf_directory=str(tmp_path / 'manuals'))
    with pytest.raises(ConfigError, match=r"square_mode: file has 'stretch', config gives 'pad'"):
        make_stage(tmp_path, data_source='image_directory', image_directory=str(tmp_path / 'cards'), square_mode='pad')
    write_pdf(str(tmp_path / 'manuals' / 'two.pdf'), 1)
    make_stage(tmp_path, **pdfs).run()
    assert documents_of(path) == [('manuals', 'one.pdf'), ('cards', 'page1.png'), ('cards', 'page2.png'),
                                  ('manuals', 'two.pdf')]
    assert read_page_file_facts(path).collection_page_counts == (3, 2)


def test_a_file_written_before_collections_keeps_its_pages_as_collection_0_when_one_is_added(tmp_path, caplog):
    caplog.set_level('INFO')
    write_pdf(str(tmp_path / 'My Manuals' / 'one.pdf'), 2)
    write_images(tmp_path / 'cards', 1)
    old = dict(data_source='pdf_directory', pdf_directory=str(tmp_path / 'My Manuals'))
    path = make_stage(tmp_path, **old).run()
    with h5py.File(path, 'a') as handle:  # as DeepZine wrote it before collections
        del handle['pages/collection'], handle['documents/collection'], handle.attrs['collections']
    assert read_page_file_facts(path).collections == ('My_Manuals',)
    make_stage(tmp_path, **old).run()  # its own source again: the ordinary incremental run
    assert 'nothing new' in caplog.text

    stage = make_stage(tmp_path, data_source='image_directory', image_directory=str(tmp_path / 'cards'))
    assert stage.plan.page_file.collections == ('My_Manuals', 'cards')
    stage.run()
    with PageStore(path) as store:
        assert store.collection_names == ('My_Manuals', 'cards') and list(store.collection_numbers) == [0, 0, 1]
        assert [row[1] for row in store.provenance(range(3))] == ['one.pdf', 'one.pdf', 'page1.png']
    assert documents_of(path) == [('My_Manuals', 'one.pdf'), ('cards', 'page1.png')]
    assert entries_of(path)[0] == {'name': 'My_Manuals', 'data_source': 'pdf_directory',
                                   'source': str(tmp_path / 'My Manuals'), 'pdf_conversion_program': 'pdfium',
                                   'pdf_dpi': 0, 'pages': 2}


def test_collection_names_rename_and_a_name_the_file_has_adds_to_that_collection(tmp_path):
    for folder, name, pages in (('x', 'doc', 1), ('y', 'doc', 2), ('z', 'other', 3)):
        write_pdf(str(tmp_path / folder / f'{name}.pdf'), pages)
    path = make_stage(tmp_path, data_source='pdf_directory', pdf_directory=[str(tmp_path / 'x'), str(tmp_path / 'y')],
                      collection_names=['first', 'second']).run()
    assert read_page_file_facts(path).collections == ('first', 'second')
    stage = make_stage(tmp_path, data_source='pdf_directory', pdf_directory=str(tmp_path / 'z'),
                       collection_names=['second'])
    assert stage.plan.page_file.collections == ('first', 'second')
    stage.run()
    assert read_page_file_facts(path).collection_page_counts == (1, 5)
    assert documents_of(path) == [('first', 'doc.pdf'), ('second', 'doc.pdf'), ('second', 'other.pdf')]


def test_overwrite_promises_only_the_collections_of_the_run(tmp_path):
    write_pdf(str(tmp_path / 'x' / 'doc.pdf'), 1)
    write_pdf(str(tmp_path / 'y' / 'doc.pdf'), 1)
    make_stage(tmp_path, data_source='pdf_directory', pdf_directory=[str(tmp_path / 'x'), str(tmp_path / 'y')]).run()
    stage = make_stage(tmp_path, data_source='pdf_directory', pdf_directory=str(tmp_path / 'y'), overwrite=True)
    assert stage.plan.page_file.collections == ('y',)
    assert read_page_file_facts(stage.run()).collections == ('y',)


def test_page_images_are_kept_in_a_folder_per_collection(tmp_path):
    write_pdf(str(tmp_path / 'manuals' / 'doc.pdf'), 1)
    write_pdf(str(tmp_path / 'music' / 'doc.pdf'), 2)
    make_stage(tmp_path, data_source='pdf_directory', pdf_directory=[str(tmp_path / 'manuals'), str(tmp_path / 'music')],
               keep_page_images=True, image_directory=str(tmp_path / 'kept')).run()
    assert sorted(os.listdir(tmp_path / 'kept')) == ['manuals', 'music']
    assert os.listdir(tmp_path / 'kept' / 'manuals') == ['doc-0001.png']
    assert sorted(os.listdir(tmp_path / 'kept' / 'music')) == ['doc-0001.png', 'doc-0002.png']


def test_a_collection_without_usable_pages_fails_the_run_and_a_run_without_it_goes_on(tmp_path, caplog):
    write_pdf(str(tmp_path / 'good' / 'doc.pdf'), 2)
    (tmp_path / 'broken').mkdir()
    write_random_bytes(str(tmp_path / 'broken' / 'random.pdf'))
    write_empty_file(str(tmp_path / 'broken' / 'empty.pdf'))
    both = [str(tmp_path / 'good'), str(tmp_path / 'broken')]
    with pytest.raises(ConfigError) as error:
        make_stage(tmp_path, data_source='pdf_directory', pdf_directory=both).run()
    assert str(error.value).startswith(f'pdf_directory={tmp_path / "broken"}: no usable pages in collection broken;')
    assert 'collection broken: none of its 2 new documents gave a usable page' in caplog.text
    assert not (tmp_path / 'pages.hdf5').exists() and (tmp_path / 'pages.hdf5.partial').is_dir()

    caplog.clear()
    caplog.set_level('INFO')
    path = make_stage(tmp_path, data_source='pdf_directory', pdf_directory=both[:1]).run()
    assert 'resuming the interrupted run' in caplog.text and 'collection broken: this run does not list it' in caplog.text
    assert 'packing' not in caplog.text  # the good collection's document was done before
    assert read_page_file_facts(path).collections == ('good',) and documents_of(path) == [('good', 'doc.pdf')]
    assert sorted(os.listdir(tmp_path)) == ['broken', 'good', 'pages.hdf5', 'pages_preview.png']


def test_a_run_adding_collections_killed_mid_way_resumes_with_every_page_once(tmp_path, caplog):
    caplog.set_level('INFO')
    for folder in ('manuals', 'music', 'cards'):
        for number in range(3):
            write_pdf(str(tmp_path / folder / f'doc{number}.pdf'), 2)
    config = {'load_data': True, 'data_source': 'pdf_directory', 'data_output_size': 16, 'conversion_workers': 2,
              'data_hdf5': str(tmp_path / 'pages.hdf5'), 'pdf_directory': [str(tmp_path / 'manuals')]}
    prepare_stage(LoadDataStage, **config).run()
    config['pdf_directory'] = [str(tmp_path / folder) for folder in ('manuals', 'music', 'cards')]

    paused = kill_at_the_first_commit(tmp_path, config)

    assert '(segment-000001.hdf5, 4 documents done in all)' in paused, paused  # the file's 3 and one of music
    prepare_stage(LoadDataStage, **config).run()
    assert 'resuming the interrupted run' in caplog.text
    assert re.search(r'collection 1, music: 3 documents found, 1 already in the file, 2 packed now', caplog.text)
    with PageStore(config['data_hdf5']) as store:
        assert store.collection_names == ('manuals', 'music', 'cards') and store.collection_page_counts == (6, 6, 6)
        rows = sorted(zip(store.collection_numbers, store.provenance(range(store.page_count))))
    assert rows == [(collection, (f'doc{number}', f'doc{number}.pdf', page))
                    for collection in range(3) for number in range(3) for page in (1, 2)]
