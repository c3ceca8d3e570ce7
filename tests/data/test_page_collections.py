"""Collections: their names (from folders, identifiers or collection_names), where their documents are, and every
bad input refused in one line naming the key before anything is written."""

import os
import re

import pytest
import yaml

from deepzine.cli import EXIT_CONFIG_ERROR, main
from deepzine.data.page_collections import collection_entries_of, collection_names_of, name_of_folder, plan_collections
from deepzine.data.stage import LoadDataStage
from deepzine.parameters import ConfigError, registry, resolve

from tests.stages import prepare_stage

from .documents import write_pdf

TABLE = registry([LoadDataStage])


def test_a_folder_gives_a_name_usable_in_file_names():
    assert name_of_folder('/data/manuals') == 'manuals' and name_of_folder('/data/manuals/') == 'manuals'
    assert name_of_folder('/data/My Scans (1900)') == 'My_Scans_1900_'
    assert name_of_folder('/data/.hidden') == 'hidden' and name_of_folder('/data/v1.2-final_b') == 'v1.2-final_b'
    assert name_of_folder('/') == 'pages' and name_of_folder('/data/!!!') == 'pages'


def test_a_file_of_before_reads_as_one_collection_named_after_its_source():
    folder = {'data_source': 'pdf_directory', 'source_directory': '/data/My Scans', 'pdf_conversion_program': 'pdfium',
              'pdf_dpi': 0}
    assert collection_names_of(folder) == ('My_Scans',)
    archive = {'data_source': 'internetarchive', 'config': yaml.safe_dump({'internetarchive_collection': 'MBLWHOI'})}
    assert collection_names_of(archive) == ('MBLWHOI',)
    assert collection_names_of({}) == ('pages',)
    images, = collection_entries_of({'source_directory': '/data/cards', 'pdf_conversion_program': 'image files'})
    assert images['name'] == 'cards' and images['data_source'] == 'image_directory'


def test_one_source_or_a_list_and_where_each_collection_is_found():
    one, = plan_collections('pdf_directory', '/data/pdfs', None, None)
    assert (one.name, one.key, one.directory) == ('pdfs', 'pdf_directory', '/data/pdfs')
    two = plan_collections('image_directory', ['/a/scans', '/b/photos'], ['scans', 'photo-2'], None)
    assert [(c.name, c.source, c.directory) for c in two] == [('scans', '/a/scans', '/a/scans'),
                                                              ('photo-2', '/b/photos', '/b/photos')]
    archive, = plan_collections('internetarchive', 'MBLWHOI', None, '/data/pdfs')
    assert archive.directory == '/data/pdfs' and archive.entry() == {'name': 'MBLWHOI', 'data_source': 'internetarchive',
                                                                     'source': 'MBLWHOI'}
    listed = plan_collections('internetarchive', ['MBLWHOI', 'bluesky'], None, '/data/pdfs')
    assert [collection.directory for collection in listed] == ['/data/pdfs/MBLWHOI', '/data/pdfs/bluesky']


def test_a_source_key_takes_one_value_or_a_non_empty_list():
    assert resolve({'pdf_directory': 'pdfs'}, TABLE)['pdf_directory'] == os.path.abspath('pdfs')
    assert resolve({'pdf_directory': ['a', 'b']}, TABLE)['pdf_directory'] == [os.path.abspath('a'), os.path.abspath('b')]
    assert resolve({'internetarchive_collection': ['A', 'B']}, TABLE)['internetarchive_collection'] == ['A', 'B']
    for bad, message in (({'pdf_directory': []}, 'the list is empty'), ({'image_directory': ['a', None]}, 'empty entry'),
                         ({'internetarchive_collection': [['A']]}, 'must be a text value')):
        with pytest.raises(ConfigError, match=re.escape(f'{list(bad)[0]}=') + '.*' + message):
            resolve(bad, TABLE)


@pytest.fixture
def folders(tmp_path):
    """manuals/ and music/ with a PDF each, two folders both named pdfs/, an empty folder and one of no PDFs."""
    for folder in ('manuals', 'music', 'a/pdfs', 'b/pdfs'):
        write_pdf(str(tmp_path / folder / 'manual.pdf'), 1)
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'notes').mkdir()
    (tmp_path / 'notes' / 'readme.txt').write_text('no documents here')
    return tmp_path


@pytest.mark.parametrize('values, message', [
    ({'pdf_directory': ['manuals', 'music'], 'collection_names': ['one']},
     'collection_names=[one]: 1 names for 2 pdf_directory entries; give one name per entry'),
    ({'pdf_directory': ['manuals', 'music'], 'collection_names': ['one', 'my music']},
     "collection_names=[one, my music]: 'my music' is not usable as a name: letters, digits"),
    ({'pdf_directory': ['manuals', 'music'], 'collection_names': ['same', 'same']},
     'collection_names=[same, same]: same given twice'),
    ({'pdf_directory': ['a/pdfs', 'b/pdfs']}, 'are both named pdfs; give them their own names with collection_names'),
    ({'pdf_directory': ['manuals', 'manuals']}, 'are both named manuals'),
    ({'pdf_directory': ['manuals', 'empty']}, 'empty: no documents found (looked recursively for .pdf files)'),
    ({'pdf_directory': ['manuals', 'notes']}, 'notes: no documents found'),
    ({'pdf_directory': ['manuals', 'absent']}, 'absent: folder not found (data_source is pdf_directory'),
    ({'data_source': 'image_directory', 'image_directory': ['empty']},
     'empty: no documents found (looked recursively for png/jpg/tif files)'),
    ({'data_source': 'internetarchive', 'internetarchive_collection': ['A', 'two words']},
     "internetarchive_collection=[A, two words]: 'two words' is not a collection identifier"),
    ({'data_source': 'internetarchive', 'internetarchive_collection': ['A', 'A']}, 'are both named A'),
    ({'data_source': 'internetarchive', 'internetarchive_collection': ['A', 'B'], 'pdf_directory': ['manuals', 'music']},
     "the archive's downloads go to one folder; give one"),
    ({'pdf_directory': ['manuals', 'music'], 'keep_page_images': True, 'image_directory': ['kept', 'other']},
     'keep_page_images writes into one folder'),
])
def test_bad_collections_are_refused_in_one_line_naming_the_key(folders, monkeypatch, values, message):
    monkeypatch.chdir(folders)
    raw = {'load_data': True, 'data_source': 'pdf_directory', 'data_hdf5': 'pages.hdf5', 'data_output_size': 16,
           **values}
    with pytest.raises(ConfigError) as error:
        prepare_stage(LoadDataStage, **raw)
    text = str(error.value)
    assert message in text and '\n' not in text
    assert text.split('=')[0] in ('collection_names', 'pdf_directory', 'image_directory', 'internetarchive_collection')


def test_the_command_line_exits_2_and_writes_nothing(folders, capsys):
    config = folders / 'config.yaml'
    config.write_text(yaml.safe_dump({'load_data': True, 'data_source': 'pdf_directory',
                                      'pdf_directory': [str(folders / 'manuals'), str(folders / 'music')],
                                      'collection_names': ['same', 'same'], 'data_hdf5': str(folders / 'pages.hdf5')}))
    before = sorted(os.listdir(folders))
    assert main([str(config)]) == EXIT_CONFIG_ERROR
    assert capsys.readouterr().err.strip().splitlines() == [
        'error: collection_names=[same, same]: same given twice; give every collection its own name']
    assert sorted(os.listdir(folders)) == before
