import os

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from deepzine.parameters import ConfigError, registry, resolve
from deepzine.sampling.images import to_uint8
from deepzine.sampling.interpolation import InterpolationStage

RUN = 'run-001'


def frame_names(directory):
    return sorted(name for name in os.listdir(directory) if name.startswith('interpolation_0'))


def read_frames(directory):
    return np.stack([np.asarray(Image.open(os.path.join(directory, name))) for name in frame_names(directory)])


def interpolation_stage(build_stage, model, output_directory, **keys):
    return build_stage(InterpolationStage, interpolation=True, inference_model_path=model.path,
                       inference_output_directory=str(output_directory), **keys)


@pytest.mark.parametrize('method, loop, expected_frames', [
    ('linear', False, 4 * 2 + 1), ('linear', True, 4 * 3),
    ('slerp', False, 4 * 2 + 1), ('slerp', True, 4 * 3),
    ('tozero', False, 4 * 2 + 1), ('origin', True, 4 * 3),
    ('smooth', False, 10), ('smooth', True, 10),  # smooth: duration x fps, always looping
])
def test_frame_counts_for_every_method(build_stage, rgb_generator, tmp_path, method, loop, expected_frames):
    stage = interpolation_stage(build_stage, rgb_generator, tmp_path, interpolation_method=method, interpolation_loop=loop,
                                interpolation_vector_num=3, interpolation_frames=4, inference_batch_size=3,
                                interpolation_duration_sec=1, movie_fps=10, random_seed=0)
    paths = stage.run()
    assert frame_names(tmp_path / RUN) == [f'interpolation_{index:05d}.png' for index in range(expected_frames)]
    assert len(paths) == expected_frames
    assert sorted(os.listdir(tmp_path / RUN)) == frame_names(tmp_path / RUN)  # frames only: no movie unless asked


def test_given_waypoints_are_rendered_at_the_segment_starts(build_stage, rgb_generator, tmp_path):
    waypoints = np.random.default_rng(1).standard_normal((3, rgb_generator.latent_size)).astype(np.float32)
    np.save(tmp_path / 'waypoints.npy', waypoints)
    interpolation_stage(build_stage, rgb_generator, tmp_path / 'out', interpolation_latents=str(tmp_path / 'waypoints.npy'),
                        interpolation_method='linear', interpolation_frames=5).run()
    frames = read_frames(tmp_path / 'out' / RUN)
    assert len(frames) == 11
    expected = to_uint8(rgb_generator.raw_output(waypoints))
    for frame_index, waypoint_index in ((0, 0), (5, 1), (10, 2)):
        assert np.abs(frames[frame_index].astype(int) - expected[waypoint_index]).max() <= 1
    # the model is linear, so the linear path's frame 2 of 5 is 60 % start + 40 % end before clipping
    middle = to_uint8(rgb_generator.raw_output(0.6 * waypoints[:1] + 0.4 * waypoints[1:2]))[0]
    assert np.abs(frames[2].astype(int) - middle).max() <= 1


def test_same_seed_same_frames(build_stage, rgb_generator, tmp_path):
    runs = []
    for name, seed in (('a', 5), ('b', 5), ('c', 6)):
        interpolation_stage(build_stage, rgb_generator, tmp_path / name, interpolation_method='smooth',
                            interpolation_duration_sec=1, movie_fps=6, random_seed=seed).run()
        runs.append(read_frames(tmp_path / name / RUN))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_export_movie_writes_an_mp4_with_every_frame(build_stage, grayscale_generator, tmp_path):
    interpolation_stage(build_stage, grayscale_generator, tmp_path, interpolation_method='slerp', interpolation_vector_num=2,
                        interpolation_frames=6, interpolation_loop=True, export_movie=True, movie_fps=12, random_seed=2).run()
    assert Image.open(tmp_path / RUN / 'interpolation_00000.png').mode == 'L'
    with imageio.get_reader(str(tmp_path / RUN / 'interpolation.mp4'), format='FFMPEG') as reader:
        frames = [frame for frame in reader]
        assert reader.get_meta_data()['fps'] == 12
    assert len(frames) == 12
    assert frames[0].shape == (512, 512, 3)  # an 8x8 model scaled up 64 times


def test_movie_path_and_size_are_configurable(build_stage, rgb_generator, tmp_path):
    movie_path = tmp_path / 'movies' / 'walk.mp4'
    interpolation_stage(build_stage, rgb_generator, tmp_path / 'frames', interpolation_vector_num=2, interpolation_frames=3,
                        export_movie=True, movie_path=str(movie_path), movie_size=64, movie_crf=30).run()
    with imageio.get_reader(str(movie_path), format='FFMPEG') as reader:
        frames = [frame for frame in reader]
    assert len(frames) == 4 and frames[0].shape == (64, 64, 3)


@pytest.mark.parametrize('keys, message', [
    ({'movie_codec': 'no-such-codec'}, r'movie_codec=no-such-codec: not a video encoder of the bundled ffmpeg; for .mp4 use libx264'),
    ({'movie_codec': 'libvpx-vp9'}, r'movie_codec=libvpx-vp9: a .mp4 file cannot hold it; use libx264'),
    ({'movie_path': 'walk.flv'}, r'movie_path=walk.flv: the extension must choose a video container: .mp4'),
    ({'movie_path': 'walk'}, r'movie_path=walk: the extension must choose a video container'),
])
def test_a_movie_ffmpeg_cannot_write_is_refused_in_the_checks(build_stage, rgb_generator, tmp_path, keys, message):
    if 'movie_path' in keys:
        keys = dict(keys, movie_path=str(tmp_path / keys['movie_path']))
    with pytest.raises(ConfigError, match=message.replace('movie_path=', 'movie_path=.*')):
        interpolation_stage(build_stage, rgb_generator, tmp_path / 'out', export_movie=True, **keys)
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('extension, codec', [('.gif', 'gif'), ('.webm', 'libvpx-vp9'), ('.mkv', 'libx264')])
def test_gif_webm_and_mkv_movies_hold_every_frame(build_stage, rgb_generator, tmp_path, extension, codec):
    stage = interpolation_stage(build_stage, rgb_generator, tmp_path, interpolation_vector_num=2, interpolation_frames=3,
                                export_movie=True, movie_path=str(tmp_path / f'walk{extension}'), movie_size=32)
    assert stage.plan.movie.codec == codec  # the container's usual encoder
    stage.run()
    import imageio_ffmpeg
    reader = imageio_ffmpeg.read_frames(str(tmp_path / f'walk{extension}'))
    meta = next(reader)
    assert meta['size'] == (32, 32) and len(list(reader)) == 4


