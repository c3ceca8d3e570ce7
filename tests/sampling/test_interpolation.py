import os

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from deepzine.parameters import ConfigError, registry, resolve
from deepzine.sampling.images import to_uint8
from deepzine.sampling.interpolation import InterpolationStage


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
    assert frame_names(tmp_path) == [f'interpolation_{index:05d}.png' for index in range(expected_frames)]
    assert len(paths) == expected_frames
    assert sorted(os.listdir(tmp_path)) == frame_names(tmp_path)  # frames only: no movie unless asked


def test_given_waypoints_are_rendered_at_the_segment_starts(build_stage, rgb_generator, tmp_path):
    waypoints = np.random.default_rng(1).standard_normal((3, rgb_generator.latent_size)).astype(np.float32)
    np.save(tmp_path / 'waypoints.npy', waypoints)
    interpolation_stage(build_stage, rgb_generator, tmp_path / 'out', interpolation_latents=str(tmp_path / 'waypoints.npy'),
                        interpolation_method='linear', interpolation_frames=5).run()
    frames = read_frames(tmp_path / 'out')
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
        runs.append(read_frames(tmp_path / name))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_export_movie_writes_an_mp4_with_every_frame(build_stage, grayscale_generator, tmp_path):
    interpolation_stage(build_stage, grayscale_generator, tmp_path, interpolation_method='slerp', interpolation_vector_num=2,
                        interpolation_frames=6, interpolation_loop=True, export_movie=True, movie_fps=12, random_seed=2).run()
    assert Image.open(tmp_path / 'interpolation_00000.png').mode == 'L'
    with imageio.get_reader(str(tmp_path / 'interpolation.mp4'), format='FFMPEG') as reader:
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


def test_unknown_codec_fails_before_any_frame_is_written(build_stage, rgb_generator, tmp_path):
    stage = interpolation_stage(build_stage, rgb_generator, tmp_path, export_movie=True, movie_codec='no-such-codec')
    with pytest.raises(ConfigError, match='movie_codec=no-such-codec'):
        stage.run()
    assert not tmp_path.exists() or frame_names(tmp_path) == []


def test_frames_left_by_a_longer_earlier_run_are_removed(build_stage, rgb_generator, tmp_path):
    interpolation_stage(build_stage, rgb_generator, tmp_path, interpolation_vector_num=3, interpolation_frames=4).run()
    interpolation_stage(build_stage, rgb_generator, tmp_path, interpolation_vector_num=2, interpolation_frames=4).run()
    assert frame_names(tmp_path) == [f'interpolation_{index:05d}.png' for index in range(5)]


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
    with pytest.raises(ConfigError, match=r'one\.npy: shape \[1, 8\] .* N >= 2'):
        stage.run()
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
    plan = '\n'.join(stage.plan())
    assert '40 frames through 4 random waypoints (slerp, 10 per segment, loop on)' in plan
    assert str(tmp_path / 'interpolation_00000.png') in plan
    assert str(tmp_path / 'interpolation.mp4') in plan
    smooth = interpolation_stage(build_stage, rgb_generator, tmp_path, interpolation_method='smooth')
    assert '1800 frames of a looping smooth walk (60 s at 30 fps, smoothing 1 s)' in '\n'.join(smooth.plan())
    assert not any(tmp_path.iterdir())
