import numpy as np
import pytest

from deepzine.sampling import latent_paths
from deepzine.sampling.latent_paths import (circular_gaussian_smooth, linear, path_frame_count, slerp, smooth_frame_count,
                                            smooth_loop_walk, standard_normal_latents, tozero, waypoint_path)


def _random_vectors(count, size=16, seed=0):
    return np.random.default_rng(seed).standard_normal((count, size))


# --- slerp ---------------------------------------------------------------------------------------------

def test_slerp_endpoints_are_exact():
    start, end = _random_vectors(2)
    path = slerp(start, end, [0.0, 1.0])
    np.testing.assert_allclose(path[0], start, rtol=0, atol=1e-12)
    np.testing.assert_allclose(path[1], end, rtol=0, atol=1e-12)


def test_slerp_keeps_the_norm_between_vectors_of_equal_norm():
    start, end = _random_vectors(2)
    end *= np.linalg.norm(start) / np.linalg.norm(end)
    norms = np.linalg.norm(slerp(start, end, np.linspace(0, 1, 33)), axis=1)
    np.testing.assert_allclose(norms, np.linalg.norm(start), rtol=1e-12)
    # the point of slerp: linear interpolation between the same vectors sags towards the origin
    assert np.linalg.norm(linear(start, end, [0.5])[0]) < 0.9 * np.linalg.norm(start)


def test_slerp_equals_the_closed_form():
    start, end = _random_vectors(2, seed=3)
    end *= 2.5  # unequal norms: the formula, not a rotation, is the definition
    angle = np.arccos(np.dot(start, end) / (np.linalg.norm(start) * np.linalg.norm(end)))
    for t in (0.1, 0.37, 0.5, 0.9):
        expected = np.sin((1 - t) * angle) / np.sin(angle) * start + np.sin(t * angle) / np.sin(angle) * end
        np.testing.assert_allclose(slerp(start, end, [t])[0], expected, rtol=1e-12)


def test_slerp_moves_at_constant_angular_speed_on_the_great_circle():
    start, end = _random_vectors(2, seed=4)
    end *= np.linalg.norm(start) / np.linalg.norm(end)
    total_angle = np.arccos(np.dot(start, end) / np.dot(start, start))
    for t, point in zip((0.25, 0.5, 0.75), slerp(start, end, [0.25, 0.5, 0.75])):
        angle_from_start = np.arccos(np.clip(np.dot(start, point) / (np.linalg.norm(start) * np.linalg.norm(point)), -1, 1))
        assert angle_from_start == pytest.approx(t * total_angle, rel=1e-9)
        # in the plane of start and end: no component outside it
        basis, _ = np.linalg.qr(np.stack([start, end], axis=1))
        np.testing.assert_allclose(basis @ (basis.T @ point), point, atol=1e-10)


@pytest.mark.parametrize('factor', [3.0, -2.0, 0.0])
def test_slerp_falls_back_to_linear_for_parallel_antiparallel_and_zero_vectors(factor):
    start = _random_vectors(1)[0]
    end = factor * start
    fractions = np.linspace(0, 1, 9)
    path = slerp(start, end, fractions)
    assert np.all(np.isfinite(path))
    np.testing.assert_allclose(path, linear(start, end, fractions), rtol=1e-12)


def test_slerp_of_a_vector_with_itself_stays_put():
    start = _random_vectors(1)[0]
    np.testing.assert_allclose(slerp(start, start, np.linspace(0, 1, 5)), np.tile(start, (5, 1)))


# --- linear and tozero --------------------------------------------------------------------------------

def test_linear_midpoint_is_the_mean():
    start, end = _random_vectors(2)
    np.testing.assert_allclose(linear(start, end, [0.5])[0], (start + end) / 2)


