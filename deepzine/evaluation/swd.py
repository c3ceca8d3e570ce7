"""Multi-scale sliced Wasserstein distance (SWD) between two sets of pages, as in Karras et al. 2018 (PGGAN), section 5.

Same algorithm and constants as the authors' metrics/sliced_wasserstein.py
(tkarras/progressive_growing_of_gans), written again with vectorized numpy:

1. a Laplacian pyramid of every image from its size down to 16x16, with the 5x5
   binomial filter [1, 4, 6, 4, 1] / 16 (outer product) and mirrored borders
   (d c b | a b c d | c b a, as scipy.ndimage 'mirror' and OpenCV's pyrDown);
   the 16x16 level is the blurred image itself, the others are detail bands;
2. 128 random 7x7 patches per image and level, each flattened to a descriptor of
   7 * 7 * channels values;
3. descriptors normalized per channel (mean 0, std 1) over all descriptors of
   the level, each set on its own statistics as in the reference;
4. 4 repeats of 128 random unit directions: project both sets, sort, mean
   absolute difference of the sorted projections (the 1-D Wasserstein-1
   distance), averaged over directions and repeats;
5. multiplied by 1e3 per level; the reported mean is over levels.

Departures, all at the edges: images smaller than 16x16 have a one-level pyramid,
and below 8x8 the patch shrinks to the largest odd size that fits (3x3 at 4x4);
a channel that is constant over a whole level (all-white pages have empty
detail bands) is left unscaled instead of divided by a zero std (the reference
gives NaN there); and the two sets share their random patch positions
(see multiscale_swd). Randomness comes from a seeded numpy Generator; patch
positions for a whole set are drawn before any image is read, so the result
does not depend on the batch size.
"""

import numpy as np

from deepzine.sizes import sizes_between

PATCH_SIZE = 7
PATCHES_PER_IMAGE = 128
DIRECTIONS_PER_REPEAT = 128
DIRECTION_REPEATS = 4
MIN_PYRAMID_SIZE = 16
SWD_SCALE = 1e3  # the paper reports SWD x 10^3

_BINOMIAL_TAPS = np.array([1, 4, 6, 4, 1], np.float32) / 16


def level_sizes(size, min_size=MIN_PYRAMID_SIZE):
    """Laplacian pyramid levels, finest first: 64 -> [64, 32, 16]; [size] when size <= min_size."""
    return sizes_between(min_size, size)[::-1] or [size]


def patch_size_for(size):
    """7, or the largest odd patch that fits in a `size` x `size` level (3 at size 4)."""
    return min(PATCH_SIZE, size if size % 2 else size - 1)


def _filter_axis(images, axis, taps, stride=1):
    """Correlate `images` with the 5 `taps` along `axis` (mirrored borders), keeping every `stride`-th output."""
    padding = [(0, 0)] * images.ndim
    padding[axis] = (2, 2)
    padded = np.pad(images, padding, mode='reflect')  # numpy 'reflect' does not repeat the edge: scipy's 'mirror'
    length = images.shape[axis]
    window = [slice(None)] * images.ndim
    result = None
    for offset, tap in enumerate(taps):
        window[axis] = slice(offset, offset + length, stride)
        term = tap * padded[tuple(window)]
        result = term if result is None else np.add(result, term, out=result)
    return result


def _upsample_axis(images, axis):
    """Double `images` along `axis`: zeros between samples, then the binomial filter times 2 (4 over both axes)."""
    shape = list(images.shape)
    shape[axis] *= 2
    spread = np.zeros(shape, np.float32)
    window = [slice(None)] * images.ndim
    window[axis] = slice(0, None, 2)
    spread[tuple(window)] = images
    return _filter_axis(spread, axis, _BINOMIAL_TAPS * 2)


def pyramid_down(images):
    """Blur and halve float images [N, H, W, C] (OpenCV pyrDown: keep the even rows and columns)."""
    return _filter_axis(_filter_axis(images, 1, _BINOMIAL_TAPS, stride=2), 2, _BINOMIAL_TAPS, stride=2)


def pyramid_up(images):
    """Double float images [N, H, W, C] (OpenCV pyrUp): the inverse step used to form Laplacian detail bands."""
    return _upsample_axis(_upsample_axis(images, 1), 2)


