"""Turn generator output into files: float [-1, 1] -> uint8, single pages (png, jpg, npy) and grids, written atomically.

Shared by sampling, training (sample grids) and evaluation. Files are written
through deepzine.files, so an interrupted run never leaves a truncated image.

PIL is imported where an image is written: every stage imports this module, the params command too.
"""

import math
import os

import numpy as np

from deepzine.files import write_atomically

IMAGE_FORMATS = ('png', 'jpg', 'npy')

# Pages are mostly text: the PIL default JPEG quality of 75 smears glyph edges.
JPEG_QUALITY = 95

_PIL_FORMAT_NAMES = {'png': 'PNG', 'jpg': 'JPEG'}


def to_uint8(images, contrast_stretch=False):
    """Float images in [-1, 1] -> uint8 in [0, 255]: clipped, then rounded to the nearest level.

    contrast_stretch: each image (the last three axes) is mapped from its own
    min..max to 0..255 instead, as the original DeepZine's scipy `imsave` did
    (`bytescale`: its darkest value black, its lightest white). uint8 input is
    returned unchanged, so callers may pass either.
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    values = images.astype(np.float32)
    if contrast_stretch:
        axes = tuple(range(values.ndim - 3, values.ndim)) if values.ndim >= 3 else None
        low, high = values.min(axis=axes, keepdims=True), values.max(axis=axes, keepdims=True)
        span = np.where(high > low, high - low, 1.0)
        return np.rint((values - low) / span * 255.0).astype(np.uint8)
    scaled = (np.clip(values, -1.0, 1.0) + 1.0) * 127.5
    return np.rint(scaled).astype(np.uint8)


def to_pil_image(image, contrast_stretch=False):
    """One image [H, W, C] (float in [-1, 1] or uint8) -> PIL image: 1 channel grayscale, 3 RGB, 4 RGBA."""
    from PIL import Image
    pixels = to_uint8(image, contrast_stretch)
    if pixels.ndim == 2:
        pixels = pixels[..., np.newaxis]
    channels = pixels.shape[-1]
    if channels == 1:
        return Image.fromarray(np.ascontiguousarray(pixels[..., 0]))  # uint8 [H, W]: mode L
    if channels in (3, 4):
        return Image.fromarray(np.ascontiguousarray(pixels))  # uint8 [H, W, 3 or 4]: RGB or RGBA
    raise ValueError(f'cannot write an image with {channels} channels (expected 1, 3 or 4)')


def save_image(image, path, image_format=None, contrast_stretch=False):
    """Write one image [H, W, C] to `path` as png or jpg (uint8, see to_uint8) or npy (values as given).

    `image_format` defaults to the file's extension. npy keeps the raw float32
    generator output, unclipped, for analysis; the image formats are for people.
    """
    image_format = (image_format or os.path.splitext(path)[1].lstrip('.')).lower()
    if image_format == 'jpeg':
        image_format = 'jpg'
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f'{path}: unknown image format {image_format!r}; expected one of {", ".join(IMAGE_FORMATS)}')
    if image_format == 'npy':
        array = np.asarray(image)
        write_atomically(path, lambda handle: np.save(handle, array, allow_pickle=False))
        return path
    picture = to_pil_image(image, contrast_stretch)
    if image_format == 'jpg' and picture.mode == 'RGBA':
        raise ValueError(f'{path}: JPEG has no alpha channel; use png')
    options = {'quality': JPEG_QUALITY} if image_format == 'jpg' else {}
    write_atomically(path, lambda handle: picture.save(handle, format=_PIL_FORMAT_NAMES[image_format], **options))
    return path


def grid(images, columns=None):
    """Tile images [N, H, W, C] into one uint8 image, row by row; empty cells of the last row are black.

    `columns` defaults to ceil(sqrt(N)), the squarest grid.
    """
    pixels = to_uint8(images)
    if pixels.ndim != 4 or len(pixels) == 0:
        raise ValueError(f'grid needs images of shape [N, H, W, C] with N >= 1, got {list(pixels.shape)}')
    count, height, width, channels = pixels.shape
    columns = max(1, min(columns or math.ceil(math.sqrt(count)), count))
    rows = math.ceil(count / columns)
    canvas = np.zeros((rows * height, columns * width, channels), np.uint8)
    for index, image in enumerate(pixels):
        row, column = divmod(index, columns)
        canvas[row * height:(row + 1) * height, column * width:(column + 1) * width] = image
    return canvas


def save_grid(images, path, columns=None):
    """Write images [N, H, W, C] (float in [-1, 1] or uint8) as one grid picture, png or jpg by extension.

    Grayscale stays grayscale. Returns `path`.
    """
    return save_image(grid(images, columns), path)
