"""Original DeepZine TF1 checkpoints: the original graphs' numbers, every index file, every error case, conversion."""

import dataclasses
import json
import os
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf

from deepzine.cli import main
from deepzine.model.legacy import (TRANSFORMS, is_legacy_checkpoint, load_legacy_networks, plan_legacy_import,
                                   read_legacy_architecture)
from deepzine.model.loading import load_legacy_generator, load_native_generator, load_saved_model
from deepzine.model.model_folder import load_model_folder
from deepzine.model.networks import Discriminator, Generator
from deepzine.parameters import ConfigError

LEGACY = pathlib.Path(__file__).resolve().parents[1] / 'fixtures' / 'legacy_deepzine'
INDEX_ONLY_SIZES = [4, 8, 16, 32, 64, 128, 256, 512, 1024]
DEAD_VARIABLES = ['discriminator/dis_n_conv_2_4/w', 'discriminator/dis_n_conv_2_4/biases']
TOLERANCE = 1e-4  # relative L2 error; the README of the fixtures expects well under it in float32


def relative_error(actual, expected):
    return float(np.linalg.norm(np.asarray(actual) - expected) / np.linalg.norm(expected))


def real_batch(generated):
    """The reals the reference fed the discriminator (fixtures README): generated batch reversed, halved, clipped."""
    return np.clip(generated[::-1] * 0.5, -1, 1)


def write_tf1_checkpoint(prefix, arrays):
    """A name-based checkpoint with exactly these names, the format of the original TF1 Saver."""
    names = sorted(arrays)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[''] * len(names),
                      tensors=[tf.constant(arrays[name], tf.float32) for name in names])
    return prefix


def tiny_legacy_variables(latent_size=8, width_4=8, width_8=4):
    """An 8x8 original-layout checkpoint, names and shapes written out by hand from the fixtures README."""
    shapes = {
        'generator/gen_n_1_conv': (4, 4, latent_size, width_4), 'generator/gen_n_2_conv': (3, 3, width_4, width_4),
        'generator/gen_n_conv_1_8': (3, 3, width_4, width_8), 'generator/gen_n_conv_2_8': (3, 3, width_8, width_8),
        'generator/gen_y_rgb_conv_8': (1, 1, width_8, 3),
        'discriminator/dis_y_rgb_conv_8': (1, 1, 3, width_8),
        'discriminator/dis_n_conv_1_8': (3, 3, width_8, width_8),
        'discriminator/dis_n_conv_2_8': (3, 3, width_8, width_4),
        'discriminator/dis_n_conv_1_4': (3, 3, width_4 + 1, width_4),
        'discriminator/dis_n_conv_2_4': (4, 4, width_4, width_4),
    }
    rng = np.random.default_rng(0)
    arrays = {}
    for scope, shape in shapes.items():
        arrays[f'{scope}/w'] = rng.normal(0, 0.3, shape)
        arrays[f'{scope}/biases'] = rng.normal(0, 0.1, shape[-1:])
    arrays['discriminator/dis_n_fully/Matrix'] = rng.normal(0, 0.1, (16 * width_4, 1))
    arrays['discriminator/dis_n_fully/bias'] = rng.normal(0, 0.1, (1,))
    return arrays


# --- numbers of the original graphs ----------------------------------------------------------------------------

@pytest.mark.parametrize('size', [4, 16])
def test_generator_and_discriminator_match_the_original_graph(size):
    reference = np.load(LEGACY / f'res{size}' / 'reference.npz')
    architecture, generator, discriminator = load_legacy_networks(LEGACY / f'res{size}', size=size)
    assert architecture.output_size == size and architecture.rgb_sizes == (size,)
    generated = generator(reference['latents']).numpy()
    assert relative_error(generated, reference['g_out']) < TOLERANCE
    assert relative_error(discriminator(real_batch(reference['g_out'])), reference['d_real_logits']) < TOLERANCE
    assert relative_error(discriminator(generated), reference['d_fake_logits']) < TOLERANCE


