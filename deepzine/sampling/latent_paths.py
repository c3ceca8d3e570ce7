"""Paths through latent space for interpolation videos: linear, slerp, via the origin, and a smooth looping random walk.

Pure numpy, no model: every function maps waypoints (or a random generator) to an
array of latents [frame_count, latent_size] in float32, the generator's input.

How many frames a waypoint path has (checked by the tests):

    segments = waypoint_count - 1            (loop off)
    segments = waypoint_count                (loop on: the last segment returns to the first waypoint)
    frames   = frames_per_segment * segments + 1   (loop off: the final waypoint closes the path)
    frames   = frames_per_segment * segments       (loop on: the first waypoint is not repeated,
                                                    so a looping movie has no doubled frame)

Each segment samples the fractions 0, 1/F, ..., (F-1)/F of the way from its start
to its end (F = frames_per_segment), so a shared waypoint appears exactly once.
The original DeepZine used the same fractions but never emitted the final waypoint.
"""

import logging

import numpy as np

logger = logging.getLogger(__name__)

WAYPOINT_METHODS = ('linear', 'slerp', 'tozero')
METHODS = WAYPOINT_METHODS + ('smooth',)

# Below this |sin(angle)| two directions count as (anti)parallel, where slerp's
# closed form divides by ~0; linear interpolation is then the natural limit.
_PARALLEL_SINE = 1e-6


def make_random_generator(random_seed):
    """numpy's Generator for `random_seed`; with None, draw a seed and log it so the run can be repeated."""
    if random_seed is None:
        random_seed = int(np.random.SeedSequence().entropy % 2**31)
        logger.info('random_seed not set: drew %d (set random_seed: %d to get the same latents again)', random_seed, random_seed)
    return np.random.default_rng(random_seed)


def standard_normal_latents(count, latent_size, random_generator):
    """`count` latents from N(0, 1), float32 [count, latent_size]; drawn all at once so batching never changes them."""
    return random_generator.standard_normal((count, latent_size)).astype(np.float32)


def _fractions_column(fractions):
    return np.asarray(fractions, dtype=np.float64).reshape(-1, 1)


def linear(start, end, fractions):
    """Points (1 - t) * start + t * end for each t in `fractions`: [len(fractions), latent_size]."""
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    t = _fractions_column(fractions)
    return (1.0 - t) * start + t * end


def slerp(start, end, fractions):
    """Spherical linear interpolation (Shoemake 1985), the closed form

        sin((1 - t) * angle) / sin(angle) * start + sin(t * angle) / sin(angle) * end,

    with `angle` between the two directions. Between vectors of equal norm the
    norm stays constant, which keeps Gaussian latents on the shell where the
    generator saw them during training (linear paths dip towards the origin).
    Parallel, antiparallel or zero vectors have no unique great circle: linear.
    """
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    norms = np.linalg.norm(start) * np.linalg.norm(end)
    if norms == 0:
        return linear(start, end, fractions)
    cosine = np.clip(np.dot(start, end) / norms, -1.0, 1.0)
    angle = np.arccos(cosine)
    sine = np.sin(angle)
    if sine < _PARALLEL_SINE:
        return linear(start, end, fractions)
    t = _fractions_column(fractions)
    return np.sin((1.0 - t) * angle) / sine * start + np.sin(t * angle) / sine * end


def tozero(start, end, fractions):
    """Linear to the origin during the first half, then linear out to `end` (at t = 0.5 the latent is zero).

    The original DeepZine's 'tozero': the centre of a GAN's latent space tends to
    look empty, so pages fade away and reappear as other pages.
    """
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    t = _fractions_column(fractions)
    towards_origin = (1.0 - 2.0 * t) * start
    away_from_origin = (2.0 * t - 1.0) * end
    return np.where(t < 0.5, towards_origin, away_from_origin)


_SEGMENT_FUNCTIONS = {'linear': linear, 'slerp': slerp, 'tozero': tozero}


