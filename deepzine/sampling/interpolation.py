"""The `interpolation` stage: frames of a walk through latent space, and optionally a movie of them.

    interpolation: true
    interpolation_method: slerp          # linear, slerp, tozero (alias origin), smooth
    interpolation_vector_num: 10         # random waypoints (or interpolation_latents: waypoints.npy)
    interpolation_frames: 100            # frames per segment between two waypoints
    export_movie: true                   # -> <inference_output_directory>/interpolation.mp4

Frames are interpolation_00000.png, ... in inference_output_directory, as in the
original DeepZine. Frame counts are defined in deepzine.sampling.latent_paths.
"""

import logging
import os

from deepzine.parameter_groups import ModelFileParameters, ModelParameters, SampleOutputParameters
from deepzine.parameters import ConfigError, Parameter, non_negative, positive
from deepzine.sampling import latent_paths, movie
from deepzine.sampling.generation import (check_latents_file, check_model_exists, generate_numbered_images, load_page_generator, model_location,
                                          numbered_name, read_latents_file, remove_stale_numbered_files)
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


class InterpolationStage(Stage, ModelParameters, ModelFileParameters, SampleOutputParameters):
    toggle = 'interpolation'

    interpolation = Parameter(False, 'bool', 'render a walk through latent space as frames interpolation_00000.png, ...')
    interpolation_method = Parameter('slerp', 'str', 'path between waypoints: linear, slerp (great circle), tozero (via the origin), '
                                     'or smooth (a looping Gaussian-smoothed random walk, as in the PGGAN videos)',
                                     choices=latent_paths.METHODS, aliases={'origin': 'tozero'})
    interpolation_latents = Parameter(None, 'path', '.npy of waypoints [N, latent_size], N >= 2, instead of random ones (not for smooth)')
    interpolation_frames = Parameter(100, 'int', 'frames per segment between two waypoints (not for smooth)', check=positive)
    interpolation_vector_num = Parameter(10, 'int', 'random waypoints to visit when interpolation_latents is not set (not for smooth)', check=_at_least_two)
    interpolation_loop = Parameter(False, 'bool', 'add a last segment back to the first waypoint so the movie loops (smooth always loops)')
    interpolation_duration_sec = Parameter(60.0, 'float', 'smooth only: length of the walk in seconds at movie_fps', check=positive)
    interpolation_smoothing_sec = Parameter(1.0, 'float', 'smooth only: width (sigma) of the Gaussian over time in seconds; larger drifts slower', check=non_negative)
    export_movie = Parameter(False, 'bool', 'encode the interpolation frames into a video (ffmpeg bundled with imageio-ffmpeg)')
    movie_path = Parameter(None, 'path', 'the video to write; None: <inference_output_directory>/interpolation.mp4')
    movie_fps = Parameter(movie.DEFAULT_FPS, 'int', 'frames per second of the movie (and of the smooth walk)', check=positive)
    movie_codec = Parameter(movie.DEFAULT_CODEC, 'str', 'ffmpeg video encoder: libx264 plays everywhere; libx265 or libaom-av1 are smaller')
    movie_crf = Parameter(movie.DEFAULT_CRF, 'int', 'constant rate factor: 0 lossless, 18 visually lossless, 51 worst', check=_crf_range)
    movie_size = Parameter(None, 'int', 'movie width and height in pixels, even (nearest-neighbour upscale); '
                           f'None: a whole multiple of the model size, at least {movie.AUTOMATIC_MIN_SIZE}', check=_even_positive)

    def validate(self):
        check_model_exists(self)
        if self.interpolation_method == 'smooth' and self.interpolation_latents:
            raise ConfigError(f'interpolation_latents={self.interpolation_latents}: smooth draws its own random walk; '
                              'use linear, slerp or tozero to visit given latents')
        check_latents_file('interpolation_latents', self.interpolation_latents)
        if self.export_movie and os.path.isdir(self.resolved_movie_path()):
            raise ConfigError(f'movie_path={self.movie_path}: is a folder; give a file name such as interpolation.mp4')
        if self.export_movie and not os.path.splitext(self.resolved_movie_path())[1]:
            raise ConfigError(f'movie_path={self.movie_path}: needs an extension (.mp4, .mkv, .mov) to choose the container')

    def resolved_movie_path(self):
        return self.movie_path or os.path.join(self.inference_output_directory, 'interpolation.mp4')

    def frame_count_description(self):
        if self.interpolation_method == 'smooth':
            count = latent_paths.smooth_frame_count(self.interpolation_duration_sec, self.movie_fps)
            return (f'{count} frames of a looping smooth walk ({self.interpolation_duration_sec:g} s at {self.movie_fps} fps, '
                    f'smoothing {self.interpolation_smoothing_sec:g} s)')
        if self.interpolation_latents:
            rule = f'{self.interpolation_frames} x N' if self.interpolation_loop else f'{self.interpolation_frames} x (N - 1) + 1'
            return f'{rule} frames through the N waypoints of {self.interpolation_latents} ({self.interpolation_method})'
        count = latent_paths.path_frame_count(self.interpolation_vector_num, self.interpolation_frames, self.interpolation_loop)
        return (f'{count} frames through {self.interpolation_vector_num} random waypoints ({self.interpolation_method}, '
                f'{self.interpolation_frames} per segment, loop {"on" if self.interpolation_loop else "off"})')

    def plan(self):
        seed = 'a fresh random seed' if self.random_seed is None else f'random_seed {self.random_seed}'
        first = os.path.join(self.inference_output_directory, numbered_name(FRAME_PREFIX, 0, FRAME_FORMAT))
        lines = [f'load the {self.gan_output_size}px generator from {model_location(self)}',
                 f'render {self.frame_count_description()}, {seed}, batches of {self.inference_batch_size}',
                 f'write {first} ...']
        if self.export_movie:
            size = 'automatic size' if self.movie_size is None else f'{self.movie_size}px'
            lines.append(f'encode {self.resolved_movie_path()} ({self.movie_codec}, crf {self.movie_crf}, {self.movie_fps} fps, {size})')
        return lines

    def output_directory(self):
        return self.inference_output_directory

    def latent_path(self, latent_size):
        """The latents of every frame, float32 [frame_count, latent_size]."""
        random_generator = latent_paths.make_random_generator(self.random_seed)
        if self.interpolation_method == 'smooth':
            frame_count = latent_paths.smooth_frame_count(self.interpolation_duration_sec, self.movie_fps)
            smoothing_frames = self.interpolation_smoothing_sec * self.movie_fps
            return latent_paths.smooth_loop_walk(frame_count, latent_size, smoothing_frames, random_generator)
        if self.interpolation_latents:
            waypoints = read_latents_file('interpolation_latents', self.interpolation_latents, latent_size, minimum_count=2)
        else:
            waypoints = latent_paths.standard_normal_latents(self.interpolation_vector_num, latent_size, random_generator)
        return latent_paths.waypoint_path(waypoints, self.interpolation_frames, self.interpolation_method, self.interpolation_loop)

    def run(self):
        generator = load_page_generator(self)
        if self.export_movie:
            movie.check_codec(self.movie_codec)  # before rendering, not after minutes of it
        latents = self.latent_path(generator.latent_size)
        frame_paths, _ = generate_numbered_images(generator, latents, self.inference_output_directory, FRAME_PREFIX,
                                                  FRAME_FORMAT, self.inference_batch_size)
        remove_stale_numbered_files(self.inference_output_directory, FRAME_PREFIX, (FRAME_FORMAT,), len(frame_paths), FRAME_FORMAT)
        logger.info('interpolation: wrote %d frames to %s', len(frame_paths), self.inference_output_directory)
        if self.export_movie:
            movie.write_movie(frame_paths, self.resolved_movie_path(), fps=self.movie_fps, codec=self.movie_codec,
                              crf=self.movie_crf, movie_size=self.movie_size)
        return frame_paths