def test_tozero_passes_the_origin_at_the_midpoint():
    start, end = _random_vectors(2)
    path = tozero(start, end, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(path[0], start)
    np.testing.assert_allclose(path[1], 0.5 * start)   # halfway to the origin along start
    np.testing.assert_allclose(path[2], np.zeros_like(start), atol=1e-15)
    np.testing.assert_allclose(path[3], 0.5 * end)     # halfway out along end
    np.testing.assert_allclose(path[4], end)


def test_tozero_path_reaches_the_origin_in_the_middle_of_each_segment():
    waypoints = _random_vectors(3)
    path = waypoint_path(waypoints, 10, 'tozero', loop=False)
    assert np.linalg.norm(path[5]) == 0 and np.linalg.norm(path[15]) == 0
    assert np.all(np.linalg.norm(np.delete(path, [5, 15], axis=0), axis=1) > 0)


# --- waypoint paths: frame counts and shared endpoints ---------------------------------------------------

@pytest.mark.parametrize('method', ['linear', 'slerp', 'tozero'])
@pytest.mark.parametrize('waypoint_count', [2, 3, 7])
@pytest.mark.parametrize('frames_per_segment', [1, 4, 25])
@pytest.mark.parametrize('loop', [False, True])
def test_frame_counts_are_exact(method, waypoint_count, frames_per_segment, loop):
    waypoints = _random_vectors(waypoint_count)
    path = waypoint_path(waypoints, frames_per_segment, method, loop)
    expected = frames_per_segment * waypoint_count if loop else frames_per_segment * (waypoint_count - 1) + 1
    assert path_frame_count(waypoint_count, frames_per_segment, loop) == expected
    assert path.shape == (expected, waypoints.shape[1])
    assert path.dtype == np.float32
    # every waypoint appears exactly once, at the start of its segment
    for index, waypoint in enumerate(waypoints):
        np.testing.assert_allclose(path[index * frames_per_segment], waypoint, rtol=1e-6, atol=1e-6)
        matches = np.all(np.isclose(path, waypoint.astype(np.float32), rtol=1e-6, atol=1e-6), axis=1)
        assert matches.sum() == 1


def test_open_path_ends_on_the_last_waypoint_and_loop_returns_towards_the_first():
    waypoints = _random_vectors(4)
    open_path = waypoint_path(waypoints, 10, 'linear', loop=False)
    np.testing.assert_allclose(open_path[-1], waypoints[-1], rtol=1e-6)
    looped = waypoint_path(waypoints, 10, 'linear', loop=True)
    np.testing.assert_allclose(looped[:31], open_path, rtol=1e-6)
    # the loop's last frame is one step short of the first waypoint, so frame 0 follows without a repeat
    np.testing.assert_allclose(looped[-1] + (waypoints[0] - waypoints[-1]) / 10, waypoints[0], rtol=1e-5, atol=1e-6)


def test_waypoint_path_refuses_too_few_waypoints_and_unknown_methods():
    with pytest.raises(ValueError, match='at least 2 waypoints'):
        waypoint_path(_random_vectors(1), 5, 'slerp', loop=True)
    with pytest.raises(ValueError, match='unknown interpolation method'):
        waypoint_path(_random_vectors(2), 5, 'cubic', loop=False)


# --- the smooth looping walk --------------------------------------------------------------------------

def test_smooth_frame_count_follows_duration_and_fps():
    assert smooth_frame_count(60.0, 30) == 1800
    assert smooth_frame_count(1.0, 24) == 24
    assert smooth_frame_count(0.01, 10) == 1


def test_circular_gaussian_smooth_equals_a_wrapped_convolution():
    values = _random_vectors(40, size=3)
    sigma = 2.5
    offsets = np.arange(40)
    # the periodic Gaussian: sum of the kernel over its images shifted by multiples of the length
    kernel = sum(np.exp(-0.5 * ((offsets + 40 * shift) / sigma) ** 2) for shift in range(-5, 6))
    kernel /= kernel.sum()
    expected = np.stack([sum(kernel[(frame - source) % 40] * values[source] for source in range(40)) for frame in range(40)])
    np.testing.assert_allclose(circular_gaussian_smooth(values, sigma), expected, atol=1e-6)


def test_circular_gaussian_smooth_with_zero_width_is_the_identity():
    values = _random_vectors(10)
    np.testing.assert_array_equal(circular_gaussian_smooth(values, 0), values)


def test_smooth_walk_loops_and_is_smooth():
    walk = smooth_loop_walk(300, 32, smoothing_frames=10, random_generator=np.random.default_rng(5))
    assert walk.shape == (300, 32) and walk.dtype == np.float32
    steps = np.linalg.norm(np.diff(walk, axis=0), axis=1)
    seam = np.linalg.norm(walk[0] - walk[-1])
    assert seam <= steps.max()                       # last frame adjacent to the first, like any neighbour
    far_apart = np.linalg.norm(walk[:150] - walk[150:], axis=1)
    assert seam < 0.2 * np.median(far_apart)         # and much closer than unrelated frames
    assert np.sqrt(np.mean(np.square(walk))) == pytest.approx(1.0, rel=1e-5)  # trained-on latent statistics


# --- random latents -----------------------------------------------------------------------------------

def test_same_seed_same_latents_and_batching_cannot_change_them():
    first = standard_normal_latents(10, 8, latent_paths.make_random_generator(7))
    second = standard_normal_latents(10, 8, latent_paths.make_random_generator(7))
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.float32 and first.shape == (10, 8)
    assert not np.array_equal(first, standard_normal_latents(10, 8, latent_paths.make_random_generator(8)))


def test_no_seed_draws_a_fresh_seed_and_logs_it(caplog):
    with caplog.at_level('INFO', logger='deepzine.sampling.latent_paths'):
        first = standard_normal_latents(4, 8, latent_paths.make_random_generator(None))
        second = standard_normal_latents(4, 8, latent_paths.make_random_generator(None))
    assert not np.array_equal(first, second)
    assert 'random_seed not set: drew' in caplog.text
