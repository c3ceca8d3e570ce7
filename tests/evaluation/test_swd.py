import numpy as np
import pytest

from deepzine.evaluation import swd
from tests.evaluation.pages import synthetic_pages


def test_pyramid_goes_from_the_image_size_down_to_16_or_is_one_level_below():
    assert swd.level_sizes(64) == [64, 32, 16]
    assert swd.level_sizes(16) == [16]
    assert swd.level_sizes(8) == [8]
    assert [swd.patch_size_for(size) for size in (4, 8, 16, 1024)] == [3, 7, 7, 7]


def test_pyramid_of_an_impulse_matches_hand_computed_values():
    image = np.zeros((1, 16, 16, 1), np.float32)
    image[0, 8, 8, 0] = 256
    detail, blurred = swd.laplacian_pyramid(image, min_size=8)
    # down: the kernel's outer product [1 4 6 4 1]/16 sampled at even offsets -2, 0, 2: [1 6 1] x [1 6 1]
    expected = np.zeros((8, 8))
    expected[3:6, 3:6] = np.outer([1, 6, 1], [1, 6, 1])
    np.testing.assert_array_equal(blurred[0, :, :, 0], expected)
    # up, 1-D, at 8 (even): (1*1 + 6*6 + 1*1) / 8 = 4.75; at 9 (odd): (4*6 + 4*1) / 8 = 3.5
    assert detail[0, 8, 8, 0] == pytest.approx(256 - 4.75 * 4.75)
    assert detail[0, 8, 9, 0] == pytest.approx(-4.75 * 3.5)
    assert detail[0, 9, 9, 0] == pytest.approx(-3.5 * 3.5)


def test_pyramid_mirrors_the_border_without_repeating_the_edge():
    image = np.zeros((1, 16, 16, 1), np.float32)
    image[0, 1, 1, 0] = 256
    blurred = swd.pyramid_down(image)
    # output (0, 0) sees pixel 1 through offsets -1 (mirrored to 1) and +1: (4 + 4) / 16 per axis
    assert blurred[0, 0, 0, 0] == pytest.approx(256 * 0.5 * 0.5)
    assert blurred[0, 0, 1, 0] == pytest.approx(256 * 0.5 * 4 / 16)  # column 2 sees pixel 1 at offset -1 only


def _direct_pyramid(images, level_count):
    """The reference's recipe, written plainly: full 5x5 2-D correlation, mirrored borders, zeros inserted to go up."""
    kernel = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256

    def correlate(x, weights):
        padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode='reflect')
        height, width = x.shape[1:3]
        return sum(weights[i, j] * padded[:, i:i + height, j:j + width] for i in range(5) for j in range(5))

    def up(x):
        spread = np.zeros((len(x), 2 * x.shape[1], 2 * x.shape[2], x.shape[3]))
        spread[:, ::2, ::2] = x
        return correlate(spread, 4 * kernel)

    levels = [images.astype(np.float64)]
    for _ in range(level_count - 1):
        levels.append(correlate(levels[-1], kernel)[:, ::2, ::2])
        levels[-2] = levels[-2] - up(levels[-1])
    return levels


def test_separable_pyramid_equals_the_direct_2d_recipe():
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 2)).astype(np.uint8)
    for mine, direct in zip(swd.laplacian_pyramid(images), _direct_pyramid(images, 3)):
        np.testing.assert_allclose(mine, direct, atol=1e-3)


def test_constant_pages_have_empty_detail_bands_and_a_constant_base():
    levels = swd.laplacian_pyramid(np.full((2, 64, 64, 3), 77, np.uint8))
    assert [level.shape[1] for level in levels] == [64, 32, 16]
    for detail in levels[:-1]:
        np.testing.assert_allclose(detail, 0, atol=1e-4)
    np.testing.assert_allclose(levels[-1], 77, atol=1e-4)


def test_laplacian_pyramid_reconstructs_the_image():
    images = synthetic_pages(3, 64, 3, np.random.default_rng(0))
    levels = swd.laplacian_pyramid(images)
    rebuilt = levels[-1]
    for detail in reversed(levels[:-1]):
        rebuilt = swd.pyramid_up(rebuilt) + detail
    np.testing.assert_allclose(rebuilt, images, atol=1e-3)


