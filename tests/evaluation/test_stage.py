import glob
import json
import os

import numpy as np
import pytest

from deepzine.evaluation.stage import EvaluateStage
from deepzine.parameter_groups import EvaluationParameters
from deepzine.parameters import ConfigError, registry, resolve

LATENT_SIZE = 8


def make_stage(**raw):
    return EvaluateStage(resolve({'evaluate': True, **raw}, registry([EvaluateStage])))


def test_defaults_and_the_keys_training_shares():
    stage = make_stage()
    assert (stage.evaluation_image_num, stage.memorization_check_num, stage.evaluation_seed) == (1000, 32, 0)
    assert set(EvaluationParameters.declared()) == {'evaluation_image_num', 'memorization_check_num', 'evaluation_seed'}
    from deepzine.training.stage import TrainStage
    assert set(EvaluationParameters.declared()) < set(TrainStage.declared())


def test_plan_names_the_model_the_levels_and_the_outputs(pages_hdf5, tmp_path):
    path, _ = pages_hdf5
    tiny_saved_generator(str(tmp_path / 'log' / '32'))
    stage = make_stage(gan_output_size=32, data_hdf5=path, log_dir=str(tmp_path / 'log'), evaluation_image_num=500)
    plan = stage.validate({})
    text = '\n'.join(stage.describe(plan))
    assert os.path.join(str(tmp_path), 'log', '32') in text
    assert 'levels 32, 16' in text and '500 generated pages vs 500 real pages' in text
    assert 'nearest real page' in text and 'swd_32_<time>.json' in text
    assert stage.output_directory(plan) == os.path.join(str(tmp_path), 'log', 'metrics')


def test_nothing_to_do_is_refused():
    with pytest.raises(ConfigError, match='evaluation_image_num=0 and memorization_check_num=0'):
        make_stage(evaluation_image_num=0, memorization_check_num=0).validate({})
    with pytest.raises(ConfigError, match='evaluation_image_num=-1'):
        make_stage(evaluation_image_num=-1)


def test_missing_or_foreign_page_file_is_a_config_error_before_anything_is_written(tmp_path):
    stage = make_stage(data_hdf5=str(tmp_path / 'absent.hdf5'), log_dir=str(tmp_path))
    with pytest.raises(ConfigError, match='absent.hdf5: file not found'):
        stage.validate({})
    (tmp_path / 'notes.hdf5').write_text('not an HDF5 file')
    with pytest.raises(ConfigError, match='notes.hdf5: not a readable HDF5 file'):
        make_stage(data_hdf5=str(tmp_path / 'notes.hdf5'), log_dir=str(tmp_path)).validate({})
    assert sorted(os.listdir(tmp_path)) == ['notes.hdf5']


def test_pages_smaller_than_the_model_are_refused(pages_hdf5, tmp_path):
    path, _ = pages_hdf5  # 32x32 pages
    tiny_saved_generator(str(tmp_path / 'log' / '64'))
    with pytest.raises(ConfigError, match=r'holds sizes 4\.\.32 but evaluate needs 64x64 pages'):
        make_stage(gan_output_size=64, data_hdf5=path, log_dir=str(tmp_path / 'log')).validate({})


def tiny_saved_generator(path):
    """latents [N, 8] -> [N, 32, 32, 3] in [-1, 1], exported the way training exports generators."""
    import keras
    from deepzine.model.export import export_saved_model
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((LATENT_SIZE,)), keras.layers.Dense(4 * 4 * 3), keras.layers.Reshape((4, 4, 3)),
                              keras.layers.UpSampling2D(8), keras.layers.Conv2D(3, 3, padding='same', activation='tanh')])
    return export_saved_model(model, LATENT_SIZE, path)


def test_run_evaluates_a_saved_generator_into_log_dir_metrics(pages_hdf5, tmp_path):
    path, _ = pages_hdf5
    log_dir = tmp_path / 'log'
    tiny_saved_generator(str(log_dir / '32'))
    stage = make_stage(data_hdf5=path, log_dir=str(log_dir), gan_output_size=32, evaluation_image_num=8,
                       memorization_check_num=3, inference_batch_size=4)
    result = stage.run(stage.validate({}))
    swd_files = glob.glob(str(log_dir / 'metrics' / 'swd_32_*.json'))
    assert len(swd_files) == 1 and len(glob.glob(str(log_dir / 'metrics' / 'nearest_32_*.png'))) == 1
    with open(swd_files[0]) as handle:
        report = json.load(handle)
    assert report['step'] is None and report['image_num'] == 8 and 'SavedModel' in report['model']
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(swd_files[0]).st_mode & 0o777 == 0o666 & ~umask  # readable by others, as any output
    assert np.isfinite(report['generated_vs_real']['mean']) and report['generated_vs_real']['mean'] > 0
    assert result['nearest']['compare_size'] == 32 and len(result['nearest']['generated']) == 3
