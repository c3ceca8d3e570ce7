"""What a training run costs before it starts: FLOPs, parameters and accelerator memory of every phase, from shapes.

Pure Python (TensorFlow is imported only by `profiled_flop`, the cross-check),
so `--dry-run` prints it instantly:

    cost = run_cost(architecture, phases, discriminator_updates=1, generator_updates=1, mixed_precision='float32')
    print('\\n'.join(describe_cost(cost)))

FLOP = 2 x multiply-adds of the convolutions and dense layers (the arithmetic
that takes the time); the element-wise ops are added as a rule per activation
element (see `ELEMENTWISE_FLOP_PER_ELEMENT`). The counts equal TensorFlow's
per-op profiler statistics of the traced step (`profiled_flop`) to within 1%
(tests/training/test_cost.py; 0.1% at 32x32 with 128 filters).
"""

import collections
import dataclasses
import logging
import math

# Layers whose input needs no gradient: the generator's latent input and the discriminator's image input
# (reals and fakes are constants of the critic's tape). Only the gradient penalty differentiates the images.
Layer = collections.namedtuple('Layer', 'name in_channels out_channels kernel pixels input_gradient')

FLOAT32_BYTES = 4
PROFILED_OP_TYPES = ('Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'MatMul')
COMPUTE_BYTES = {'float32': 4, 'mixed_float16': 2, 'mixed_bfloat16': 2}
# Element-wise ops (bias, pixel norm, resampling, losses; Adam, EMA and the run-time weight scaling per parameter)
# are 0.4-7% of the profiler's total at 8-32 filters, under 0.2% at 128. Rule fitted to its statistics over 34
# phases (8-32 filters, 4-32 pixels, batch 4-16, 1-2 updates): within 1.3% of the total everywhere.
ELEMENTWISE_FLOP_PER_ELEMENT = 2
PARAMETER_UPDATE_FLOP = 21
WORKSPACE_FIXED_BYTES = 2 ** 30      # CUDA context, cuDNN/cuBLAS handles and convolution workspace
WORKSPACE_FRACTION = 0.35            # of the activations: the backward's transient gradient maps, fragmentation


def generator_layers(architecture, size, fading):
    """The generator's conv/dense layers run at `size` (with the previous toRGB while fading), input to output."""
    width, latent = architecture.widths, architecture.latent_size
    layers = []
    if architecture.conditional:  # the collection's embedding joins the latent (deepzine.model.networks)
        layers.append(Layer('collection_embedding', architecture.collection_count, latent, 1, 1, False))
        latent *= 2
    layers += [Layer('latent_to_4x4', latent, 16 * width[4], 1, 1, False), Layer('conv_4x4', width[4], width[4], 3, 16, True)]
    for block in architecture.sizes[1:architecture.sizes.index(size) + 1]:
        layers.append(Layer(f'conv1_{block}', width[block // 2], width[block], 3, block * block, True))
        layers.append(Layer(f'conv2_{block}', width[block], width[block], 3, block * block, True))
    layers.append(Layer(f'to_rgb_{size}', width[size], architecture.channels, 1, size * size, True))
    if fading:
        layers.append(Layer(f'to_rgb_{size // 2}', width[size // 2], architecture.channels, 1, size * size // 4, True))
    return layers


def discriminator_layers(architecture, size, fading):
    """The discriminator's conv/dense layers run at `size` (with the previous fromRGB while fading), input to output."""
    width, channels = architecture.widths, architecture.channels
    layers = [Layer(f'from_rgb_{size}', channels, width[size], 1, size * size, False)]
    if fading:
        layers.append(Layer(f'from_rgb_{size // 2}', channels, width[size // 2], 1, size * size // 4, False))
    for block in reversed(architecture.sizes[1:architecture.sizes.index(size) + 1]):
        layers.append(Layer(f'conv1_{block}', width[block], width[block], 3, block * block, True))
        layers.append(Layer(f'conv2_{block}', width[block], width[block // 2], 3, block * block, True))
    # + 1 input map: the minibatch standard deviation
    layers.append(Layer('conv_4x4', width[4] + 1, width[4], 3, 16, True))
    if architecture.conditional:  # the projection term's embedding of the collection
        layers.append(Layer('collection_projection', architecture.collection_count, 16 * width[4], 1, 1, False))
    layers.append(Layer('dense_logit', 16 * width[4], 1, 1, 1, True))
    return layers


def layer_flop(layer):
    return 2 * layer.pixels * layer.kernel ** 2 * layer.in_channels * layer.out_channels


def layer_parameters(layer):
    return layer.kernel ** 2 * layer.in_channels * layer.out_channels + layer.out_channels


def _parameters(layers):
    return sum(map(layer_parameters, layers))


def layer_passes(architecture, size, fading, discriminator_updates=1, generator_updates=1):
    """[(layer, passes)]: forward-pass equivalents of each layer in one step, per image of a batch.

    With forward F, weight gradients W and input gradients I (I' without the
    layers whose input needs none) of G and D:
      critic update    F_G (fakes) + 3 F_D (reals, fakes, interpolates) + 3 (W_D + I'_D) (backward of the three)
                       + F_D (the penalty's input gradient) + W_D + F_D - top layer (its second-order terms)
      generator update F_G + F_D + F_D (input gradient through D) + W_G + I'_G
    With every term about F this is the familiar F_G + 12 F_D and 3 F_G + 2 F_D
    per update (4 F_G + 14 F_D per step). The critic's fakes are generated
    outside its tape: G is not differentiated there.
    """
    generator, discriminator = generator_layers(architecture, size, fading), discriminator_layers(architecture, size, fading)
    passes = [(layer, discriminator_updates + generator_updates * (2 + layer.input_gradient)) for layer in generator]
    for layer in discriminator:
        top = layer is discriminator[-1]
        passes.append((layer, discriminator_updates * (9 + 3 * layer.input_gradient - top) + generator_updates * 2))
    return passes


def step_flop(architecture, size, fading, batch_size, discriminator_updates=1, generator_updates=1):
    """FLOP of one training step of `batch_size` images per update (the step consumes `discriminator_updates` batches).

    Convolutions and dense layers as `layer_passes` counts them; element-wise
    ops: ELEMENTWISE_FLOP_PER_ELEMENT per layer output element and pass, plus
    PARAMETER_UPDATE_FLOP per trained parameter and update.
    """
    passes = layer_passes(architecture, size, fading, discriminator_updates, generator_updates)
    per_image = sum(count * (layer_flop(layer) + ELEMENTWISE_FLOP_PER_ELEMENT * layer.pixels * layer.out_channels)
                    for layer, count in passes)
    generator, discriminator = generator_layers(architecture, size, fading), discriminator_layers(architecture, size, fading)
    parameter_updates = PARAMETER_UPDATE_FLOP * (discriminator_updates * _parameters(discriminator)
                                                 + generator_updates * _parameters(generator))
    return batch_size * per_image + parameter_updates


def held_parameters(architecture):
    """(generator, discriminator) trainable parameters of every resolution: what the networks and Adam hold."""
    top = architecture.output_size
    generator = {layer.name: layer for layer in generator_layers(architecture, top, False)[:-1]}
    discriminator = {layer.name: layer for layer in discriminator_layers(architecture, top, False)[1:]}
    for size in architecture.rgb_sizes:
        generator.update({layer.name: layer for layer in generator_layers(architecture, size, False)[-1:]})
        discriminator.update({layer.name: layer for layer in discriminator_layers(architecture, size, False)[:1]})
    return _parameters(generator.values()), _parameters(discriminator.values())


def _kept_elements(layers, outputs_kept):
    """Elements per image one differentiated pass keeps: each layer's input (for its weight gradient) and
    `outputs_kept` tensors of its output size (pre-activation for leaky ReLU's gradient; in G also the pixel
    norm's input)."""
    return sum(layer.pixels * layer.in_channels
               + outputs_kept * layer.pixels * layer.out_channels for layer in layers)


def activation_bytes(architecture, size, fading, batch_size, mixed_precision='float32'):
    """Bytes of the activations the WGAN-GP step keeps for its backward passes, at its peak.

    Counting rule, per image: a discriminator pass keeps A_D = each layer's
    input and pre-activation; a generator pass keeps A_G = each layer's input,
    pre-activation and leaky-ReLU output (pixel norm differentiates through it).
    The critic's tape holds D on reals, on fakes and on the interpolates, and
    the interpolates' pass counts twice: the gradient penalty is differentiated
    again, so the first backward's per-layer gradient maps, as many as the
    forward's activations, are kept too: 4 A_D. The fakes come from a G pass
    outside that tape, freed before it. The generator update holds A_G + A_D.
    Peak = batch x max(4 A_D, A_G + A_D), in the compute dtype (16-bit under
    mixed precision; the weights stay float32).
    """
    generator = _kept_elements(generator_layers(architecture, size, fading), 2)
    discriminator = _kept_elements(discriminator_layers(architecture, size, fading), 1)
    return batch_size * max(4 * discriminator, generator + discriminator) * COMPUTE_BYTES[mixed_precision]


@dataclasses.dataclass(frozen=True)
class PhaseCost:
    """One phase's shapes and arithmetic. `real_images` counts every real image the critic reads."""
    index: int
    size: int
    kind: str
    generator_filters: int
    discriminator_filters: int
    generator_parameters: int       # trained in this phase
    discriminator_parameters: int
    batch_size: int
    steps: int
    real_images: int
    step_flop: int
    flop_by_size: tuple             # ((size, FLOP), ...) of the convolutions of one step
    kernel_calls: int               # convolution and dense kernels per step: each has a fixed cost
    gflop_per_image: float
    gflop: float
    activation_bytes: int

    @property
    def name(self):
        return f'{self.size}x{self.size} {self.kind}'


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Accelerator memory of one phase's step, in bytes; `total_bytes` includes the workspace allowance."""
    phase_name: str
    batch_size: int
    weights_bytes: int              # G, G-EMA and D, float32
    optimizer_bytes: int            # Adam's two moments of G and D, and one network's gradients, float32
    activation_bytes: int
    workspace_bytes: int

    @property
    def total_bytes(self):
        return self.weights_bytes + self.optimizer_bytes + self.activation_bytes + self.workspace_bytes


@dataclasses.dataclass(frozen=True)
class RunCost:
    architecture: object            # deepzine.model.architecture.Architecture
    phases: tuple                   # PhaseCost, in training order
    generator_parameters: int       # held: every resolution
    discriminator_parameters: int
    memory: MemoryEstimate          # at the phase that needs the most
    mixed_precision: str
    discriminator_updates: int
    generator_updates: int

    @property
    def gflop(self):
        return sum(phase.gflop for phase in self.phases)

    @property
    def steps(self):
        return sum(phase.steps for phase in self.phases)

    @property
    def real_images(self):
        return sum(phase.real_images for phase in self.phases)


def memory_estimate(phase_cost, generator_held, discriminator_held):
    """Weights, optimizer state and activations of one phase, plus the allowance for the framework.

    The allowance is WORKSPACE_FIXED_BYTES (a CUDA context alone takes
    0.3-0.5 GiB of device memory, cuDNN picks convolution algorithms with
    workspaces of up to hundreds of MiB) plus WORKSPACE_FRACTION of the
    activations: during a backward pass a layer's gradient maps exist next to
    the kept activations, and the allocator fragments. Measured on a CPU (the
    peak RSS the real step adds at two batch sizes, 32-128 filters at 32-128
    pixels, float32 and bfloat16; bench/bench_train.py --activation-memory):
    1.19-1.24x the counted activations per image.
    """
    weights = FLOAT32_BYTES * (2 * generator_held + discriminator_held)
    optimizer = FLOAT32_BYTES * (2 * (generator_held + discriminator_held)
                                 + max(phase_cost.generator_parameters, phase_cost.discriminator_parameters))
    return MemoryEstimate(phase_cost.name, phase_cost.batch_size, weights, optimizer, phase_cost.activation_bytes,
                          int(WORKSPACE_FIXED_BYTES + WORKSPACE_FRACTION * phase_cost.activation_bytes))


def phase_cost(architecture, phase, discriminator_updates=1, generator_updates=1, mixed_precision='float32'):
    size, fading, batch = phase.size, phase.fading, phase.batch_size
    passes = layer_passes(architecture, size, fading, discriminator_updates, generator_updates)
    by_size = {}
    for layer, count in passes:
        layer_at = max(4, math.isqrt(layer.pixels))  # the dense layers count as 4x4
        by_size[layer_at] = by_size.get(layer_at, 0) + batch * count * layer_flop(layer)
    flop = step_flop(architecture, size, fading, batch, discriminator_updates, generator_updates)
    return PhaseCost(
        index=phase.index, size=size, kind=phase.kind, generator_filters=architecture.widths[size],
        discriminator_filters=architecture.widths[size],
        generator_parameters=_parameters(generator_layers(architecture, size, fading)),
        discriminator_parameters=_parameters(discriminator_layers(architecture, size, fading)),
        batch_size=batch, steps=phase.steps, real_images=phase.steps * batch * discriminator_updates,
        step_flop=flop, flop_by_size=tuple(sorted(by_size.items())), kernel_calls=sum(count for _, count in passes),
        gflop_per_image=flop / (batch * discriminator_updates) / 1e9, gflop=flop * phase.steps / 1e9,
        activation_bytes=activation_bytes(architecture, size, fading, batch, mixed_precision))


def run_cost(architecture, phases, discriminator_updates=1, generator_updates=1, mixed_precision='float32'):
    """The cost of training `phases` (deepzine.training.schedule.Phase, the ones this run trains) in order."""
    if not phases:
        raise ValueError('run_cost needs at least one phase')
    if mixed_precision not in COMPUTE_BYTES:
        raise ValueError(f'mixed_precision={mixed_precision!r}: expected one of {sorted(COMPUTE_BYTES)}')
    costs = tuple(phase_cost(architecture, phase, discriminator_updates, generator_updates, mixed_precision)
                  for phase in phases)
    generator_held, discriminator_held = held_parameters(architecture)
    largest = max(costs, key=lambda cost: cost.activation_bytes)
    return RunCost(architecture, costs, generator_held, discriminator_held,
                   memory_estimate(largest, generator_held, discriminator_held), mixed_precision,
                   discriminator_updates, generator_updates)


def checkpoint_bytes(cost):
    """What one run checkpoint holds: G, G-EMA and D, and Adam's two moments of G and D, float32."""
    return FLOAT32_BYTES * (4 * cost.generator_parameters + 3 * cost.discriminator_parameters)


def disk_bytes(cost, checkpoints_kept, model_folders):
    """Bytes a run leaves in log_dir at most: `checkpoints_kept` checkpoints (plus the one being written before
    the oldest is deleted), `model_folders` model folders of G-EMA, G and D, and the exported generator.
    Networks are counted whole (every resolution): the variables of every size exist from the start."""
    networks = FLOAT32_BYTES * (2 * cost.generator_parameters + cost.discriminator_parameters)
    return ((checkpoints_kept + 1) * checkpoint_bytes(cost) + model_folders * networks
            + FLOAT32_BYTES * cost.generator_parameters)


def _scaled(value, prefixes, unit, base=1000):
    for power, prefix in prefixes:
        if value >= base ** power:
            return f'{value / base ** power:.3g} {prefix}{unit}'
    return f'{value:.3g} {unit}'.strip()


def format_count(value):
    """`850`, `12.3 k`, `1.23 M`: parameter counts."""
    return _scaled(value, ((3, 'G'), (2, 'M'), (1, 'k')), '')


def format_bytes(value):
    return _scaled(value, ((3, 'Gi'), (2, 'Mi'), (1, 'Ki')), 'B', 1024)


def format_flop(value_gflop):
    return _scaled(value_gflop * 1e9, ((6, 'E'), (5, 'P'), (4, 'T'), (3, 'G'), (2, 'M')), 'FLOP')


def describe_cost(cost):
    """Printable lines: a header, one table row per phase, the totals, parameters held and a `memory` line."""
    updates = (f'{cost.discriminator_updates} critic and {cost.generator_updates} generator '
               f'update{"s" if cost.generator_updates > 1 else ""} per step')
    lines = [f'cost: {len(cost.phases)} phases, {cost.steps:,} steps, {cost.real_images:,} real images, '
             f'{format_flop(cost.gflop)} ({cost.mixed_precision}, {updates})',
             f'  {"phase":<16} {"G/D filters":>11} {"G params":>9} {"D params":>9} {"batch":>6} {"steps":>8} '
             f'{"real images":>12} {"GFLOP/image":>11} {"phase FLOP":>12}']
    for phase in cost.phases:
        filters = f'{phase.generator_filters}/{phase.discriminator_filters}'
        lines.append(f'  {phase.name:<16} {filters:>11} {format_count(phase.generator_parameters):>9} '
                     f'{format_count(phase.discriminator_parameters):>9} {phase.batch_size:>6} {phase.steps:>8,} '
                     f'{phase.real_images:>12,} {phase.gflop_per_image:>11.3g} {format_flop(phase.gflop):>12}')
    lines.append(f'  {"total":<16} {"":>11} {format_count(cost.generator_parameters):>9} '
                 f'{format_count(cost.discriminator_parameters):>9} {"":>6} {cost.steps:>8,} {cost.real_images:>12,} '
                 f'{"":>11} {format_flop(cost.gflop):>12}')
    memory = cost.memory
    lines.append(f'memory at {memory.phase_name} (batch {memory.batch_size}, {cost.mixed_precision}): about '
                 f'{format_bytes(memory.total_bytes)} = weights G, G-EMA, D {format_bytes(memory.weights_bytes)} + '
                 f'Adam moments and gradients {format_bytes(memory.optimizer_bytes)} + activations '
                 f'{format_bytes(memory.activation_bytes)} + framework allowance {format_bytes(memory.workspace_bytes)}')
    return lines


def profiled_flop(concrete_function):
    """(FLOP, {op type: FLOP}) of the ops a traced step executes, by TensorFlow's registered per-op statistics.

    The cross-check of `step_flop`. Ops nothing depends on (e.g. the critic's
    filter gradients during the generator update) are pruned before running, as
    grappler prunes them: walk back from the outputs and the variable updates
    and count only what is reached. Imports TensorFlow.
    """
    from tensorflow.python.framework import ops as framework_ops
    graph = concrete_function.graph
    roots = [tensor.op for tensor in graph.outputs] + list(graph.control_outputs)
    roots += [op for op in graph.get_operations() if op.type in ('AssignVariableOp', 'AssignAddVariableOp')]
    reached, stack = set(), list(roots)
    while stack:
        op = stack.pop()
        if op.name in reached:
            continue
        reached.add(op.name)
        stack.extend(tensor.op for tensor in op.inputs)
        stack.extend(op.control_inputs)
    by_type, quiet = {}, logging.getLogger('tensorflow')
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the TF1 statistics API prints a deprecation notice
    try:
        for op in graph.get_operations():
            if op.name not in reached:
                continue
            try:
                value = framework_ops.get_stats_for_node_def(graph, op.node_def, 'flops').value or 0
            except ValueError:  # no statistic registered for this op type: not arithmetic
                continue
            key = op.type if op.type in PROFILED_OP_TYPES else 'element-wise'
            by_type[key] = by_type.get(key, 0) + value
    finally:
        quiet.setLevel(level)
    return sum(by_type.values()), by_type
