"""Encode frames (image files or arrays) into a video with the ffmpeg binary that ships inside imageio-ffmpeg.

No system ffmpeg is needed: `imageio_ffmpeg.get_ffmpeg_exe()` points at the
binary in the wheel. Small models are scaled up with nearest-neighbour (crisp
pixels rather than blur) so a 64x64 model still makes a watchable video.

The container comes from the file's extension (CONTAINERS): each holds only
some encoders, and a wrong pair is refused before any frame is rendered (an
encoder ffmpeg refuses would otherwise only show as a broken pipe at the end).
`deepzine movie FRAMES_DIR OUT.mp4` (deepzine.cli) encodes any folder of frames.

PIL and the bundled ffmpeg are imported where they are used: the params command imports this module.
"""

import fnmatch
import logging
import math
import os
import re
import subprocess

import numpy as np
from tqdm import tqdm

from deepzine.parameters import ConfigError
from deepzine.files import atomic_path
from deepzine.sampling.images import to_pil_image
from deepzine.test_hooks import pause_at

logger = logging.getLogger(__name__)

DEFAULT_FPS = 30  # the official PGGAN video script's mp4_fps; smooth and common to every player
DEFAULT_CRF = 18  # x264's "visually lossless"; 0 is lossless but needs a 4:4:4 profile few players decode
AUTOMATIC_MIN_SIZE = 512  # without movie_size, scale up by a whole factor until the longer side reaches this

FRAME_EXTENSIONS = ('.png', '.jpg', '.jpeg')
INTERPOLATION_FRAME_PATTERN = 'interpolation_[0-9]*.png'  # what the interpolation stage writes

# Extension -> (encoders of the bundled ffmpeg that container holds, the first being the default; pixel format).
# H.264 in .mp4 plays everywhere (browsers, QuickTime, phones); yuv420p is what players decode.
_EVERYDAY = ('libx264', 'libx265', 'libaom-av1', 'libsvtav1', 'mpeg4')
CONTAINERS = {
    '.mp4': (_EVERYDAY, 'yuv420p'),
    '.m4v': (_EVERYDAY, 'yuv420p'),
    '.mov': (('libx264', 'libx265', 'mpeg4'), 'yuv420p'),
    '.mkv': (_EVERYDAY + ('libvpx-vp9', 'ffv1'), 'yuv420p'),
    '.webm': (('libvpx-vp9', 'libvpx', 'libaom-av1', 'libsvtav1'), 'yuv420p'),
    '.avi': (('mpeg4', 'libx264'), 'yuv420p'),
    '.gif': (('gif',), 'rgb8'),
}
_CONSTANT_QUALITY = {'libx264', 'libx265', 'libaom-av1', 'libsvtav1', 'libvpx-vp9', 'libvpx'}  # take -crf


def movie_frame_size(frame_width, frame_height, movie_size=None):
    """(width, height) of the movie for frames of the given size.

    movie_size=None: the frame size times the smallest whole factor that makes
    the longer side at least AUTOMATIC_MIN_SIZE (64 -> 512, 1024 -> 1024), so
    nearest-neighbour upscaling keeps every page pixel a crisp square.
    Otherwise the longer side becomes movie_size, keeping the aspect ratio.
    Both sides are rounded up to even numbers: H.264 in yuv420p halves the colour
    resolution and refuses odd sizes.
    """
    longer_side = max(frame_width, frame_height)
    if movie_size is None:
        target_longer_side = longer_side * max(1, math.ceil(AUTOMATIC_MIN_SIZE / longer_side))
    else:
        target_longer_side = movie_size
    scale = target_longer_side / longer_side

    def even(pixels):
        return max(2, 2 * math.ceil(round(pixels) / 2))
    return even(frame_width * scale), even(frame_height * scale)


