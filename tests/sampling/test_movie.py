import os
import re

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from deepzine.parameters import ConfigError
from deepzine.cli import main
from deepzine.sampling.movie import find_frames, movie_frame_size, write_movie


def decode(movie_path):
    """Every frame of a video, decoded by imageio's ffmpeg plugin (independent of how it was written)."""
    with imageio.get_reader(str(movie_path), format='FFMPEG') as reader:
        return np.stack([frame for frame in reader])  # list(reader) trusts len(), which is inf for video


def gray_ramp_frames(count, size=8):
    """Uniform gray frames getting brighter: order and count are visible after lossy encoding."""
    return [np.full((size, size, 3), 20 + 200 * index // max(1, count - 1), np.uint8) for index in range(count)]


def test_movie_frame_size_scales_small_models_by_whole_factors():
    assert movie_frame_size(64, 64) == (512, 512)
    assert movie_frame_size(8, 8) == (512, 512)
    assert movie_frame_size(128, 128) == (512, 512)
    assert movie_frame_size(200, 200) == (600, 600)
    assert movie_frame_size(1024, 1024) == (1024, 1024)


def test_movie_frame_size_given_size_keeps_aspect_and_stays_even():
    assert movie_frame_size(64, 64, 300) == (300, 300)
    assert movie_frame_size(100, 50, 302) == (302, 152)
    assert movie_frame_size(101, 101) == (606, 606)
    assert movie_frame_size(513, 513) == (514, 514)
    width, height = movie_frame_size(99, 37, 250)
    assert width % 2 == 0 and height % 2 == 0


def test_movie_from_arrays_decodes_with_the_expected_frame_count_and_size(tmp_path):
    movie_path = tmp_path / 'walk.mp4'
    previous_umask = os.umask(0o022)
    try:
        write_movie(gray_ramp_frames(12), str(movie_path), fps=24)
    finally:
        os.umask(previous_umask)
    assert os.stat(movie_path).st_mode & 0o777 == 0o644  # shareable, not a private temporary file
    frames = decode(movie_path)
    assert frames.shape == (12, 512, 512, 3)
    brightness = frames.mean(axis=(1, 2, 3))
    assert np.all(np.diff(brightness) > 0)  # frame order preserved
    assert sorted(path.name for path in tmp_path.iterdir()) == ['walk.mp4']  # no temporary file left


def test_upscaling_is_nearest_neighbour(tmp_path):
    checkerboard = np.where((np.arange(8)[:, None] + np.arange(8)[None, :]) % 2, 235, 20).astype(np.uint8)
    frame = np.repeat(checkerboard[..., None], 3, axis=-1)
    movie_path = tmp_path / 'checker.mp4'
    write_movie([frame] * 3, str(movie_path), crf=0, movie_size=128)
    decoded = decode(movie_path)[1, ..., 0].astype(int)
    assert decoded.shape == (128, 128)
    # each page pixel became a 16x16 block of one value (bilinear would blur the block edges)
    blocks = decoded.reshape(8, 16, 8, 16).transpose(0, 2, 1, 3)
    assert np.abs(blocks - checkerboard[:, :, None, None]).max() <= 3


def test_grayscale_float_frames_are_accepted(tmp_path):
    frames = np.linspace(-1, 1, 5, dtype=np.float32)[:, None, None, None] * np.ones((5, 16, 16, 1), np.float32)
    movie_path = tmp_path / 'gray.mp4'
    write_movie(frames, str(movie_path), movie_size=32)
    decoded = decode(movie_path)
    assert decoded.shape == (5, 32, 32, 3)
    assert decoded[0].mean() < 30 and decoded[-1].mean() > 225


def test_movie_command_on_a_folder_uses_natural_order(tmp_path):
    frames_directory = tmp_path / 'frames'
    frames_directory.mkdir()
    for index, frame in enumerate(gray_ramp_frames(11, size=16)):
        Image.fromarray(frame).save(frames_directory / f'frame_{index}.png')  # frame_10 sorts after frame_9
    (frames_directory / 'notes.txt').write_text('not a frame')
    movie_path = tmp_path / 'out.mp4'
    assert main(['movie', str(frames_directory), str(movie_path), '--fps', '12', '--size', '64', '--crf', '10']) == 0
    frames = decode(movie_path)
    assert frames.shape == (11, 64, 64, 3)
    assert np.all(np.diff(frames.mean(axis=(1, 2, 3))) > 0)


def test_find_frames_with_a_pattern(tmp_path):
    for name in ('interpolation_00001.png', 'interpolation_00000.png', 'inference_00000.png'):
        Image.new('RGB', (4, 4)).save(tmp_path / name)
    assert [path.rsplit('/', 1)[1] for path in find_frames(str(tmp_path), 'interpolation_*.png')] == \
        ['interpolation_00000.png', 'interpolation_00001.png']


@pytest.mark.parametrize('arguments, message', [
    (['{tmp}/missing', '{tmp}/out.mp4'], 'no such folder'),
    (['{empty}', '{tmp}/out.mp4'], 'no frames found'),
    (['{frames}', '{tmp}/out.mp4', '--codec', 'no-such-codec'], '--codec=no-such-codec: not a video encoder'),
    (['{frames}', '{tmp}/out.gif', '--codec', 'libx264'], '--codec=libx264: a .gif file cannot hold it; use gif'),
    (['{frames}', '{tmp}/out.xyz'], 'movie_path=.*out.xyz: the extension must choose a video container'),
    (['{frames}', '{tmp}/out.mp4', '--size', '101'], 'must be even'),
])
def test_user_errors_name_the_problem_in_one_line_and_exit_2(tmp_path, capsys, arguments, message):
    frames = tmp_path / 'frames'
    frames.mkdir()
    Image.new('RGB', (4, 4)).save(frames / 'a.png')
    (tmp_path / 'empty').mkdir()
    arguments = [argument.format(tmp=tmp_path, empty=tmp_path / 'empty', frames=frames) for argument in arguments]
    assert main(['movie'] + arguments) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert re.search(message, error[-1])
    assert not list(tmp_path.glob('out.*'))


def test_frames_of_different_sizes_are_refused_and_leave_no_movie(tmp_path):
    frames_directory = tmp_path / 'frames'
    frames_directory.mkdir()
    Image.new('RGB', (8, 8)).save(frames_directory / 'a.png')
    Image.new('RGB', (8, 10)).save(frames_directory / 'b.png')
    with pytest.raises(ConfigError, match='b.png: frame is 8x10, the first frame is 8x8'):
        write_movie(find_frames(str(frames_directory)), str(tmp_path / 'out.mp4'))
    assert sorted(path.name for path in tmp_path.iterdir()) == ['frames']


def test_a_folder_of_pages_and_frames_gives_the_interpolation_frames_by_default(tmp_path):
    for name, size in (('inference_00000.png', 8), ('inference_grid.png', 24), ('interpolation_00001.png', 8),
                       ('interpolation_00000.png', 8)):
        Image.new('RGB', (size, size)).save(tmp_path / name)
    assert [os.path.basename(path) for path in find_frames(str(tmp_path))] == ['interpolation_00000.png', 'interpolation_00001.png']
    assert len(find_frames(str(tmp_path), '*.png')) == 4