def laplacian_pyramid(images, min_size=MIN_PYRAMID_SIZE):
    """Images [N, S, S, C] (uint8 or float, 0-255) -> float32 levels [N, s, s, C], largest first.

    Every level but the last is level - pyramid_up(next level); the last (min_size,
    or S itself when S <= min_size) is the blurred image.
    """
    levels = [np.asarray(images, np.float32)]
    for _ in level_sizes(levels[0].shape[1], min_size)[1:]:
        smaller = pyramid_down(levels[-1])
        levels[-1] = levels[-1] - pyramid_up(smaller)
        levels.append(smaller)
    return levels


def random_patch_centers(rng, image_num, size, patch_size=PATCH_SIZE, patches_per_image=PATCHES_PER_IMAGE):
    """Integer (row, column) centers [image_num, patches_per_image, 2] of patches lying wholly inside a size x size level."""
    half = patch_size // 2
    return rng.integers(half, size - half, size=(image_num, patches_per_image, 2))


def patch_descriptors(images, centers, patch_size=PATCH_SIZE):
    """Patches of float images [N, s, s, C] around `centers` [N, P, 2] -> descriptors [N * P, C * patch_size**2].

    One gather from a strided view of every patch position (no copy, no loop
    over patches). Values are ordered (channel, row, column), as in the reference.
    """
    image_num, patches_per_image, _ = centers.shape
    windows = np.lib.stride_tricks.sliding_window_view(images, (patch_size, patch_size), axis=(1, 2))  # [N, y, x, C, k, k]
    image_index = np.repeat(np.arange(image_num), patches_per_image)
    corners = centers.reshape(-1, 2) - patch_size // 2
    patches = windows[image_index, corners[:, 0], corners[:, 1]]  # [N * P, C, k, k]
    return patches.reshape(image_num * patches_per_image, -1)


def normalize_descriptors(descriptors, channels):
    """Per channel: subtract the mean and divide by the std over all descriptors and positions (in place, float32).

    A channel with zero std (constant over the whole level) is only centred.
    Column sums in float64 (two passes: mean, then centred squares) are 15x
    faster than ndarray.std over two axes and as exact.
    """
    values_per_channel = descriptors.size // channels

    def per_channel_sum(columns):
        return columns.sum(axis=0, dtype=np.float64).reshape(channels, -1).sum(axis=1, keepdims=True)

    by_channel = descriptors.reshape(len(descriptors), channels, -1)
    by_channel -= (per_channel_sum(descriptors) / values_per_channel).astype(np.float32)
    std = np.sqrt(per_channel_sum(np.square(descriptors)) / values_per_channel)
    std[std == 0] = 1.0
    by_channel /= std.astype(np.float32)
    return descriptors


def sliced_wasserstein(a, b, directions=DIRECTIONS_PER_REPEAT, repeats=DIRECTION_REPEATS, rng=None):
    """Sliced Wasserstein-1 distance between descriptor sets a and b [M, D] (same M): mean over repeats x directions.

    Each repeat draws `directions` random unit vectors from `rng` (a numpy
    Generator or a seed); both sets are projected on them, the projections sorted,
    and the mean absolute difference taken. Not scaled by 1e3.
    """
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f'descriptor sets must both be [M, D] with the same shape, got {list(a.shape)} and {list(b.shape)}')
    rng = np.random.default_rng(rng)
    distances = []
    for _ in range(repeats):
        basis = rng.standard_normal((a.shape[1], directions))
        basis = (basis / np.linalg.norm(basis, axis=0, keepdims=True)).astype(np.float32)
        # [directions, M] so each sort runs along contiguous memory (3x faster than sorting columns)
        projections_a = basis.T @ a.T
        projections_b = basis.T @ b.T
        projections_a.sort(axis=1)
        projections_b.sort(axis=1)
        distances.append(np.mean(np.abs(projections_a - projections_b), dtype=np.float64))
    return float(np.mean(distances))