@pytest.mark.slow
def test_1024_crops_average_pool_and_logits_match_the_original_graph():
    reference = np.load(LEGACY / 'res1024' / 'reference.npz')
    architecture, generator, discriminator = load_legacy_networks(LEGACY / 'res1024' / 'model.ckpt', size=1024)
    assert architecture.widths == {4: 128, 8: 128, 16: 128, 32: 128, 64: 128, 128: 128, 256: 64, 512: 16, 1024: 16}
    generated = generator(reference['latents']).numpy()
    assert generated.shape == (4, 1024, 1024, 3)
    assert relative_error(generated[:, 480:544, 480:544], reference['g_out_center_crop']) < TOLERANCE
    assert relative_error(generated[:, :64, :64], reference['g_out_corner_crop']) < TOLERANCE
    average_pooled = tf.nn.avg_pool2d(generated, 16, 16, 'VALID').numpy()
    assert relative_error(average_pooled, reference['g_out_avgpool']) < TOLERANCE
    assert relative_error(discriminator(real_batch(generated)), reference['d_real_logits']) < TOLERANCE
    assert relative_error(discriminator(generated), reference['d_fake_logits']) < TOLERANCE


def test_sampling_gives_the_same_pages_at_any_batch_size():
    reference = np.load(LEGACY / 'res16' / 'reference.npz')
    pages = {batch_size: load_legacy_generator(LEGACY / 'res16', size=16, batch_size=batch_size)
             .generate(reference['latents']) for batch_size in (1, 3, 16)}
    assert pages[1].shape == (16, 16, 16, 3)
    np.testing.assert_allclose(pages[3], pages[1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(pages[16], pages[1], rtol=0, atol=1e-5)
    assert relative_error(pages[3], reference['g_out']) < TOLERANCE
    _, _, discriminator = load_legacy_networks(LEGACY / 'res16')
    assert discriminator(pages[3][:3]).shape == (3, 1)  # the legacy minibatch stddev takes any batch as one group


# --- every released resolution, from its index -----------------------------------------------------------------

@pytest.mark.parametrize('size', INDEX_ONLY_SIZES)
def test_the_model_built_from_each_index_has_exactly_its_variables(size):
    prefix = str(LEGACY / 'index_only' / str(size) / 'model.ckpt')
    checkpoint_shapes = {name: tuple(shape) for name, shape in tf.train.list_variables(prefix)}
    architecture = read_legacy_architecture(prefix)
    assert architecture.output_size == size and architecture.latent_size == 128 and architecture.channels == 3
    generator, discriminator = Generator(architecture), Discriminator(architecture)
    assignments, skipped = plan_legacy_import(prefix, checkpoint_shapes, architecture, generator, discriminator)
    assert sorted(skipped) == sorted(DEAD_VARIABLES)
    filled = {row.checkpoint_name: TRANSFORMS[row.transform, row.weight].legacy_shape(tuple(native.shape))
              for row, native in assignments}
    filled.update({name: checkpoint_shapes[name] for name in skipped})
    assert filled == checkpoint_shapes  # same names, same shapes: nothing missing, nothing extra
    native_weights = generator.weights + discriminator.weights
    assert sorted(id(native) for _, native in assignments) == sorted(id(weight) for weight in native_weights)


def test_a_native_weight_the_table_leaves_unset_fails_loudly():
    prefix = str(LEGACY / 'index_only' / '16' / 'model.ckpt')
    checkpoint_shapes = dict(tf.train.list_variables(prefix))
    architecture = read_legacy_architecture(prefix)
    every_rgb = dataclasses.replace(architecture, rgb_sizes=None)  # toRGB at 4 and 8 too: no weights for them
    with pytest.raises(RuntimeError, match='to_rgb_4x4'):
        plan_legacy_import(prefix, checkpoint_shapes, architecture, Generator(every_rgb), Discriminator(architecture))


# --- detection and errors ------------------------------------------------------------------------------------

def test_detection_by_layout(tmp_path):
    assert is_legacy_checkpoint(LEGACY / 'res4')
    assert is_legacy_checkpoint(LEGACY / 'res4' / 'model.ckpt')
    assert is_legacy_checkpoint(str(LEGACY / 'res4' / 'model.ckpt.index'))
    assert not is_legacy_checkpoint(tmp_path)
    (tmp_path / 'model.ckpt.index').write_bytes(b'')
    (tmp_path / 'model.json').write_text('{}')
    assert not is_legacy_checkpoint(tmp_path)  # a native model folder


def test_missing_data_file_is_reported_before_reading(tmp_path):
    shutil.copy(LEGACY / 'res4' / 'model.ckpt.index', tmp_path / 'model.ckpt.index')
    assert is_legacy_checkpoint(tmp_path)
    assert read_legacy_architecture(tmp_path).output_size == 4  # the index alone gives the architecture
    with pytest.raises(ConfigError, match=r'model\.ckpt\.data-00000-of-00001: missing'):
        load_legacy_networks(tmp_path)


def test_missing_index_is_reported(tmp_path):
    with pytest.raises(ConfigError, match=r'model\.ckpt\.index: missing'):
        load_legacy_generator(tmp_path / '64', size=64)


def test_gan_output_size_not_in_the_checkpoint():
    with pytest.raises(ConfigError, match=r'res16/model\.ckpt holds a 16x16 model, gan_output_size asks for 64'):
        load_legacy_networks(LEGACY / 'res16', size=64)


def test_a_tf2_checkpoint_is_not_a_deepzine_checkpoint(tmp_path):
    tf.train.Checkpoint(weights=tf.Variable(np.zeros(3, np.float32))).write(str(tmp_path / 'model.ckpt'))
    with pytest.raises(ConfigError, match='not an original DeepZine checkpoint .*TF2 object-based'):
        load_legacy_networks(tmp_path)


def test_a_random_file_is_not_a_checkpoint(tmp_path):
    (tmp_path / 'model.ckpt.index').write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(ConfigError, match=r'model\.ckpt\.index: not a readable TensorFlow checkpoint index'):
        load_legacy_networks(tmp_path)


def test_other_names_are_not_a_deepzine_checkpoint(tmp_path):
    write_tf1_checkpoint(tmp_path / 'model.ckpt', {'conv1/kernel': np.zeros((3, 3, 3, 8))})
    with pytest.raises(ConfigError, match='not an original DeepZine checkpoint .*conv1/kernel'):
        load_legacy_networks(tmp_path)


def test_a_shape_mismatch_names_the_variable(tmp_path):
    arrays = tiny_legacy_variables()
    arrays['discriminator/dis_n_conv_2_8/w'] = np.zeros((3, 3, 4, 5))  # must map 4 -> width[4] = 8 filters
    write_tf1_checkpoint(tmp_path / 'model.ckpt', arrays)
    message = r'discriminator/dis_n_conv_2_8/w has shape \[3, 3, 4, 5\].* needs \[3, 3, 4, 8\]'
    with pytest.raises(ConfigError, match=message):
        load_legacy_networks(tmp_path)


def test_a_missing_variable_is_named(tmp_path):
    arrays = tiny_legacy_variables()
    del arrays['discriminator/dis_n_fully/bias']
    write_tf1_checkpoint(tmp_path / 'model.ckpt', arrays)
    with pytest.raises(ConfigError, match='missing variable.*discriminator/dis_n_fully/bias'):
        load_legacy_networks(tmp_path)


def test_an_unknown_variable_is_named(tmp_path):
    arrays = tiny_legacy_variables()
    arrays['generator/gen_n_extra/w'] = np.zeros(3)
    write_tf1_checkpoint(tmp_path / 'model.ckpt', arrays)
    with pytest.raises(ConfigError, match='fit no layer .*generator/gen_n_extra/w'):
        load_legacy_networks(tmp_path)


def test_optimizer_state_is_ignored_and_weights_land_where_the_table_says(tmp_path):
    arrays = tiny_legacy_variables()
    arrays.update({'generator/gen_n_2_conv/w/Adam': np.zeros((3, 3, 8, 8)), 'beta1_power': np.zeros(()),
                   'beta2_power': np.zeros(()), 'global_step': np.zeros(())})
    write_tf1_checkpoint(tmp_path / 'model.ckpt', arrays)
    architecture, generator, discriminator = load_legacy_networks(tmp_path, size=8)
    assert architecture.widths == {4: 8, 8: 4} and architecture.latent_size == 8
    np.testing.assert_array_equal(generator.conv1_8x8.kernel, np.float32(arrays['generator/gen_n_conv_1_8/w']))
    np.testing.assert_array_equal(discriminator.dense_logit.bias, np.float32(arrays['discriminator/dis_n_fully/bias']))
    # The 4x4 conv over the padded latent is a dense layer: a one-hot latent picks out the flipped kernel.
    one_hot = np.eye(8, dtype=np.float32)[:1]
    maps = (one_hot @ generator.latent_to_4x4.kernel.numpy()).reshape(4, 4, 8)
    np.testing.assert_allclose(maps, arrays['generator/gen_n_1_conv/w'][::-1, ::-1, 0, :], rtol=1e-6)


def test_a_checkpoint_saved_during_a_fade_in_keeps_both_rgb_layers(tmp_path):
    arrays = tiny_legacy_variables()
    rng = np.random.default_rng(1)
    arrays.update({'generator/gen_y_rgb_conv_4/w': rng.normal(0, 0.3, (1, 1, 8, 3)),
                   'generator/gen_y_rgb_conv_4/biases': rng.normal(0, 0.1, 3),
                   'discriminator/dis_y_rgb_conv_4/w': rng.normal(0, 0.3, (1, 1, 3, 8)),
                   'discriminator/dis_y_rgb_conv_4/biases': rng.normal(0, 0.1, 8)})
    write_tf1_checkpoint(tmp_path / 'model.ckpt', arrays)
    architecture, generator, _ = load_legacy_networks(tmp_path)
    assert architecture.output_size == 8 and architecture.rgb_sizes == (4, 8)
    np.testing.assert_array_equal(generator.to_rgb_4x4.bias, np.float32(arrays['generator/gen_y_rgb_conv_4/biases']))
    assert generator(np.zeros((2, 8), np.float32), size=8, alpha=tf.constant(0.5)).shape == (2, 8, 8, 3)


# --- conversion ------------------------------------------------------------------------------------------------

def test_convert_legacy_writes_a_native_folder_and_a_saved_model(tmp_path, capsys):
    reference = np.load(LEGACY / 'res4' / 'reference.npz')
    destination = tmp_path / 'converted' / '4'
    assert main(['convert-legacy', str(LEGACY / 'res4'), str(destination), '--size', '4']) == 0
    assert not is_legacy_checkpoint(destination)
    description = json.loads((destination / 'model.json').read_text())
    assert description['config']['converted_from'] == os.path.abspath(LEGACY / 'res4' / 'model.ckpt')
    assert description['networks'] == ['generator_ema', 'generator', 'discriminator']
    native = load_native_generator(str(destination), batch_size=5).generate(reference['latents'])
    exported = load_saved_model(str(destination / 'saved_model'), batch_size=5).generate(reference['latents'])
    assert relative_error(native, reference['g_out']) < TOLERANCE
    assert relative_error(exported, reference['g_out']) < TOLERANCE
    _, _, _, discriminator, _ = load_model_folder(str(destination), with_discriminator=True)  # ready to fine-tune
    assert relative_error(discriminator(real_batch(reference['g_out'])), reference['d_real_logits']) < TOLERANCE
    assert main(['convert-legacy', str(LEGACY / 'res4'), str(destination), '--sampling-only']) == 0  # replaces it
    assert json.loads((destination / 'model.json').read_text())['networks'] == ['generator_ema']


def test_convert_legacy_refuses_to_replace_the_source_or_other_files(tmp_path, capsys):
    source = tmp_path / 'pretrained_models' / '4'
    shutil.copytree(LEGACY / 'res4', source)
    assert main(['convert-legacy', str(source), str(source)]) == 2
    assert 'holds the source checkpoint' in capsys.readouterr().err
    assert main(['convert-legacy', str(source), str(tmp_path)]) == 2  # an ancestor of the source
    assert 'holds the source checkpoint' in capsys.readouterr().err
    (tmp_path / 'notes').mkdir()
    (tmp_path / 'notes' / 'todo.txt').write_text('mine')
    assert main(['convert-legacy', str(source), str(tmp_path / 'notes')]) == 2
    error = capsys.readouterr().err
    assert 'is not a DeepZine model folder; refusing to replace it' in error and len(error.strip().splitlines()) == 1
    assert (tmp_path / 'notes' / 'todo.txt').read_text() == 'mine'
    assert sorted(os.listdir(source)) == sorted(os.listdir(LEGACY / 'res4'))
    assert main(['convert-legacy', str(source), str(tmp_path / 'out'), '--size', '8']) == 2
    assert 'holds a 4x4 model, --size asks for 8' in capsys.readouterr().err
