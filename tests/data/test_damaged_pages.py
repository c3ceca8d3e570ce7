"""A page file with damaged chunks: unreadable pages are skipped, named once, counted, and fatal past a share."""

import logging
import os

import numpy as np
import pytest

from deepzine.data.damaged_pages import MIN_UNREADABLE_PAGES
from deepzine.data.store import DamagedPageFile, PageStore, page_dataset, raise_if_damaged, unreadable_page_count
from tests.page_files import overwrite_chunk, write_page_hdf5

PAGE_COUNT = 40


@pytest.fixture
def page_file(tmp_path):
    """40 pages of 16x16 whose every pixel is 5 * (index + 1): a read page tells which page it was, at any size."""
    path = str(tmp_path / 'pages.hdf5')
    values = 5 * np.arange(1, PAGE_COUNT + 1, dtype=np.uint8)
    write_page_hdf5(path, np.broadcast_to(values[:, None, None, None], (PAGE_COUNT, 16, 16, 3)).copy())
    return path


def page_ids(pages):
    """Page index of each read page (pixel value 5 * (index + 1), or its [-1, 1] scaling)."""
    pages = np.asarray(pages)
    values = np.round((pages + 1) * 127.5) if pages.dtype != np.uint8 else pages
    return [int(value) // 5 - 1 for value in values[:, 0, 0, 0]]


def test_an_unreadable_page_is_replaced_by_the_next_readable_one_and_named_once(page_file, caplog):
    overwrite_chunk(page_file, 'data_16', 7)
    overwrite_chunk(page_file, 'data_16', PAGE_COUNT - 1)
    with caplog.at_level(logging.WARNING), PageStore(page_file) as store:
        assert page_ids(store.read(16, [6, 7, 8, 7])) == [6, 8, 8, 8]
        assert page_ids(store.read(16, [PAGE_COUNT - 1])) == [0]  # the next readable page wraps around
        assert page_ids(store.read(8, [7])) == [7]  # another size is other chunks
        assert store.unreadable_page_count == 2 == unreadable_page_count(page_file)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert f'data_hdf5={page_file}: page 7 (synthetic.pdf, page 8) is unreadable at 16x16' in warnings[0]
    assert 'skipped' in warnings[0] and '\n' not in warnings[0]
    raise_if_damaged(page_file)  # a few bad pages do not stop reading


def test_a_page_whose_provenance_is_damaged_too_is_still_skipped_with_a_warning(page_file, caplog):
    overwrite_chunk(page_file, 'data_16', 3)
    overwrite_chunk(page_file, 'pages/file', 0)
    with caplog.at_level(logging.WARNING), PageStore(page_file) as store:
        assert page_ids(store.read(16, [3])) == [4]
    assert 'page 3 (provenance unreadable) is unreadable' in caplog.text


def test_past_the_tolerated_share_reading_stops_with_a_one_line_config_error(page_file):
    for index in range(0, 2 * (MIN_UNREADABLE_PAGES + 1), 2):  # one more than tolerated, none adjacent
        overwrite_chunk(page_file, 'data_8', index)
    with PageStore(page_file) as store:
        store.read(8, range(2 * MIN_UNREADABLE_PAGES))  # 10 bad pages: tolerated
        assert store.unreadable_page_count == MIN_UNREADABLE_PAGES
        with pytest.raises(DamagedPageFile) as error:
            store.read(8, range(PAGE_COUNT))
        with pytest.raises(DamagedPageFile):
            store.read(4, [0])  # reading the file stays stopped
    message = str(error.value)
    assert '\n' not in message and message.startswith(f'data_hdf5={page_file}: damaged, 11 of the ')
    assert message.endswith('rebuild it with load_data (overwrite: true)')
    with pytest.raises(DamagedPageFile, match='11 of the'):
        raise_if_damaged(page_file)


def test_bytes_overwritten_in_the_middle_of_the_file_cost_only_the_pages_they_hit(tmp_path, caplog):
    path = str(tmp_path / 'noisy.hdf5')
    write_page_hdf5(path, np.random.default_rng(1).integers(0, 256, (300, 32, 32, 3), dtype=np.uint8))
    with open(path, 'r+b') as file:
        file.seek(int(os.path.getsize(path) * 0.6))
        file.write(np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with caplog.at_level(logging.WARNING), PageStore(path) as store:
        for size in store.sizes:
            assert store.read(size, range(300)).shape == (300, size, size, 3)
        assert 1 <= store.unreadable_page_count <= 3  # a 4 KiB block is about one chunk of random 32x32 pages
    assert 'is unreadable at 32x32' in caplog.text


@pytest.mark.slow
def test_page_dataset_keeps_yielding_full_batches_across_a_damaged_page(page_file):
    overwrite_chunk(page_file, 'data_8', 3)
    dataset = page_dataset(page_file, 8, batch_size=8, seed=0, repeat=False)
    batches = [page_ids(batch.numpy()) for batch, _ in dataset]
    assert [len(batch) for batch in batches] == [8] * 5
    read = sorted(index for batch in batches for index in batch)
    assert read == sorted([*range(3), 4, *range(4, PAGE_COUNT)])  # page 4 read in place of page 3
    assert unreadable_page_count(page_file) == 1


def test_too_many_damaged_pages_end_page_dataset_with_an_error_that_raise_if_damaged_turns_into_the_config_error(
        page_file):
    import tensorflow as tf
    for index in range(0, 2 * (MIN_UNREADABLE_PAGES + 1), 2):
        overwrite_chunk(page_file, 'data_4', index)
    with pytest.raises(tf.errors.OpError, match='rebuild it with load_data'):  # what the training loop sees
        for _ in page_dataset(page_file, 4, batch_size=8, seed=0).take(20):
            pass
    with pytest.raises(DamagedPageFile, match=f'data_hdf5={page_file}: damaged, 11 of the '):
        raise_if_damaged(page_file)
