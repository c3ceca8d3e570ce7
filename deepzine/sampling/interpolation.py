"""The `interpolation` stage: frames of a walk through latent space, and optionally a movie of them.

    interpolation: true
    interpolation_method: slerp          # linear, slerp, tozero (alias origin), smooth
    interpolation_vector_num: 10         # random waypoints (or interpolation_latents: waypoints.npy)
    interpolation_frames: 100            # frames per segment between two waypoints
    export_movie: true                   # -> <run folder>/interpolation.mp4

From two pages of an inference grid to a movie: point interpolation_latents at
that run's inference_latents.npy and pick the pages' rows with
interpolation_latent_rows: [3, 17]. From your own pages: point it at a
projection's projected_latents.npy (or run the project stage in the same
config, whose pages it then visits); interpolation_real_page_frames shows the
real pages (projected_pages.npy, beside it) at the start and the end. Frames are interpolation_00000.png, ... in
the run folder, as the original DeepZine named them. Frame counts are defined
in deepzine.sampling.latent_paths.

With a model conditioned on collections every waypoint carries a collection
too, and the collection input travels linearly from one waypoint's to the
next's along with the latent, so the pages drift from one collection into
another. The waypoints' collections are `interpolation_collections` in turn
(every collection when unset: the movie tours them), or, for waypoints read
from a latents file, the collections saved beside it (deepzine.sampling.generation).
A smooth walk tours the collections over its whole length.
"""

import dataclasses
import logging
import os

import numpy as np

from deepzine.model.loading import load_generator
from deepzine.parameter_groups import ModelFileParameters, OutputSizeParameters, SampleOutputParameters, SeedParameters
from deepzine.parameters import ConfigError, Parameter, non_negative, positive
from deepzine.sampling import latent_paths, movie
from deepzine.sampling.generation import (check_collection_names, check_latents_file, companion_file, next_run_folder,
                                          numbered_name, read_collections_file, read_latents_file, sampling_model,
                                          write_numbered_images)
from deepzine.sampling.images import save_image
from deepzine.stage import Stage

logger = logging.getLogger(__name__)

FRAME_PREFIX = 'interpolation'
FRAME_FORMAT = 'png'  # lossless: the movie encoder should see the generator's pixels, not JPEG artefacts


def _at_least_two(value):
    if value is not None and value < 2:
        return 'must be at least 2 (a path needs a start and an end)'


def _crf_range(value):
    if value is not None and not 0 <= value <= 63:
        return 'must be between 0 (lossless) and 51 (worst) for libx264/libx265, up to 63 for VP9/AV1'


def _even_positive(value):
    if value is not None and (value <= 0 or value % 2):
        return 'must be a positive even number of pixels (H.264 in yuv420p needs even sizes)'


def _row_list(value):
    if value is not None and (not value or any(not isinstance(row, int) or row < 0 for row in value)):
        return 'must be a list of row numbers (0 is the first row), e.g. [3, 17]'


@dataclasses.dataclass(frozen=True)
class MovieSettings:
    path: str
    fps: int
    codec: str
    crf: int
    size: object


@dataclasses.dataclass(frozen=True)
class InterpolationPlan:
    model: object                 # deepzine.model.loading.ModelLocation
    run_folder: str
    method: str
    waypoints_file: str
    waypoint_rows: object
    waypoint_count: int
    frames_per_segment: int
    loop: bool
    smooth_duration_sec: float
    smoothing_sec: float
    fps: int
    batch_size: int
    random_seed: object
    contrast_stretch: bool
    movie: object                 # MovieSettings, or None
    collections: object           # the waypoints' collections, in turn (None: as saved with the latents, or all)
    real_pages_file: str = None   # uint8 pages [N, S, S, C], one per row of waypoints_file (projected_pages.npy)
    real_page_frames: int = 0     # frames of the first waypoint's real page before the walk, and of the last's after it

    def real_frames_description(self):
        if not self.real_page_frames:
            return ''
        where = 'the first waypoint\'s' + ('' if self.loop else ' and then the last waypoint\'s')
        return f'; {self.real_page_frames} frame(s) of {where} real page from {self.real_pages_file}'

    def frame_count_description(self):
        if self.method == 'smooth':
            count = latent_paths.smooth_frame_count(self.smooth_duration_sec, self.fps)
            return (f'{count} frames of a looping smooth walk ({self.smooth_duration_sec:g} s at {self.fps} fps, '
                    f'smoothing {self.smoothing_sec:g} s)')
        if self.waypoints_file and self.waypoint_rows is None:
            rule = f'{self.frames_per_segment} x N' if self.loop else f'{self.frames_per_segment} x (N - 1) + 1'
            return f'{rule} frames through the N waypoints of {self.waypoints_file} ({self.method})'
        count = latent_paths.path_frame_count(self.waypoint_count, self.frames_per_segment, self.loop)
        source = (f'rows {list(self.waypoint_rows)} of {self.waypoints_file}' if self.waypoints_file
                  else f'{self.waypoint_count} random waypoints')
        return (f'{count} frames through {source} ({self.method}, {self.frames_per_segment} per segment, '
                f'loop {"on" if self.loop else "off"})')


