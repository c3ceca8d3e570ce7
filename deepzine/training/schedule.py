"""The progressive schedule: which phases a run trains, how long each lasts and its batch size.

Pure Python (no TensorFlow), so `--dry-run` can print it instantly. A phase is
one resolution in one of two kinds (Karras et al. 2018, section 3):

    fade    the new resolution's layers blend in: alpha goes linearly from 0 to 1
            (computed inside the training step, deepzine.training.step)
    stable  the new resolution trains alone (alpha is not used)

The first resolution (4x4) has only a stable phase. A run that starts higher
(`gan_starting_size`) begins with the fade-in of that size.
"""

import dataclasses
import math

from deepzine.parameters import ConfigError
from deepzine.sizes import sizes_between

FADE, STABLE = 'fade', 'stable'


@dataclasses.dataclass(frozen=True)
class Phase:
    """One phase of the run: `steps` training steps of `batch_size` images (summed over devices) at `size` pixels."""
    index: int
    size: int
    kind: str
    steps: int
    batch_size: int

    @property
    def fading(self):
        return self.kind == FADE

    @property
    def images(self):
        return self.steps * self.batch_size

    @property
    def name(self):
        """`16x16 fade`: for logs and progress bars."""
        return f'{self.size}x{self.size} {self.kind}'

    @property
    def folder_name(self):
        """`samples_16_Transition` or `samples_16`: the samples sub-folder, named as the original DeepZine named it."""
        return f'samples_{self.size}_Transition' if self.fading else f'samples_{self.size}'


def batch_size_for(size, batch_size, batch_size_reduction_transition_size, reduced_batch_size, batch_sizes=None):
    """Images per step at `size`: the explicit `batch_sizes` map wins, then the original's reduction rule.

    The original DeepZine used `batch_size` below `batch_size_reduction_transition_size`
    and `reduced_batch_size` from it up, to fit large resolutions in GPU memory.
    """
    if batch_sizes and size in batch_sizes:
        return batch_sizes[size]
    if batch_size_reduction_transition_size is not None and size >= batch_size_reduction_transition_size:
        return reduced_batch_size
    return batch_size


def steps_for(batch_size, iterations_per_stage, images_per_phase=None):
    """Steps in one phase: `images_per_phase` (the paper counts images, 800k) rounded up to whole steps, else iterations_per_stage."""
    if images_per_phase is not None:
        return max(1, math.ceil(images_per_phase / batch_size))
    return iterations_per_stage


def build_phases(output_size, iterations_per_stage, batch_size, batch_size_reduction_transition_size,
                 reduced_batch_size, batch_sizes=None, images_per_phase=None):
    """Every phase from 4x4 up to `output_size`, in order: 4 stable, 8 fade, 8 stable, 16 fade, ...

    The list always starts at 4x4, so a phase's index is the same whatever
    `gan_starting_size` is; `first_phase_index` says where a run begins.
    """
    phases = []
    for size in sizes_between(4, output_size):
        phase_batch = batch_size_for(size, batch_size, batch_size_reduction_transition_size, reduced_batch_size,
                                     batch_sizes)
        steps = steps_for(phase_batch, iterations_per_stage, images_per_phase)
        kinds = [STABLE] if size == 4 else [FADE, STABLE]
        for kind in kinds:
            phases.append(Phase(len(phases), size, kind, steps, phase_batch))
    return phases


def first_phase_index(phases, starting_size):
    """The phase a fresh run begins with: 4x4 stable, or the fade-in of `starting_size` when lower phases are done."""
    for phase in phases:
        if phase.size == starting_size:
            return phase.index
    raise ValueError(f'no phase at size {starting_size}')


def phases_from(phases, index, step=0):
    """The phases from phases[index] on, the first shortened by the `step` steps already trained in it."""
    left = tuple(phases[index:])
    return (dataclasses.replace(left[0], steps=left[0].steps - step),) + left[1:] if left and step else left


def find_phase(phases, size, kind):
    for phase in phases:
        if phase.size == size and phase.kind == kind:
            return phase
    return None


def resume_position(phases, starting_size, saved_size=None, saved_kind=None, saved_step=None):
    """(phase index, step inside it) where training continues; index len(phases) means everything is done.

    A saved position (from a checkpoint) wins unless it lies before the
    starting size. A saved step at or past the phase's length (the phase ended,
    or `iterations_per_stage` shrank since) moves to the next phase's step 0.
    """
    start = first_phase_index(phases, starting_size)
    if saved_size is None:
        return start, 0
    phase = find_phase(phases, saved_size, saved_kind)
    if phase is None:
        raise ValueError(f'the saved position {saved_size}x{saved_size} {saved_kind} is not in this schedule')
    if phase.index < start:
        return start, 0
    if saved_step >= phase.steps:
        return phase.index + 1, 0
    return phase.index, saved_step


def check_replica_batches(phases, replicas, group_size):
    """Each device's share of every batch must be whole, and split into whole minibatch-stddev groups."""
    for phase in phases:
        local, remainder = divmod(phase.batch_size, replicas)
        if remainder or local == 0:
            raise ConfigError(f'batch size {phase.batch_size} at {phase.size}x{phase.size}: must be a multiple of the '
                              f'{replicas} devices training together (batch_size, reduced_batch_size, batch_sizes)')
        if group_size and local > group_size and local % group_size:  # 0: the whole batch is one group
            raise ConfigError(f'minibatch_group_size={group_size}: must divide the per-device batch of {local} at '
                              f'{phase.size}x{phase.size} (batch {phase.batch_size} over {replicas} device(s))')