def test_patch_descriptors_are_the_7x7_patches_around_the_centers():
    images = np.arange(2 * 10 * 10 * 2, dtype=np.float32).reshape(2, 10, 10, 2)
    centers = np.array([[[3, 4], [6, 6]], [[6, 5], [3, 3]]])
    descriptors = swd.patch_descriptors(images, centers)
    assert descriptors.shape == (4, 2 * 49)
    for row, (image, (center_row, center_column)) in enumerate([(0, (3, 4)), (0, (6, 6)), (1, (6, 5)), (1, (3, 3))]):
        patch = images[image, center_row - 3:center_row + 4, center_column - 3:center_column + 4]
        np.testing.assert_array_equal(descriptors[row], patch.transpose(2, 0, 1).ravel())


def test_random_patch_centers_keep_patches_inside_the_level():
    centers = swd.random_patch_centers(np.random.default_rng(0), 50, 16)
    assert centers.shape == (50, 128, 2)
    assert centers.min() == 3 and centers.max() == 12


def test_descriptors_are_normalized_per_channel_and_a_constant_channel_stays_finite():
    rng = np.random.default_rng(0)
    descriptors = np.concatenate([rng.normal(200, 9, (500, 49)), np.full((500, 49), 5.0)], axis=1).astype(np.float32)
    normalized = swd.normalize_descriptors(descriptors, 2).reshape(500, 2, 49)
    np.testing.assert_allclose(normalized[:, 0].mean(), 0, atol=1e-5)
    np.testing.assert_allclose(normalized[:, 0].std(), 1, atol=1e-5)
    np.testing.assert_array_equal(normalized[:, 1], 0)


def test_sliced_wasserstein_of_a_one_dimensional_shift_is_the_shift():
    values = np.random.default_rng(0).normal(size=(1000, 1)).astype(np.float32)
    assert swd.sliced_wasserstein(values, values + 0.3, rng=0) == pytest.approx(0.3, rel=1e-5)
    assert swd.sliced_wasserstein(values, values, rng=0) == 0


def test_sliced_wasserstein_refuses_sets_of_different_shapes():
    with pytest.raises(ValueError, match='same shape'):
        swd.sliced_wasserstein(np.zeros((10, 4), np.float32), np.zeros((11, 4), np.float32))


def test_swd_of_a_set_with_itself_is_zero_and_grows_with_noise():
    rng = np.random.default_rng(1)
    pages = synthetic_pages(48, 32, 3, rng)
    assert swd.multiscale_swd(pages, pages.copy(), seed=3) == {'levels': {32: 0.0, 16: 0.0}, 'mean': 0.0}
    means = []
    for noise_std in (8, 24, 64):
        noisy = np.clip(pages + rng.normal(0, noise_std, pages.shape), 0, 255).astype(np.uint8)
        means.append(swd.multiscale_swd(pages, noisy, seed=3)['mean'])
    assert 0 < means[0] < means[1] < means[2]


def test_swd_is_deterministic_for_a_seed_and_independent_of_the_batch_size():
    rng = np.random.default_rng(2)
    pages_a, pages_b = synthetic_pages(20, 32, 1, rng), synthetic_pages(20, 32, 1, rng)
    first = swd.multiscale_swd(pages_a, pages_b, seed=5, batch_size=3)
    assert swd.multiscale_swd(pages_a, pages_b, seed=5, batch_size=64) == first
    assert swd.multiscale_swd(pages_a, pages_b, seed=6)['mean'] != first['mean']
    assert set(first['levels']) == {32, 16} and first['mean'] == pytest.approx(np.mean(list(first['levels'].values())))


@pytest.mark.parametrize('size', [4, 8])
def test_pages_smaller_than_16_have_a_single_level(size):
    rng = np.random.default_rng(3)
    result = swd.multiscale_swd(synthetic_pages(6, 32, 1, rng)[:, ::32 // size, ::32 // size],
                                synthetic_pages(6, 32, 1, rng)[:, ::32 // size, ::32 // size], seed=0)
    assert list(result['levels']) == [size] and np.isfinite(result['mean']) and result['mean'] > 0


def test_swd_refuses_float_images_and_sets_of_different_shapes():
    pages = synthetic_pages(4, 16, 1, np.random.default_rng(4))
    with pytest.raises(ValueError, match='uint8'):
        swd.multiscale_swd(pages.astype(np.float32), pages.astype(np.float32))
    with pytest.raises(ValueError, match='one shape'):
        swd.multiscale_swd(pages, pages[:3])