class InterpolationStage(Stage, OutputSizeParameters, ModelFileParameters, SampleOutputParameters, SeedParameters):
    toggle = 'interpolation'
    summary = 'a walk through latent space, its frames and a movie'

    interpolation = Parameter(False, 'bool', 'render a walk through latent space as frames interpolation_00000.png, ... in a new run folder')
    interpolation_method = Parameter('slerp', 'str', 'path between waypoints: linear, slerp (great circle), tozero (via the origin), '
                                     'or smooth (a looping Gaussian-smoothed random walk, as in the PGGAN videos)',
                                     choices=latent_paths.METHODS, aliases={'origin': 'tozero'})
    interpolation_latents = Parameter(None, 'path', '.npy of waypoints [N, latent_size], N >= 2, instead of random ones (not for smooth), e.g. the inference_latents.npy of an inference run')
    interpolation_latent_rows = Parameter(None, 'list', 'rows of interpolation_latents to visit, in this order, e.g. [3, 17] for pages 3 and 17 of an inference run (0 is the first); None: every row', check=_row_list)
    interpolation_frames = Parameter(100, 'int', 'frames per segment between two waypoints (not for smooth)', check=positive)
    interpolation_vector_num = Parameter(10, 'int', 'random waypoints to visit when interpolation_latents is not set (not for smooth)', check=_at_least_two)
    interpolation_loop = Parameter(False, 'bool', 'add a last segment back to the first waypoint so the movie loops (smooth always loops)')
    interpolation_duration_sec = Parameter(60.0, 'float', 'smooth only: length of the walk in seconds at movie_fps', check=positive)
    interpolation_smoothing_sec = Parameter(1.0, 'float', 'smooth only: width (sigma) of the Gaussian over time in seconds; larger drifts slower', check=non_negative)
    export_movie = Parameter(False, 'bool', 'encode the interpolation frames into a video (ffmpeg bundled with imageio-ffmpeg)')
    movie_path = Parameter(None, 'path', f'the video to write; its extension picks the container ({", ".join(movie.CONTAINERS)}); None: interpolation.mp4 in the run folder')
    movie_fps = Parameter(movie.DEFAULT_FPS, 'int', 'frames per second of the movie (and of the smooth walk)', check=positive)
    movie_codec = Parameter(None, 'str', 'ffmpeg video encoder; None: the usual one for the container (libx264 for .mp4, libvpx-vp9 for .webm, gif for .gif); libx265 or libaom-av1 are smaller')
    movie_crf = Parameter(movie.DEFAULT_CRF, 'int', 'constant rate factor: 0 lossless, 18 visually lossless, 51 worst (not for gif)', check=_crf_range)
    interpolation_real_page_frames = Parameter(0, 'int', 'frames showing the real page of the first waypoint before the walk and of the last after it (not when looping), '
                                               'from the <X>_pages.npy beside interpolation_latents <X>_latents.npy, as a projection writes; 0: none', check=non_negative)
    movie_size = Parameter(None, 'int', 'longer side of the movie in pixels, even (pages are square: its width and height); '
                           f'nearest-neighbour upscale; None: a whole multiple of the model size, at least {movie.AUTOMATIC_MIN_SIZE}', check=_even_positive)
    interpolation_collections = Parameter(None, 'list', 'a conditional model\'s collections for the waypoints, in turn, e.g. [manuals, music, cards]: the movie drifts from one to the next; None: those saved with interpolation_latents, else every collection (a tour)')

    def validate(self, earlier):
        if self.interpolation_method == 'smooth' and self.interpolation_latents:
            raise ConfigError(f'interpolation_latents={self.interpolation_latents}: smooth draws its own random walk; '
                              'use linear, slerp or tozero to visit given latents')
        waypoints_file = self._waypoints_file(earlier)
        if self.interpolation_latent_rows is not None and not waypoints_file:
            raise ConfigError(f'interpolation_latent_rows={self.interpolation_latent_rows}: rows of which file? set '
                              'interpolation_latents, e.g. to the inference_latents.npy of an inference run')
        if self.interpolation_latent_rows is not None and len(self.interpolation_latent_rows) < 2:
            raise ConfigError(f'interpolation_latent_rows={self.interpolation_latent_rows}: a path needs at least 2 rows')
        real_pages_file = self._real_pages_file(waypoints_file, earlier)
        run_folder = next_run_folder(self.inference_output_directory, earlier)
        model = sampling_model(self.inference_model_directory or self.log_dir, self.inference_model_path,
                               self.gan_output_size, self.pretrained_model, earlier)
        if self.interpolation_collections is not None and model.collection_names is not None:
            check_collection_names('interpolation_collections', self.interpolation_collections, model.collection_names)
        return InterpolationPlan(
            model=model, run_folder=run_folder, method=self.interpolation_method,
            waypoints_file=waypoints_file, real_pages_file=real_pages_file,
            real_page_frames=self.interpolation_real_page_frames,
            waypoint_rows=tuple(self.interpolation_latent_rows) if self.interpolation_latent_rows else None,
            waypoint_count=(len(self.interpolation_latent_rows) if self.interpolation_latent_rows
                            else self.interpolation_vector_num),
            frames_per_segment=self.interpolation_frames, loop=self.interpolation_loop,
            smooth_duration_sec=self.interpolation_duration_sec, smoothing_sec=self.interpolation_smoothing_sec,
            fps=self.movie_fps, batch_size=self.inference_batch_size,
            random_seed=self.random_seed, contrast_stretch=self.contrast_stretch,
            movie=self._movie(run_folder) if self.export_movie else None,
            collections=tuple(self.interpolation_collections) if self.interpolation_collections else None)

    def _waypoints_file(self, earlier):
        """interpolation_latents, or the latents the project stage of this run writes, or None (random waypoints)."""
        if self.interpolation_latents:
            check_latents_file('interpolation_latents', self.interpolation_latents)
            return self.interpolation_latents
        projecting = earlier.get('project')
        if projecting is not None and self.interpolation_method != 'smooth':
            return projecting.latents_path
        return None

    def _real_pages_file(self, waypoints_file, earlier):
        if not self.interpolation_real_page_frames:
            return None
        key = f'interpolation_real_page_frames={self.interpolation_real_page_frames}'
        if not waypoints_file:
            raise ConfigError(f'{key}: the real pages are read from the <X>_pages.npy beside interpolation_latents '
                              f'<X>_latents.npy (a projection\'s projected_latents.npy); set interpolation_latents')
        pages = companion_file(waypoints_file, 'pages.npy')
        projecting = earlier.get('project')
        if not os.path.isfile(pages) and not (projecting and waypoints_file == projecting.latents_path):
            raise ConfigError(f'{key}: no real pages at {pages} (the project stage writes them beside its latents)')
        return pages

    def _movie(self, run_folder):
        path = self.movie_path or os.path.join(run_folder, 'interpolation.mp4')
        if os.path.isdir(path):
            raise ConfigError(f'movie_path={path}: is a folder; give a file name such as interpolation.mp4')
        codec = movie.check_movie_output(path, self.movie_codec, key='movie_path')
        return MovieSettings(path, self.movie_fps, codec, self.movie_crf, self.movie_size)

    def describe(self, plan):
        seed = 'a fresh random seed' if plan.random_seed is None else f'random_seed {plan.random_seed}'
        first = os.path.join(plan.run_folder, numbered_name(FRAME_PREFIX, 0, FRAME_FORMAT))
        lines = [f'load {plan.model.describe()}',
                 f'render {plan.frame_count_description()}, {seed}, batches of {plan.batch_size}'
                 f'{plan.real_frames_description()}',
                 f'write {first} ...']
        if plan.model.collection_names:
            tour = ', '.join(plan.collections or ('as saved with the latents' if plan.waypoints_file else 'every one',))
            lines.insert(2, f'the collection travels with the latent, waypoint by waypoint: {tour}')
        if plan.movie:
            size = 'automatic size' if plan.movie.size is None else f'{plan.movie.size}px'
            lines.append(f'encode {plan.movie.path} ({plan.movie.codec}, crf {plan.movie.crf}, {plan.movie.fps} fps, {size})')
        return lines

    def output_directory(self, plan):
        return plan.run_folder

    def run(self, plan):
        generator = load_generator(plan.model, plan.batch_size)
        latents, collections = frame_latents(plan, generator)
        first, last = real_page_ends(plan, generator) if plan.real_page_frames else (None, None)
        frame_paths = write_still_frames(first, plan.real_page_frames, plan.run_folder, 0)
        walk_paths, _ = write_numbered_images(generator, latents, plan.run_folder, FRAME_PREFIX, FRAME_FORMAT,
                                              plan.contrast_stretch, collections=collections,
                                              first_index=len(frame_paths))
        frame_paths += walk_paths
        frame_paths += write_still_frames(last, plan.real_page_frames, plan.run_folder, len(frame_paths))
        logger.info('interpolation: wrote %d frames to %s', len(frame_paths), plan.run_folder)
        if plan.movie:
            movie.write_movie(frame_paths, plan.movie.path, fps=plan.movie.fps, codec=plan.movie.codec,
                              crf=plan.movie.crf, movie_size=plan.movie.size)
        return frame_paths


