import numpy as np
import pytest
from PIL import Image

from deepzine.data.store import PageStore
from deepzine.evaluation import nearest
from deepzine.parameters import ConfigError
from tests.evaluation.pages import synthetic_pages


def test_comparison_size_is_the_largest_stored_size_up_to_32_and_the_model_size():
    sizes = [4, 8, 16, 32, 64, 128, 256]
    assert nearest.comparison_size(sizes, 256) == 32
    assert nearest.comparison_size(sizes, 16) == 16
    assert nearest.comparison_size([4, 8, 16], 16) == 16
    with pytest.raises(ConfigError, match='none is <= 32'):
        nearest.comparison_size([64, 128], 128)


def test_downsample_averages_2x2_blocks_like_the_store():
    pages = np.zeros((1, 4, 4, 1), np.uint8)
    pages[0, :2, :2, 0] = [[0, 1], [2, 3]]  # mean 1.5 rounds half up to 2, as deepzine.data.squaring.halve
    pages[0, 2:, 2:, 0] = 200
    np.testing.assert_array_equal(nearest.downsample(pages, 2)[0, :, :, 0], [[2, 0], [0, 200]])
    assert nearest.downsample(pages, 1)[0, 0, 0, 0] == 51  # halved twice: (2 + 0 + 0 + 200) / 4 = 50.5 -> 51


def test_nearest_finds_planted_copies_across_chunks(pages_hdf5):
    path, pages = pages_hdf5
    noise = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    queries = nearest.downsample(np.concatenate([pages[[17, 38, 0]], noise]), 16)
    with PageStore(path) as store:
        indices, distances = nearest.nearest_real_pages(store, queries, 16, chunk_pages=7)
    np.testing.assert_array_equal(indices[:3], [17, 38, 0])
    np.testing.assert_array_equal(distances[:3], 0)
    assert distances[3] > 50  # noise is far from every page, in RMS 0-255 units


def test_real_queries_never_match_themselves_and_find_a_planted_duplicate(pages_hdf5):
    path, pages = pages_hdf5
    with PageStore(path) as store:
        queries = store.read(16, [3, 5, 30])
        indices, distances = nearest.nearest_real_pages(store, queries, 16, exclude_indices=[3, 5, 30], chunk_pages=16)
    assert indices[0] == 30 and indices[2] == 3  # pages 3 and 30 are identical
    np.testing.assert_array_equal(distances[[0, 2]], 0)
    assert indices[1] != 5 and distances[1] > 0


def test_memorization_check_of_a_copying_generator(pages_hdf5):
    path, pages = pages_hdf5
    generated = pages[[9, 21, 9]]
    with PageStore(path) as store:
        check = nearest.memorization_check(store, generated, 6, np.random.default_rng(0))
    assert check['compare_size'] == 32
    np.testing.assert_array_equal(check['generated_nearest_indices'], [9, 21, 9])
    np.testing.assert_array_equal(check['generated_distances'], 0)
    assert len(check['real_query_indices']) == 6 == len(set(check['real_query_indices']))
    assert not np.any(check['real_nearest_indices'] == check['real_query_indices'])


def test_read_pages_accepts_repeats_in_any_order(pages_hdf5):
    path, pages = pages_hdf5
    with PageStore(path) as store:
        np.testing.assert_array_equal(nearest.read_pages(store, 32, [12, 2, 12]), pages[[12, 2, 12]])


def test_side_by_side_grid_puts_each_generated_page_left_of_its_nearest_real_page(tmp_path):
    rng = np.random.default_rng(0)
    generated, real = synthetic_pages(5, 16, 3, rng), synthetic_pages(5, 16, 3, rng)
    path = nearest.save_side_by_side(generated, real, str(tmp_path / 'pairs.png'), pairs_per_row=4)
    picture = np.asarray(Image.open(path))
    margin, framed = nearest.PAIR_MARGIN, 16 + 2
    pair_height, pair_width = framed + 2 * margin, 2 * framed + 2 * margin
    assert picture.shape == (2 * pair_height, 4 * pair_width, 3)  # 5 pairs at 4 a row: 2 rows

    def page(row, pair, side):
        top, left = row * pair_height + margin + 1, pair * pair_width + margin + side * framed + 1
        return picture[top:top + 16, left:left + 16]

    np.testing.assert_array_equal(page(0, 1, 0), generated[1])
    np.testing.assert_array_equal(page(0, 1, 1), real[1])
    np.testing.assert_array_equal(page(1, 0, 1), real[4])
    assert picture[0, 0, 0] == 0 and picture[margin, margin, 0] == nearest.PAGE_FRAME_VALUE