def _natural_key(name):
    """Sort frame_2 before frame_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r'(\d+)', name)]


def find_frames(frames_directory, pattern=None):
    """Image files in `frames_directory` in natural name order; `pattern` is a glob such as 'frame_*.png'.

    Without a pattern: the interpolation frames (interpolation_*.png) when the
    folder has any, since the stages write them beside inference pages and the
    grid; otherwise every .png, .jpg and .jpeg file. Raises ConfigError when the
    folder is missing or holds no frames.
    """
    if not os.path.isdir(frames_directory):
        raise ConfigError(f'{frames_directory}: no such folder of frames')
    names = [name for name in sorted(os.listdir(frames_directory), key=_natural_key) if not name.startswith('.')]
    if pattern is None and any(fnmatch.fnmatch(name, INTERPOLATION_FRAME_PATTERN) for name in names):
        pattern = INTERPOLATION_FRAME_PATTERN
        logger.info('%s: using the %s frames', frames_directory, INTERPOLATION_FRAME_PATTERN)
    if pattern:
        names = [name for name in names if fnmatch.fnmatch(name, pattern)]
    else:
        names = [name for name in names if name.lower().endswith(FRAME_EXTENSIONS)]
    if not names:
        wanted = pattern or ', '.join(f'*{extension}' for extension in FRAME_EXTENSIONS)
        raise ConfigError(f'{frames_directory}: no frames found ({wanted})')
    return [os.path.join(frames_directory, name) for name in names]


def _frame_as_rgb_picture(frame):
    """A path or an array [H, W, C] (uint8, or float in [-1, 1]) -> RGB PIL image; the name of its source for errors."""
    from PIL import Image
    if isinstance(frame, (str, os.PathLike)):
        try:
            with Image.open(frame) as picture:
                return picture.convert('RGB'), os.fspath(frame)
        except (OSError, SyntaxError) as error:
            raise ConfigError(f'{frame}: not a readable image ({error})') from None
    return to_pil_image(np.asarray(frame)).convert('RGB'), 'frame array'


def available_video_encoders():
    """Names of the video encoders the bundled ffmpeg has (libx264, libx265, mpeg4, ...)."""
    import imageio_ffmpeg
    listing = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), '-hide_banner', '-encoders'],
                             capture_output=True, text=True, check=True).stdout
    return {line.split()[1] for line in listing.splitlines()
            if line.startswith(' V') and len(line.split()) > 1 and line.split()[1] != '='}


def check_movie_output(movie_path, codec=None, key='movie_path', codec_key='movie_codec'):
    """The encoder to write `movie_path` with (`codec`, or the container's usual one); ConfigError if it cannot be.

    Checked before any frame is rendered: imageio-ffmpeg does not report an
    encoder or container ffmpeg refuses, the frames vanish into a closed pipe.
    """
    extension = os.path.splitext(movie_path)[1].lower()
    if extension not in CONTAINERS:
        raise ConfigError(f'{key}={movie_path}: the extension must choose a video container: '
                          f'{", ".join(CONTAINERS)}')
    allowed, _ = CONTAINERS[extension]
    encoders = available_video_encoders()
    if codec is None:
        return next(name for name in allowed if name in encoders)
    if codec not in encoders:
        raise ConfigError(f'{codec_key}={codec}: not a video encoder of the bundled ffmpeg; for {extension} use '
                          f'{", ".join(name for name in allowed if name in encoders)}')
    if codec not in allowed:
        raise ConfigError(f'{codec_key}={codec}: a {extension} file cannot hold it; use '
                          f'{", ".join(name for name in allowed if name in encoders)}, or another extension')
    return codec


def write_movie(frames, movie_path, fps=DEFAULT_FPS, codec=None, crf=DEFAULT_CRF, movie_size=None):
    """Encode `frames` (image paths, or arrays [H, W, C] uint8 / float in [-1, 1]) into `movie_path`.

    Frames are streamed to ffmpeg one at a time (an hour of 512x512 video does not
    fit in memory), scaled up with nearest-neighbour or down with area averaging
    to `movie_frame_size(..., movie_size)`. The movie appears at `movie_path` only
    once complete and checked to hold every frame. Returns `movie_path`.
    """
    import imageio_ffmpeg
    from PIL import Image
    codec = check_movie_output(movie_path, codec)
    frame_count = len(frames)
    if frame_count == 0:
        raise ValueError(f'{movie_path}: no frames to encode')
    first_picture, _ = _frame_as_rgb_picture(frames[0])
    frame_width, frame_height = first_picture.size
    movie_width, movie_height = movie_frame_size(frame_width, frame_height, movie_size)
    resample = Image.Resampling.NEAREST if movie_width >= frame_width else Image.Resampling.BOX

    extension = os.path.splitext(movie_path)[1].lower()
    pixel_format = CONTAINERS[extension][1]
    output_options = []
    if codec in _CONSTANT_QUALITY:
        output_options += ['-crf', str(crf)] + (['-b:v', '0'] if codec.startswith('libvpx') else [])
    elif codec == 'mpeg4':
        output_options += ['-q:v', '2']  # mpeg4 has no crf: its best constant quality
    if extension in ('.mp4', '.mov', '.m4v'):
        output_options += ['-movflags', '+faststart']  # index first: browsers start playing before the download ends
        if codec == 'libx265':
            output_options += ['-tag:v', 'hvc1']  # the tag QuickTime and Safari require for HEVC
    # The temporary name keeps the extension: ffmpeg picks the container by it.
    with atomic_path(movie_path, suffix=extension) as temporary_path:
        writer = imageio_ffmpeg.write_frames(
            temporary_path, (movie_width, movie_height), pix_fmt_in='rgb24', pix_fmt_out=pixel_format,
            fps=fps, quality=None, codec=codec, macro_block_size=1, ffmpeg_log_level='error',
            output_params=output_options)
        writer.send(None)
        try:
            for frame in tqdm(frames, desc='movie', unit='frame', disable=None):
                picture, source = _frame_as_rgb_picture(frame)
                if picture.size != (frame_width, frame_height):
                    raise ConfigError(f'{source}: frame is {picture.size[0]}x{picture.size[1]}, '
                                      f'the first frame is {frame_width}x{frame_height}; all frames must have one size')
                if picture.size != (movie_width, movie_height):
                    picture = picture.resize((movie_width, movie_height), resample)
                writer.send(np.ascontiguousarray(np.asarray(picture)))
                pause_at('encoding', f'{os.path.basename(movie_path)}, {frame_count} frames')
        finally:
            writer.close()
        if not os.path.exists(temporary_path) or os.path.getsize(temporary_path) == 0:
            raise RuntimeError(f'{movie_path}: ffmpeg wrote no movie; see its messages above')
        encoded_frames, _ = imageio_ffmpeg.count_frames_and_secs(temporary_path)
        if encoded_frames != frame_count:
            raise RuntimeError(f'{movie_path}: ffmpeg wrote {encoded_frames} of {frame_count} frames; see its messages above')
    logger.info('wrote %s: %d frames, %dx%d, %s fps, %s crf %s', movie_path, frame_count, movie_width, movie_height, fps, codec, crf)
    return movie_path
