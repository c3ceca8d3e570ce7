import os

import numpy as np
import pytest
from PIL import Image

from deepzine.sampling.images import grid, save_grid, save_image, to_uint8


def test_to_uint8_maps_the_model_range_clips_and_rounds():
    values = np.array([-3.0, -1.0, -0.5, 0.0, 0.999, 1.0, 7.0], np.float32)
    np.testing.assert_array_equal(to_uint8(values), [0, 0, 64, 128, 255, 255, 255])
    assert to_uint8(values).dtype == np.uint8


def test_to_uint8_leaves_uint8_alone():
    pixels = np.array([0, 17, 255], np.uint8)
    assert to_uint8(pixels) is pixels


def test_png_round_trip_rgb_and_grayscale(tmp_path):
    rgb = np.random.default_rng(0).uniform(-1, 1, (8, 6, 3)).astype(np.float32)
    save_image(rgb, str(tmp_path / 'rgb.png'))
    with Image.open(tmp_path / 'rgb.png') as picture:
        assert picture.mode == 'RGB' and picture.size == (6, 8)
        np.testing.assert_array_equal(np.asarray(picture), to_uint8(rgb))
    gray = rgb[..., :1]
    save_image(gray, str(tmp_path / 'gray.png'))
    with Image.open(tmp_path / 'gray.png') as picture:
        assert picture.mode == 'L'
        np.testing.assert_array_equal(np.asarray(picture), to_uint8(gray[..., 0]))


def test_jpg_is_written_as_jpeg(tmp_path):
    image = np.zeros((16, 16, 3), np.float32)
    save_image(image, str(tmp_path / 'page.jpg'))
    with Image.open(tmp_path / 'page.jpg') as picture:
        assert picture.format == 'JPEG'
        assert np.abs(np.asarray(picture).astype(int) - 128).max() <= 1


def test_npy_keeps_raw_float_values_unclipped(tmp_path):
    image = np.array([[[-2.5], [0.25]], [[1.75], [-1.0]]], np.float32)
    save_image(image, str(tmp_path / 'raw.npy'))
    loaded = np.load(tmp_path / 'raw.npy')
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, image)


def test_writes_leave_no_temporary_files(tmp_path):
    for name in ('a.png', 'b.jpg', 'c.npy'):
        save_image(np.zeros((4, 4, 3), np.float32), str(tmp_path / name))
    assert sorted(path.name for path in tmp_path.iterdir()) == ['a.png', 'b.jpg', 'c.npy']


def test_refused_images_create_no_file(tmp_path):
    with pytest.raises(ValueError, match='2 channels'):
        save_image(np.zeros((4, 4, 2), np.float32), str(tmp_path / 'two.png'))
    with pytest.raises(ValueError, match='unknown image format'):
        save_image(np.zeros((4, 4, 3), np.float32), str(tmp_path / 'page.gif'))
    assert list(tmp_path.iterdir()) == []


def test_grid_places_images_row_by_row_and_leaves_empty_cells_black():
    images = np.stack([np.full((2, 3, 1), value, np.uint8) for value in (10, 20, 30, 40, 50)])
    tiled = grid(images)  # 5 images: ceil(sqrt(5)) = 3 columns, 2 rows
    assert tiled.shape == (4, 9, 1)
    np.testing.assert_array_equal(tiled[::2, ::3, 0], [[10, 20, 30], [40, 50, 0]])
    assert grid(images, columns=5).shape == (2, 15, 1)


def test_save_grid_keeps_grayscale_and_converts_floats(tmp_path):
    images = np.full((4, 8, 8, 1), -1.0, np.float32)
    images[3] = 1.0
    save_grid(images, str(tmp_path / 'grid.png'), columns=2)
    with Image.open(tmp_path / 'grid.png') as picture:
        assert picture.mode == 'L' and picture.size == (16, 16)
        pixels = np.asarray(picture)
    assert pixels[:8].max() == 0 and pixels[8:, :8].max() == 0 and pixels[8:, 8:].min() == 255


def test_files_get_the_usual_permissions_not_private_temporary_ones(tmp_path):
    previous_umask = os.umask(0o022)
    try:
        save_image(np.zeros((4, 4, 3), np.float32), str(tmp_path / 'page.png'))
    finally:
        os.umask(previous_umask)
    assert os.stat(tmp_path / 'page.png').st_mode & 0o777 == 0o644
