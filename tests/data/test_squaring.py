import numpy as np
import pytest
from PIL import Image

from deepzine.data.squaring import background_colour, build_pyramid, halve, page_box, square_page, to_mode
from deepzine.sizes import sizes_between


def test_sizes_run_from_the_smallest_to_the_largest():
    assert sizes_between(4, 64) == [4, 8, 16, 32, 64]
    assert sizes_between(4, 4) == [4]
    assert sizes_between(16, 8) == []


def test_stretch_squashes_the_whole_page_into_the_square():
    page = np.full((100, 200, 3), 255, np.uint8)
    page[:, :100] = 0  # left half black on a wide page
    square = square_page(Image.fromarray(page), 32, 'stretch', 3)
    assert square.shape == (32, 32, 3) and square.dtype == np.uint8
    assert square[:, :14].max() < 10 and square[:, 18:].min() > 245  # still half and half after squashing


def test_pad_keeps_proportions_and_fills_with_the_page_paper_colour():
    paper = (200, 180, 160)
    page = np.empty((200, 100, 3), np.uint8)
    page[:] = paper
    page[80:120, 30:70] = 0  # ink in the middle
    page[0, 0] = (255, 0, 0)  # a stray mark on the border must not change the paper colour
    square = square_page(Image.fromarray(page), 64, 'pad', 3)
    assert square.shape == (64, 64, 3)
    # a 200x100 page fitted into 64 is 64x32, centred: columns 0..15 and 48..63 are padding
    assert (square[:, :15] == paper).all() and (square[:, 49:] == paper).all()
    assert square[28:36, 28:36].max() < 20  # the ink stays in the centre, undistorted


def test_page_box_says_where_the_page_lands_in_its_square():
    assert page_box(100, 200, 64, 'pad') == (16, 0, 48, 64)  # the padding of the test above: columns 0..15, 48..63
    assert page_box(100, 200, 64, 'stretch') == page_box(100, 200, 64, 'crop') == (0, 0, 64, 64)


def test_crop_keeps_the_centre_square():
    page = np.zeros((300, 100, 3), np.uint8)
    page[:100] = (255, 0, 0)
    page[100:200] = (0, 255, 0)
    page[200:] = (0, 0, 255)
    square = square_page(Image.fromarray(page), 16, 'crop', 3)
    assert square.shape == (16, 16, 3)
    assert (square[..., 1] > 250).all() and (square[..., 0] < 5).all() and (square[..., 2] < 5).all()


def test_grey_pages_have_one_channel_and_transparency_lands_on_white():
    page = Image.new('RGBA', (50, 70), (0, 0, 0, 0))
    square = square_page(page, 8, 'stretch', 1)
    assert square.shape == (8, 8, 1)
    assert (square == 255).all()


def test_sixteen_bit_scans_are_scaled_not_clipped():
    values = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    grey = np.asarray(to_mode(Image.fromarray(values), 1))
    assert grey.min() == 0 and grey.max() == 255 and 100 < grey.mean() < 155


def test_unknown_square_mode_is_refused():
    with pytest.raises(ValueError, match='square_mode'):
        square_page(Image.new('RGB', (10, 10)), 8, 'zoom', 3)


def test_background_colour_is_the_median_of_the_border():
    page = Image.new('L', (20, 20), 230)
    page.putpixel((0, 5), 0)
    assert background_colour(page) == 230


def test_halve_averages_2x2_blocks_rounding_half_up():
    images = np.array([[0, 1], [2, 3]], np.uint8).reshape(1, 2, 2, 1)
    assert halve(images).item() == 2  # (0 + 1 + 2 + 3) / 4 = 1.5 -> 2
    images = np.array([[10, 10], [10, 11]], np.uint8).reshape(1, 2, 2, 1)
    assert halve(images).item() == 10  # 10.25 -> 10


def test_pyramid_levels_are_successive_averages():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    levels = build_pyramid(images)
    assert sorted(levels) == [4, 8, 16]
    assert levels[8].shape == (3, 8, 8, 3) and levels[4].dtype == np.uint8
    expected = images.reshape(3, 8, 2, 8, 2, 3).astype(float).mean(axis=(2, 4))
    assert np.abs(levels[8] - expected).max() <= 0.5
    assert abs(levels[4].mean() - images.mean()) < 1.0
