"""The contact sheet: after every load_data run, from `deepzine preview`, grey or colour, and its size limits."""

import os

import numpy as np
import pytest
from PIL import Image

from deepzine.cli import main
from deepzine.data import preview
from deepzine.data.pack import RenderSettings
from deepzine.data.preview import default_preview_path, drawn_page_indices, write_preview
from deepzine.data.squaring import build_pyramid
from deepzine.data.stage import LoadDataStage
from deepzine.data.writer import PageWriter
from deepzine.parameters import ConfigError

from tests.page_files import write_page_hdf5
from tests.stages import prepare_stage

from .documents import write_pdf


def write_page_file(path, page_count, size=16, channels=3):
    """Page i is filled with grey level 10 * (i + 1), so a sheet tells which pages it shows."""
    writer = PageWriter(path, RenderSettings('pdfium', size, 'stretch', channels).schema(), {})
    values = [10 * (index + 1) for index in range(page_count)]
    writer.append_pages(build_pyramid(np.stack([np.full((size, size, channels), value, np.uint8) for value in values])),
                        [('doc', 'doc.pdf', index + 1) for index in range(page_count)])
    writer.commit_document('doc.pdf', 100, page_count, 0, 'packed')
    return writer.finish()


def test_the_preview_sits_beside_the_page_file():
    assert default_preview_path('/data/pages.hdf5') == '/data/pages_preview.png'
    assert default_preview_path('pages.h5') == os.path.abspath('pages_preview.png')


def test_a_sheet_shows_seeded_random_pages_in_file_order_in_a_grid(tmp_path):
    path = write_page_file(str(tmp_path / 'pages.hdf5'), 20)
    sheet_path = write_preview(path, str(tmp_path / 'sheet.png'), count=5)
    sheet = np.asarray(Image.open(sheet_path))
    assert sheet.shape == (2 * 18 + 2, 3 * 18 + 2, 3)  # 5 pages of 16 px: 3 columns, 2 rows, 2 px gaps
    shown = [int(sheet[2 + row * 18, 2 + column * 18, 0]) for row, column in ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1))]
    assert shown == [10 * (index + 1) for index in drawn_page_indices(20, 5, seed=0)] and shown == sorted(shown)
    assert int(sheet[2 + 18, 2 + 2 * 18, 0]) == 128  # the empty cell is the gap grey
    again = write_preview(path, str(tmp_path / 'again.png'), count=5)
    assert np.array_equal(np.asarray(Image.open(again)), sheet)
    other_seed = np.asarray(Image.open(write_preview(path, str(tmp_path / 'other.png'), count=5, seed=1)))
    assert not np.array_equal(other_seed, sheet)


def test_grey_files_give_a_grey_sheet_and_fewer_pages_than_asked_give_all_of_them(tmp_path):
    path = write_page_file(str(tmp_path / 'grey.hdf5'), 3, channels=1)
    sheet = Image.open(write_preview(path, str(tmp_path / 'grey.png')))
    assert sheet.mode == 'L' and sheet.size == (2 * 18 + 2, 2 * 18 + 2)


def test_large_pages_are_shown_at_256_px_unless_asked_and_sizes_are_checked(tmp_path, monkeypatch):
    path = write_page_file(str(tmp_path / 'large.hdf5'), 2, size=512)
    assert Image.open(write_preview(path, str(tmp_path / 'default.png'))).size == (2 * 258 + 2, 258 + 2)
    assert Image.open(write_preview(path, str(tmp_path / 'full.png'), size=512)).size == (2 * 514 + 2, 514 + 2)
    with pytest.raises(ConfigError, match='preview size 100: .* holds pages of 4..512 px'):
        write_preview(path, str(tmp_path / 'odd.png'), size=100)
    monkeypatch.setattr(preview, 'MAX_SHEET_PIXELS', 512 * 512)  # the real limit, 64 pages of 1024 px, is slow to test
    with pytest.raises(ConfigError, match='ask for at most 1 pages or a smaller size'):
        write_preview(path, str(tmp_path / 'too_large.png'), size=512)


def test_load_data_writes_the_preview_every_run_and_names_it(tmp_path, caplog):
    caplog.set_level('INFO')
    write_pdf(str(tmp_path / 'pdfs' / 'one.pdf'), 3)
    config = {'load_data': True, 'data_source': 'pdf_directory', 'pdf_directory': str(tmp_path / 'pdfs'),
              'data_hdf5': str(tmp_path / 'pages.hdf5'), 'data_output_size': 16, 'conversion_workers': 1}
    prepare_stage(LoadDataStage, **config).run()
    preview = str(tmp_path / 'pages_preview.png')
    assert Image.open(preview).size == (2 * 18 + 2, 2 * 18 + 2) and f'preview: {preview}' in caplog.text
    os.remove(preview)
    caplog.clear()
    prepare_stage(LoadDataStage, **config).run()  # nothing new: the sheet is written all the same
    assert 'nothing new' in caplog.text and os.path.isfile(preview) and f'preview: {preview}' in caplog.text
    assert sorted(os.listdir(tmp_path)) == ['pages.hdf5', 'pages_preview.png', 'pdfs']  # no temporary file left


def test_the_preview_command_writes_a_sheet_for_any_page_file(tmp_path, capsys):
    path = write_page_file(str(tmp_path / 'pages.hdf5'), 10)
    assert main(['preview', path]) == 0
    assert os.path.isfile(tmp_path / 'pages_preview.png') and 'pages_preview.png' in capsys.readouterr().out
    assert main(['preview', path, '--size', '8', '--num', '4', '--output', str(tmp_path / 'small.png')]) == 0
    assert Image.open(tmp_path / 'small.png').size == (2 * 10 + 2, 2 * 10 + 2)
    assert main(['preview', path, '--size', '64']) == 2  # not stored: a one-line error
    assert 'preview size 64' in capsys.readouterr().err


def test_a_file_of_several_collections_gets_a_block_of_rows_under_each_name(tmp_path):
    pages = np.stack([np.full((16, 16, 3), value, np.uint8) for value in [10] * 6 + [200] * 3])
    path = write_page_hdf5(tmp_path / 'pages.hdf5', pages, [('manuals', 6), ('cards', 3)])
    sheet = np.asarray(Image.open(write_preview(path, str(tmp_path / 'sheet.png'), count=8)))
    # 8 pages in 3 columns: manuals' 4 in two rows, then cards' 3 in one, each block under a 16 px band with its name
    assert sheet.shape[0] == 16 + 2 * 18 + 16 + 18 + 2
    assert [int(sheet[16 + row * 18, 2, 0]) for row in range(2)] == [10, 10]
    assert int(sheet[16 + 2 * 18 + 16, 2, 0]) == 200 and int(sheet[16 + 2 * 18 + 16, 2 + 2 * 18, 0]) == 200
    for band_top in (0, 16 + 2 * 18):  # the names are written in dark text on the gap grey
        band = sheet[band_top:band_top + 16]
        assert band.min() < 64 and np.median(band) == 128
    one = write_page_hdf5(tmp_path / 'one.hdf5', pages)
    assert Image.open(write_preview(one, str(tmp_path / 'one.png'), count=8)).size == (3 * 18 + 2, 3 * 18 + 2)