def path_frame_count(waypoint_count, frames_per_segment, loop):
    """Frames of a waypoint path; see the module docstring for the rule."""
    if waypoint_count < 2:
        raise ValueError(f'a path needs at least 2 waypoints, got {waypoint_count}')
    if loop:
        return frames_per_segment * waypoint_count
    return frames_per_segment * (waypoint_count - 1) + 1


def waypoint_path(waypoints, frames_per_segment, method, loop):
    """Latents visiting each waypoint in order with `method` between them: float32 [path_frame_count(...), latent_size]."""
    waypoints = np.asarray(waypoints, np.float64)
    if method not in _SEGMENT_FUNCTIONS:
        raise ValueError(f'unknown interpolation method {method!r}; expected one of {", ".join(_SEGMENT_FUNCTIONS)}')
    if waypoints.ndim != 2:
        raise ValueError(f'waypoints must have shape [count, latent_size], got {list(waypoints.shape)}')
    if frames_per_segment < 1:
        raise ValueError(f'frames_per_segment must be at least 1, got {frames_per_segment}')
    path_frame_count(len(waypoints), frames_per_segment, loop)  # refuses fewer than 2 waypoints
    segment_function = _SEGMENT_FUNCTIONS[method]
    fractions = np.arange(frames_per_segment) / frames_per_segment
    ends = np.roll(waypoints, -1, axis=0) if loop else waypoints[1:]
    segments = [segment_function(start, end, fractions) for start, end in zip(waypoints, ends)]
    if not loop:
        segments.append(waypoints[-1:])
    return np.concatenate(segments).astype(np.float32)


def smooth_frame_count(duration_sec, fps):
    """Frames of a smooth walk lasting `duration_sec` at `fps` (at least one), as the PGGAN video script counts them."""
    return max(1, int(np.rint(duration_sec * fps)))


def circular_gaussian_smooth(values, sigma_frames):
    """Gaussian filter along axis 0 with wrap-around, i.e. scipy.ndimage.gaussian_filter1d(mode='wrap').

    Done as a product in the Fourier domain: the transform of a Gaussian of width
    sigma (in samples) is exp(-2 * (pi * sigma * frequency)^2), and the discrete
    Fourier transform is circular by construction, so the end blends into the
    start and the result loops without a seam. (scipy is not a dependency.)
    """
    values = np.asarray(values, np.float64)
    if sigma_frames <= 0 or len(values) < 2:
        return values.copy()
    frequencies = np.fft.rfftfreq(len(values))
    response = np.exp(-2.0 * (np.pi * sigma_frames * frequencies) ** 2)
    spectrum = np.fft.rfft(values, axis=0) * response.reshape((-1,) + (1,) * (values.ndim - 1))
    return np.fft.irfft(spectrum, n=len(values), axis=0)


def smooth_loop_walk(frame_count, latent_size, smoothing_frames, random_generator):
    """A random walk that loops seamlessly: white noise per frame, smoothed over time, rescaled to unit variance.

    As in generate_interpolation_video of the official PGGAN code (Karras et al.
    2018, util_scripts.py): gaussian_filter(noise, [smoothing_sec * fps, 0], mode='wrap')
    then division by the root mean square, so the latents have the statistics the
    generator was trained on. The last frame is as close to the first as any two
    neighbouring frames are. Returns float32 [frame_count, latent_size].
    """
    noise = random_generator.standard_normal((frame_count, latent_size))
    smoothed = circular_gaussian_smooth(noise, smoothing_frames)
    root_mean_square = np.sqrt(np.mean(np.square(smoothed)))
    if root_mean_square > 0:
        smoothed /= root_mean_square
    return smoothed.astype(np.float32)


def looping_tour(waypoints, frame_count):
    """`frame_count` points going linearly from each waypoint to the next and from the last back to the first, each
    segment an equal share of the frames: float32 [frame_count, width]. How a smooth walk's collection travels."""
    waypoints = np.asarray(waypoints, np.float64)
    position = np.arange(frame_count) * len(waypoints) / frame_count
    start = np.floor(position).astype(int)
    fraction = (position - start)[:, None]
    return ((1.0 - fraction) * waypoints[start % len(waypoints)]
            + fraction * waypoints[(start + 1) % len(waypoints)]).astype(np.float32)