class PyramidDescriptors:
    """The normalized patch descriptors of one set of `image_num` uint8 images [n, size, size, C], fed batch by batch.

    Only the descriptors are kept (image_num * 128 * 7 * 7 * C float32 per level),
    never the float pyramids, so sets of thousands of large pages fit in memory.
    """

    def __init__(self, image_num, size, rng, patches_per_image=PATCHES_PER_IMAGE, min_size=MIN_PYRAMID_SIZE):
        self.image_num, self.size, self.min_size = image_num, size, min_size
        self.level_sizes = level_sizes(size, min_size)
        self.patch_size = patch_size_for(self.level_sizes[-1])
        self.patches_per_image = patches_per_image
        rng = np.random.default_rng(rng)
        self.centers = [random_patch_centers(rng, image_num, level_size, self.patch_size, patches_per_image)
                        for level_size in self.level_sizes]
        self.descriptors = None  # allocated at the first batch, when the channel count is known
        self.channels = None
        self.added = 0

    def add(self, images):
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:3] != (self.size, self.size):
            raise ValueError(f'expected uint8 images [n, {self.size}, {self.size}, C], got {images.dtype} {list(images.shape)}')
        count = len(images)
        if self.added + count > self.image_num:
            raise ValueError(f'more than the {self.image_num} images announced')
        if self.descriptors is None:
            self.channels = images.shape[3]
            width = self.patch_size ** 2 * self.channels
            self.descriptors = [np.empty((self.image_num * self.patches_per_image, width), np.float32)
                                for _ in self.level_sizes]
        elif images.shape[3] != self.channels:
            raise ValueError(f'images have {images.shape[3]} channels, earlier ones {self.channels}')
        rows = slice(self.added * self.patches_per_image, (self.added + count) * self.patches_per_image)
        for level_index, level in enumerate(laplacian_pyramid(images, self.min_size)):
            centers = self.centers[level_index][self.added:self.added + count]
            self.descriptors[level_index][rows] = patch_descriptors(level, centers, self.patch_size)
        self.added += count

    def finish(self):
        """{level size: normalized descriptors [image_num * 128, 49 * C]}, largest level first."""
        if self.added != self.image_num or self.image_num == 0:
            raise ValueError(f'{self.added} images added, {self.image_num} announced (and at least one needed)')
        return {level_size: normalize_descriptors(descriptors, self.channels)
                for level_size, descriptors in zip(self.level_sizes, self.descriptors)}


def swd_between(descriptors_a, descriptors_b, rng=None):
    """SWD x1e3 between two `PyramidDescriptors.finish()` results: {'levels': {size: value}, 'mean': value}.

    Directions come from `rng` (Generator or seed) level after level, so a
    fixed seed gives two comparisons the same directions.
    """
    if list(descriptors_a) != list(descriptors_b):
        raise ValueError(f'pyramid levels differ: {list(descriptors_a)} and {list(descriptors_b)}')
    rng = np.random.default_rng(rng)
    levels = {level_size: SWD_SCALE * sliced_wasserstein(descriptors_a[level_size], descriptors_b[level_size], rng=rng)
              for level_size in descriptors_a}
    return {'levels': levels, 'mean': float(np.mean(list(levels.values())))}


def _seed_sequence(seed):
    """A numpy SeedSequence from an int seed (or the sequence itself), to spawn independent streams per purpose."""
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)


def collect_descriptors(images, rng, batch_size=64):
    """`PyramidDescriptors` of a whole uint8 array [N, S, S, C], fed `batch_size` images at a time."""
    collector = PyramidDescriptors(len(images), images.shape[1], rng)
    for start in range(0, len(images), batch_size):
        collector.add(images[start:start + batch_size])
    return collector.finish()


def multiscale_swd(images_a, images_b, seed=0, batch_size=64):
    """Multi-scale SWD x1e3 between two uint8 sets [N, S, S, C] of the same shape: {'levels': {size: value}, 'mean'}.

    `seed` (int or numpy SeedSequence) fixes the patch positions and the
    directions. Both sets take their patches at the same positions (image i of
    A and image i of B alike): positions are drawn independently of content, so
    nothing is biased, and position noise cancels; a set against itself gives
    exactly 0. (The reference draws them independently per set.)
    """
    images_a, images_b = np.asarray(images_a), np.asarray(images_b)
    if images_a.shape != images_b.shape or images_a.ndim != 4:
        raise ValueError(f'both sets must be [N, S, S, C] of one shape, got {list(images_a.shape)} and {list(images_b.shape)}')
    seed_patches, seed_directions = _seed_sequence(seed).spawn(2)
    descriptors_a = collect_descriptors(images_a, np.random.default_rng(seed_patches), batch_size)
    descriptors_b = collect_descriptors(images_b, np.random.default_rng(seed_patches), batch_size)
    return swd_between(descriptors_a, descriptors_b, np.random.default_rng(seed_directions))