def frame_latents(plan, generator):
    """(latents float32 [frame_count, latent_size], collections float32 [frame_count, collection_count] or None for an
    unconditional generator) of every frame."""
    latent_size, names = generator.latent_size, generator.collection_names
    tour = check_collection_names('interpolation_collections', plan.collections, names) if names or plan.collections else ()
    random_generator = latent_paths.make_random_generator(plan.random_seed)
    if plan.method == 'smooth':
        latents = latent_paths.smooth_loop_walk(latent_paths.smooth_frame_count(plan.smooth_duration_sec, plan.fps),
                                                latent_size, plan.smoothing_sec * plan.fps, random_generator)
        return latents, (latent_paths.looping_tour(_rows(generator, tour), len(latents)) if names else None)
    saved = None
    if plan.waypoints_file:
        waypoints = read_latents_file('interpolation_latents', plan.waypoints_file, latent_size, minimum_count=2,
                                      rows=plan.waypoint_rows, rows_key='interpolation_latent_rows')
        saved = read_collections_file(plan.waypoints_file, names, 'interpolation_latents', plan.waypoint_rows)
    else:
        waypoints = latent_paths.standard_normal_latents(plan.waypoint_count, latent_size, random_generator)
    latents = latent_paths.waypoint_path(waypoints, plan.frames_per_segment, plan.method, plan.loop)
    if not names:
        return latents, None
    visited = saved if saved and plan.collections is None else [tour[index % len(tour)] for index in range(len(waypoints))]
    collections = latent_paths.waypoint_path(_rows(generator, visited), plan.frames_per_segment, 'linear', plan.loop)
    return latents, collections