def test_a_second_run_writes_a_new_folder_and_removes_nothing(build_stage, rgb_generator, tmp_path):
    interpolation_stage(build_stage, rgb_generator, tmp_path, interpolation_vector_num=3, interpolation_frames=4).run()
    interpolation_stage(build_stage, rgb_generator, tmp_path, interpolation_vector_num=2, interpolation_frames=4).run()
    assert len(frame_names(tmp_path / RUN)) == 9
    assert frame_names(tmp_path / 'run-002') == [f'interpolation_{index:05d}.png' for index in range(5)]


def test_chosen_rows_of_an_inference_run_become_the_waypoints(build_stage, rgb_generator, tmp_path):
    """From two pages of an inference grid to a movie: pages 3 and 1 of the grid are the walk's ends."""
    from deepzine.sampling.inference import InferenceStage
    build_stage(InferenceStage, inference=True, inference_model_path=rgb_generator.path, inference_output_num=5,
                inference_output_directory=str(tmp_path / 'grid'), random_seed=8).run()
    pages = np.stack([np.asarray(Image.open(tmp_path / 'grid' / RUN / f'inference_{index:05d}.png')) for index in (3, 1)])
    interpolation_stage(build_stage, rgb_generator, tmp_path / 'walk', interpolation_method='slerp',
                        interpolation_latents=str(tmp_path / 'grid' / RUN / 'inference_latents.npy'),
                        interpolation_latent_rows=[3, 1], interpolation_frames=4).run()
    frames = read_frames(tmp_path / 'walk' / RUN)
    assert len(frames) == 5
    np.testing.assert_array_equal(frames[0], pages[0])
    np.testing.assert_array_equal(frames[-1], pages[1])


def test_configuration_errors(build_stage, rgb_generator, tmp_path):
    np.save(tmp_path / 'one.npy', np.zeros((1, rgb_generator.latent_size), np.float32))
    with pytest.raises(ConfigError, match='smooth draws its own random walk'):
        interpolation_stage(build_stage, rgb_generator, tmp_path, interpolation_method='smooth',
                            interpolation_latents=str(tmp_path / 'one.npy'))
    with pytest.raises(ConfigError, match=r'interpolation_latents=.*missing\.npy: no such file'):
        interpolation_stage(build_stage, rgb_generator, tmp_path, interpolation_latents=str(tmp_path / 'missing.npy'))
    with pytest.raises(ConfigError, match=r'movie_path=.*: is a folder'):
        interpolation_stage(build_stage, rgb_generator, tmp_path, export_movie=True, movie_path=str(tmp_path))
    stage = interpolation_stage(build_stage, rgb_generator, tmp_path / 'out', interpolation_latents=str(tmp_path / 'one.npy'))
    with pytest.raises(ConfigError, match=r'one\.npy: 1 latent\(s\), at least 2 needed'):
        stage.run()
    with pytest.raises(ConfigError, match=r'interpolation_latent_rows=\[0, 5\]: rows \[5\] are not in .*one\.npy, which '
                                          r'has rows 0\.\.0'):
        interpolation_stage(build_stage, rgb_generator, tmp_path / 'out', interpolation_latents=str(tmp_path / 'one.npy'),
                            interpolation_latent_rows=[0, 5]).run()
    with pytest.raises(ConfigError, match=r'interpolation_latent_rows=\[1, 2\]: rows of which file\?'):
        interpolation_stage(build_stage, rgb_generator, tmp_path, interpolation_latent_rows=[1, 2])
    table = registry([InterpolationStage])
    assert resolve({'interpolation_method': 'origin'}, table)['interpolation_method'] == 'tozero'
    for key, value, reason in (('interpolation_method', 'cubic', 'must be one of linear, slerp, tozero, smooth'),
                               ('interpolation_vector_num', 1, 'at least 2'),
                               ('movie_size', 511, 'even'),
                               ('movie_crf', 70, 'between 0')):
        with pytest.raises(ConfigError, match=f'{key}=.*{reason}'):
            resolve({key: value}, table)


def test_plan_names_counts_and_paths(build_stage, rgb_generator, tmp_path):
    stage = interpolation_stage(build_stage, rgb_generator, tmp_path, interpolation_vector_num=4, interpolation_frames=10,
                                interpolation_loop=True, export_movie=True, random_seed=3)
    text = stage.describe()
    assert '40 frames through 4 random waypoints (slerp, 10 per segment, loop on)' in text
    assert str(tmp_path / RUN / 'interpolation_00000.png') in text
    assert str(tmp_path / RUN / 'interpolation.mp4') in text and '(libx264, crf 18, 30 fps' in text
    smooth = interpolation_stage(build_stage, rgb_generator, tmp_path, interpolation_method='smooth')
    assert '1800 frames of a looping smooth walk (60 s at 30 fps, smoothing 1 s)' in smooth.describe()
    assert not any(tmp_path.iterdir())
