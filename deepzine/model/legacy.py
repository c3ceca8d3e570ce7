"""Load the ORIGINAL DeepZine TF1 checkpoints (`pretrained_models/<size>/model.ckpt`) into the native networks.

The original project (TensorFlow 1.11, 2018) no longer installs, but its files
still read: `tf.train.list_variables` gives names and shapes from the `.index`
alone and `tf.train.load_checkpoint` the values. The native `Generator` and
`Discriminator` represent the legacy graphs exactly when built with
`equalized_learning_rate=False`, `normalize_latent=False`,
`minibatch_group_size=0` (the whole batch is one group) and RGB layers only
where the checkpoint has them; the widths are read from the checkpoint's
shapes, because the released models did not follow one formula.

As in stylegan2-ada-pytorch's legacy.py, every variable goes through an
explicit name table, and the import fails loudly on any checkpoint variable
left unused (except the dead 4x4 conv and optimizer state) and on any native
weight left unset. The layer-by-layer description of the legacy graphs is in
`tests/fixtures/legacy_deepzine/README.md`; `tests/model/test_legacy.py` checks
this module against outputs of the original graphs stored there.

TensorFlow and the networks are imported where a checkpoint is read: the train stage imports this module to
check a starting point, the params command too.
"""

import dataclasses
import glob
import logging
import os
import re

import numpy as np

from deepzine.model.architecture import Architecture
from deepzine.model.model_folder import is_model_folder, save_model_folder
from deepzine.parameters import ConfigError
from deepzine.sizes import sizes_between

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = 'model.ckpt'
NATIVE_MODEL_JSON = 'model.json'  # deepzine.model.model_folder.MODEL_JSON, not imported to keep detection light
FIRST_VARIABLE = 'generator/gen_n_1_conv/w'  # every original DeepZine checkpoint has it, at every resolution

# How often a row of the name table occurs: once, for every size 8..output_size, for every size with RGB layers.
ONCE, ABOVE_4, RGB = 'once', 'every size above 4', 'every RGB size'
# The weights a checkpoint scope holds, as (checkpoint leaf name, native weight attribute).
CONV = (('w', 'kernel'), ('biases', 'bias'))
DENSE = (('Matrix', 'kernel'), ('bias', 'bias'))

NAME_TABLE = (
    # checkpoint scope ({s}: size)         occurs   weights  network          layer attribute     transform
    ('generator/gen_n_1_conv',             ONCE,    CONV,    'generator',     'latent_to_4x4',    'latent_conv'),
    ('generator/gen_n_2_conv',             ONCE,    CONV,    'generator',     'conv_4x4',         'copy'),
    ('generator/gen_n_conv_1_{s}',         ABOVE_4, CONV,    'generator',     'conv1_{s}x{s}',    'copy'),
    ('generator/gen_n_conv_2_{s}',         ABOVE_4, CONV,    'generator',     'conv2_{s}x{s}',    'copy'),
    ('generator/gen_y_rgb_conv_{s}',       RGB,     CONV,    'generator',     'to_rgb_{s}x{s}',   'copy'),
    ('discriminator/dis_y_rgb_conv_{s}',   RGB,     CONV,    'discriminator', 'from_rgb_{s}x{s}', 'copy'),
    ('discriminator/dis_n_conv_1_{s}',     ABOVE_4, CONV,    'discriminator', 'conv1_{s}x{s}',    'copy'),
    ('discriminator/dis_n_conv_2_{s}',     ABOVE_4, CONV,    'discriminator', 'conv2_{s}x{s}',    'copy'),
    ('discriminator/dis_n_conv_1_4',       ONCE,    CONV,    'discriminator', 'conv_4x4',         'copy'),
    # A 4x4 VALID conv the original graph never uses: its dense layer reads dis_n_conv_1_4's output.
    ('discriminator/dis_n_conv_2_4',       ONCE,    CONV,    None,            None,               'dead'),
    ('discriminator/dis_n_fully',          ONCE,    DENSE,   'discriminator', 'dense_logit',      'copy'),
)

# Training state an original checkpoint may hold next to the weights: ignored (and logged), never an error.
TRAINING_STATE_VARIABLE = re.compile(r'(^|/)(Adam(_\d+)?|beta[12]_power(_\d+)?|global_step|alpha_transition)$')


def _latent_conv_to_dense(kernel):
    """The 4x4 VALID conv over the latent zero-padded to 7x7 is a dense layer: pixel (i, j) sees tap (3-i, 3-j)."""
    return kernel[::-1, ::-1].transpose(2, 0, 1, 3).reshape(kernel.shape[2], -1)