def _rows(generator, names):
    """One-hot rows of the collections `names` of a conditional generator."""
    return generator.one_hot([generator.collection_names.index(name) for name in names])


def real_page_ends(plan, generator):
    """(real page of the first waypoint, of the last one or None when looping) as uint8 [S, S, C]."""
    try:
        pages = np.load(plan.real_pages_file, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ConfigError(f'interpolation_real_page_frames: {plan.real_pages_file} is not a readable .npy ({error})') from None
    wanted = (generator.size, generator.size, generator.channels)
    if pages.dtype != np.uint8 or pages.ndim != 4 or pages.shape[1:] != wanted:
        raise ConfigError(f'interpolation_real_page_frames: {plan.real_pages_file} holds {pages.dtype} '
                          f'{list(pages.shape)}, expected uint8 pages [N, {", ".join(map(str, wanted))}] for this model')
    rows = list(plan.waypoint_rows) if plan.waypoint_rows else list(range(len(pages)))
    if max(rows) >= len(pages):
        raise ConfigError(f'interpolation_real_page_frames: {plan.real_pages_file} has {len(pages)} pages, '
                          f'rows {rows} were asked for')
    return pages[rows[0]], None if plan.loop else pages[rows[-1]]


def write_still_frames(page, count, directory, first_index):
    """`count` numbered frames of one uint8 page from first_index on; none for no page."""
    if page is None:
        return []
    return [save_image(page, os.path.join(directory, numbered_name(FRAME_PREFIX, first_index + offset, FRAME_FORMAT)))
            for offset in range(count)]