@dataclasses.dataclass(frozen=True)
class _Transform:
    to_native: object      # checkpoint array -> native weight value
    legacy_shape: object   # native weight shape -> the shape the checkpoint must have


TRANSFORMS = {
    ('copy', 'kernel'): _Transform(lambda array: array, tuple),
    ('copy', 'bias'): _Transform(lambda array: array, tuple),
    ('latent_conv', 'kernel'): _Transform(_latent_conv_to_dense,
                                          lambda shape: (4, 4, shape[0], shape[1] // 16)),
    ('latent_conv', 'bias'): _Transform(lambda array: np.tile(array, 16), lambda shape: (shape[0] // 16,)),
}


@dataclasses.dataclass(frozen=True)
class LegacyVariable:
    """One row of the expanded name table: a checkpoint variable and the native weight it fills (None: skipped)."""
    checkpoint_name: str
    network: str
    layer: str
    weight: str
    transform: str


def expand_name_table(architecture):
    """NAME_TABLE written out for one architecture: every variable its original checkpoint holds."""
    sizes_for = {ONCE: [None], ABOVE_4: architecture.sizes[1:], RGB: list(architecture.rgb_sizes)}
    rows = []
    for scope, occurs, weights, network, layer, transform in NAME_TABLE:
        for size in sizes_for[occurs]:
            for leaf, weight in weights:
                rows.append(LegacyVariable(f'{scope.format(s=size)}/{leaf}', network,
                                           layer and layer.format(s=size), weight, transform))
    return rows


# --- finding and reading the files ------------------------------------------------------------------------

def checkpoint_prefix(path):
    """`pretrained_models/16`, `.../16/model.ckpt` or `.../16/model.ckpt.index` -> `.../16/model.ckpt`.

    A path that names no checkpoint file and does not exist is taken as a folder,
    so a missing `pretrained_models/64` is reported as its missing model.ckpt.index.
    """
    path = re.sub(r'\.(index|meta|data-\d{5}-of-\d{5})$', '', os.fspath(path))
    if os.path.isdir(path) or not ('.ckpt' in os.path.basename(path) or os.path.isfile(path + '.index')):
        return os.path.join(path, CHECKPOINT_NAME)
    return path


def is_legacy_checkpoint(path):
    """True when `path` (folder or prefix) has a TF1-style checkpoint index and no DeepZine model.json beside it.

    Only the layout is checked, so the content problems of a file that is not an
    original DeepZine checkpoint are reported by the loader, naming the file.
    """
    prefix = checkpoint_prefix(path)
    folder = os.path.dirname(prefix) or '.'
    return os.path.isfile(prefix + '.index') and not os.path.isfile(os.path.join(folder, NATIVE_MODEL_JSON))


def _first_line(error):
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def _listing(names, count=4):
    return ', '.join(names[:count]) + (', ...' if len(names) > count else '')


def _shape_text(shape):
    return '[' + ', '.join(str(dimension) for dimension in shape) + ']'


def _list_variables(prefix):
    """{name: shape} from the .index file alone."""
    import tensorflow as tf
    index = prefix + '.index'
    if not os.path.isfile(index):
        raise ConfigError(f'{index}: missing; expected an original DeepZine checkpoint there '
                          f'({CHECKPOINT_NAME}.index and {CHECKPOINT_NAME}.data-00000-of-00001)')
    try:
        return {name: tuple(shape) for name, shape in tf.train.list_variables(prefix)}
    except (tf.errors.OpError, ValueError) as error:
        raise ConfigError(f'{index}: not a readable TensorFlow checkpoint index ({_first_line(error)})') from None


def _check_data_files(prefix):
    """Fail before reading: TF opens a checkpoint on its index alone and only breaks at the first get_tensor."""
    shards = sorted(glob.glob(glob.escape(prefix) + '.data-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]'))
    expected = ([f'{prefix}.data-{index:05d}-of-{int(shards[0][-5:]):05d}' for index in range(int(shards[0][-5:]))]
                if shards else [f'{prefix}.data-00000-of-00001'])
    missing = [path for path in expected if not os.path.isfile(path)]
    if missing:
        raise ConfigError(f'{missing[0]}: missing; an original DeepZine checkpoint is the .index file plus its '
                          f'.data file(s): copy both next to each other into {os.path.dirname(prefix) or "."}')


def _describe_foreign(variables):
    if any(name.startswith('_CHECKPOINTABLE_OBJECT_GRAPH') or '.ATTRIBUTES' in name for name in variables):
        return ('it is a TF2 object-based checkpoint: a native DeepZine model is read through the model.json '
                'beside it, with pretrained_model: false')
    return 'it holds ' + (_listing(sorted(variables), 3) or 'no variables')


def _read_shape(prefix, variables, name, rank):
    shape = variables.get(name)
    if shape is None:
        raise ConfigError(f'{prefix}: missing variable {name} (the checkpoint is incomplete)')
    if len(shape) != rank:
        raise ConfigError(f'{prefix}: {name} has shape {_shape_text(shape)}; a DeepZine checkpoint has a '
                          f'rank-{rank} tensor there')
    return shape


def _architecture_from_shapes(prefix, variables):
    if FIRST_VARIABLE not in variables:
        raise ConfigError(f'{prefix}: not an original DeepZine checkpoint (no {FIRST_VARIABLE}; '
                          f'{_describe_foreign(variables)})')
    _, _, latent_size, width_4 = _read_shape(prefix, variables, FIRST_VARIABLE, 4)
    block_sizes = [int(match.group(1)) for name in variables
                   if (match := re.fullmatch(r'generator/gen_n_conv_1_(\d+)/w', name))]
    output_size = max(block_sizes, default=4)
    if output_size & (output_size - 1):
        raise ConfigError(f'{prefix}: generator/gen_n_conv_1_{output_size}/w names a size that is not a power of two')
    widths = {4: width_4}
    for size in sizes_between(8, output_size):
        widths[size] = _read_shape(prefix, variables, f'generator/gen_n_conv_1_{size}/w', 4)[3]
    rgb_sizes = sorted(int(match.group(1)) for name in variables
                       if (match := re.fullmatch(r'generator/gen_y_rgb_conv_(\d+)/w', name)))
    rgb_sizes = [size for size in rgb_sizes if size in widths]  # others are reported as unused by the import plan
    if output_size not in rgb_sizes:
        raise ConfigError(f'{prefix}: missing variable generator/gen_y_rgb_conv_{output_size}/w '
                          f'(the {output_size}x{output_size} output layer)')
    channels = _read_shape(prefix, variables, f'generator/gen_y_rgb_conv_{output_size}/w', 4)[3]
    return Architecture(latent_size=latent_size, channels=channels, output_size=output_size, widths=widths,
                        equalized_learning_rate=False, normalize_latent=False, minibatch_group_size=0,
                        rgb_sizes=tuple(rgb_sizes))


def read_legacy_architecture(path):
    """The Architecture of an original checkpoint, from its .index alone (folder or prefix)."""
    prefix = checkpoint_prefix(path)
    return _architecture_from_shapes(prefix, _list_variables(prefix))


# --- the import plan: names and shapes first, values last --------------------------------------------------

def plan_legacy_import(prefix, variables, architecture, generator, discriminator):
    """Match every checkpoint variable to a native weight, from names and shapes only (the .index suffices).

    Returns ([(LegacyVariable, native variable)], skipped checkpoint names).
    Raises ConfigError naming the variable on an unused, missing or misshapen
    variable, and RuntimeError when the table leaves a native weight unset.
    """
    networks = {'generator': generator, 'discriminator': discriminator}
    table = expand_name_table(architecture)
    known = {row.checkpoint_name for row in table}
    ignored = sorted(name for name in variables if TRAINING_STATE_VARIABLE.search(name))
    unused = sorted(set(variables) - known - set(ignored))
    size = architecture.output_size
    if unused:
        raise ConfigError(f'{prefix}: {len(unused)} variable(s) fit no layer of a {size}x{size} original DeepZine '
                          f'model: {_listing(unused)}')
    missing = [row.checkpoint_name for row in table if row.network and row.checkpoint_name not in variables]
    if missing:
        raise ConfigError(f'{prefix}: missing variable(s) {_listing(missing)} (the checkpoint is incomplete)')
    width_4 = architecture.widths[4]
    dead_shapes = {'kernel': (4, 4, width_4, width_4), 'bias': (width_4,)}
    assignments, skipped = [], []
    for row in table:
        if row.checkpoint_name not in variables:
            continue
        if row.network is None:
            native, expected = None, dead_shapes[row.weight]
        else:
            native = getattr(getattr(networks[row.network], row.layer), row.weight)
            expected = TRANSFORMS[row.transform, row.weight].legacy_shape(tuple(native.shape))
        found = tuple(variables[row.checkpoint_name])
        if found != tuple(expected):
            raise ConfigError(f'{prefix}: {row.checkpoint_name} has shape {_shape_text(found)}, the {size}x{size} '
                              f'model read from this checkpoint needs {_shape_text(expected)} '
                              f'(widths {architecture.widths})')
        if native is None:
            skipped.append(row.checkpoint_name)
        else:
            assignments.append((row, native))
    assigned = {id(native) for _, native in assignments}
    unset = [f'{name}.{weight.path}' for name, network in networks.items() for weight in network.weights
             if id(weight) not in assigned]
    if unset or len(assigned) != len(assignments):
        raise RuntimeError(f'legacy name table bug: native weights unset {unset} or filled twice')
    if ignored:
        logger.info('%s: ignored %d optimizer/training-state variables (%s, ...)', prefix, len(ignored), ignored[0])
    return assignments, skipped


def load_legacy_networks(path, size=None, size_name='gan_output_size'):
    """(architecture, generator, discriminator) with every weight of an original checkpoint (folder or prefix).

    `size` is the requested resolution (the key `size_name` of the user's
    input): a checkpoint of another one is an error, since it has no output
    layer for that size.
    """
    import tensorflow as tf

    from deepzine.model.networks import Discriminator, Generator
    prefix = checkpoint_prefix(path)
    variables = _list_variables(prefix)
    architecture = _architecture_from_shapes(prefix, variables)
    held = architecture.output_size
    if size is not None and size != held:
        raise ConfigError(f'{prefix} holds a {held}x{held} model, {size_name} asks for {size} '
                          f'(set {size_name} to {held}, or point to a {size}x{size} checkpoint)')
    _check_data_files(prefix)
    generator = Generator(architecture, name='generator')
    discriminator = Discriminator(architecture, name='discriminator')
    assignments, skipped = plan_legacy_import(prefix, variables, architecture, generator, discriminator)
    try:
        reader = tf.train.load_checkpoint(prefix)
        for row, native in assignments:
            value = reader.get_tensor(row.checkpoint_name)
            if not np.issubdtype(value.dtype, np.floating):
                raise ConfigError(f'{prefix}: {row.checkpoint_name} holds {value.dtype} values, expected floats')
            native.assign(TRANSFORMS[row.transform, row.weight].to_native(value).astype(np.float32))
    except tf.errors.OpError as error:
        raise ConfigError(f'{prefix}: cannot read the weights ({_first_line(error)})') from None
    logger.info('loaded original DeepZine %dx%d checkpoint %s: %d variables; skipped %s (never used by the original '
                'graph)', held, held, prefix, len(assignments), ', '.join(skipped) or 'nothing')
    return architecture, generator, discriminator


# --- conversion to a native model folder -------------------------------------------------------------------

def _check_destination(prefix, destination):
    """The conversion replaces `destination` whole: never the source's folder or a folder of other files."""
    destination = os.path.abspath(destination)
    source_folder = os.path.dirname(os.path.abspath(prefix))
    if source_folder == destination or source_folder.startswith(destination + os.sep):
        raise ConfigError(f'{destination}: holds the source checkpoint {prefix}; write the converted model '
                          f'to another folder')
    if os.path.exists(destination) and not (os.path.isdir(destination) and
                                            (is_model_folder(destination) or not os.listdir(destination))):
        raise ConfigError(f'{destination}: exists and is not a DeepZine model folder; refusing to replace it '
                          f'(choose a new or empty folder)')


def convert_legacy(source, destination, size=None, keep_training_networks=True, size_name='size'):
    """Write an original checkpoint as a native model folder plus `destination/saved_model`.

    The folder holds generator_ema (the legacy generator), and with
    keep_training_networks a copy as `generator` and the discriminator, so
    fine-tuning can resume from it. Returns (model folder, SavedModel path).
    """
    from deepzine.model.export import export_saved_model
    from deepzine.model.networks import Generator
    prefix = checkpoint_prefix(source)
    _check_destination(prefix, destination)
    architecture, generator_ema, discriminator = load_legacy_networks(prefix, size, size_name)
    generator = None
    if keep_training_networks:
        generator = Generator(architecture, name='generator')
        for source_weight, target_weight in zip(generator_ema.weights, generator.weights):
            target_weight.assign(source_weight)
    config = {'converted_from': os.path.abspath(prefix), 'gan_output_size': architecture.output_size,
              'latent_size': architecture.latent_size, 'equalized_learning_rate': False}
    folder = save_model_folder(destination, architecture, architecture.output_size, generator_ema, generator,
                               discriminator if keep_training_networks else None, config)
    saved_model = export_saved_model(generator_ema, architecture.latent_size, os.path.join(folder, 'saved_model'))
    logger.info('converted %s -> %s (SavedModel %s)', prefix, folder, saved_model)
    return folder, saved_model
