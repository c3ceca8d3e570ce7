"""The train stage's plan in words: what --dry-run prints and what training logs when it starts.

Besides the schedule and outputs, the plan says what the run costs (FLOP and
parameters per phase, accelerator memory at the largest phase, disk for the
checkpoints) and how long it will take: measured on this machine in a few
seconds (deepzine.training.speed, reused within a process), and estimated for common
GPUs from their published rates.
"""

import dataclasses
import logging
import os
import shutil

from deepzine.training import checkpoints
from deepzine.training.cost import describe_cost, disk_bytes, format_bytes, run_cost
from deepzine.training.health import HEALTHY_CHECKPOINTS_KEPT
from deepzine.training.starting_point import RESUME

logger = logging.getLogger(__name__)


def describe_train_plan(plan):
    """Lines: the run, where it starts, the cost of each phase left (filters, parameters, steps, images, FLOP),
    memory, disk and time estimates, and where it writes."""
    trained = plan.trained_phases
    architecture = plan.architecture
    first, last = trained[0].size, plan.phases[-1].size
    automatic = ' (automatic)' if plan.learning_rate_automatic else ''
    network = ('the ORIGINAL DeepZine network (no weight scaling, no latent normalization, one minibatch-stddev group)'
               if not architecture.equalized_learning_rate and not architecture.normalize_latent
               else f'equalized learning rate, minibatch-stddev groups of {architecture.minibatch_group_size or "the whole batch"}')
    lines = [f'train {first}x{first} -> {last}x{last} on {plan.data.path} ({plan.data.channels} channel(s)): '
             f'{len(trained)} phases, {sum(phase.steps for phase in trained)} steps, '
             f'{sum(phase.images for phase in trained):,} real images',
             f'{network}; latent {architecture.latent_size}',
             f'WGAN-GP (lambda {plan.gradient_penalty_weight}, drift {plan.drift_weight}), Adam lr {plan.learning_rate}'
             f'{automatic} beta1 0 beta2 0.99, EMA {plan.generator_ema_beta}; XLA '
             f'{"auto" if plan.jit_compile is None else plan.jit_compile}, precision {plan.mixed_precision}']
    lines.append(plan.start.describe(plan.log_dir))
    phases, step, resumed = phases_left(plan)
    if not phases:
        lines.append(f'every phase is already trained in {plan.log_dir}')
    else:
        if resumed:
            lines.append(f'left to train: from {phases[0].name} step {step} (the costs below count from there)')
        lines += describe_forecast(plan, *forecast(plan, steps_left(phases, step), plan.jit_compile, devices_of(plan)))
    lines.append(f'collapse guard: on an alarm roll back to the newest healthy checkpoint, learning rate x'
                 f'{plan.collapse_learning_rate_factor:g} each time, at most {plan.collapse_retries} times per phase'
                 if plan.collapse_guard else 'collapse guard off: a NaN or infinite loss stops training')
    lines += [f'checkpoints every {plan.model_save_interval_steps} steps and at phase ends -> '
              f'{checkpoints.checkpoint_directory(plan.log_dir)}',
              f'model folders -> {plan.log_dir}/<size>/; TensorBoard -> {plan.log_dir} (tensorboard --logdir '
              f'{plan.log_dir}); final generator -> {os.path.join(plan.log_dir, "saved_model")}',
              f'samples every {plan.model_sample_interval_steps} steps -> {plan.samples_dir}/samples_<size>[_Transition]/; '
              f'loss line every {plan.model_loss_output_interval_steps} steps']
    if plan.evaluation:
        lines.append(f'at each phase end: evaluate {plan.evaluation.image_num} pages (SWD) and '
                     f'{plan.evaluation.memorization_num} (memorization) into {plan.log_dir}/metrics')
    return lines


def devices_of(plan):
    """Devices training together as far as the keys say (gpu_num: None is decided at run time: 1 here)."""
    return len(plan.gpu_num) if plan.gpu_num else 1


def phases_left(plan):
    """(phases still to train, step inside the first, resumed?): a resumed run has fewer phases to go.

    The position is read from the newest checkpoint (a few tensors, no
    network built); the trained phases when there is none.
    """
    from deepzine.training import schedule
    trained = plan.trained_phases
    if plan.start.kind != RESUME:
        return trained, 0, False
    latest = checkpoints.latest_checkpoint(plan.log_dir)
    if not latest:
        return trained, 0, False
    size, kind, step, _ = checkpoints.read_checkpoint_position(latest)
    index, step = schedule.resume_position(plan.phases, trained[0].size, size, kind, step)
    return plan.phases[index:], step, True


def steps_left(phases, step):
    """`phases` with the first shortened by the `step` steps already trained."""
    return (dataclasses.replace(phases[0], steps=phases[0].steps - step),) + tuple(phases[1:]) if step else tuple(phases)


def forecast(plan, phases, jit_compile=None, devices=1):
    """(RunCost, TimeEstimate) of training `phases` as the plan says; measures this machine once per process."""
    from deepzine.training.speed import estimate_time
    cost = run_cost(plan.architecture, phases, plan.discriminator_updates, plan.generator_updates,
                    plan.mixed_precision)
    return cost, estimate_time(cost, jit_compile=jit_compile, devices=devices,
                               save_interval_steps=plan.model_save_interval_steps)


def needed_disk_bytes(plan, cost):
    """Bytes log_dir needs for the checkpoints kept (the newest CHECKPOINTS_TO_KEEP, and the collapse guard's
    healthy ones on top), a model folder per stable phase and the exported generator."""
    kept = checkpoints.CHECKPOINTS_TO_KEEP + (HEALTHY_CHECKPOINTS_KEPT if plan.collapse_guard else 0)
    model_folders = len({phase.size for phase in cost.phases if phase.kind != 'fade'})
    return disk_bytes(cost, kept, model_folders)


def free_disk_bytes(path):
    """Free bytes on the disk that holds `path` (or its nearest existing folder)."""
    folder = os.path.abspath(path)
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    return shutil.disk_usage(folder).free


def warn_if_space_is_short(plan, cost):
    """One warning before training when the checkpoints and model folders will not fit on log_dir's disk."""
    needed, free = needed_disk_bytes(plan, cost), free_disk_bytes(plan.log_dir)
    if free < needed:
        logger.warning('the checkpoints and model folders of this run need about %s on the disk of %s, and %s are '
                       'free: training will stop when the disk is full; free some space first',
                       format_bytes(needed), plan.log_dir, format_bytes(free))
    return needed, free


def describe_forecast(plan, cost, estimate):
    """Lines: the cost table, memory, disk, and the time estimates of a `forecast`."""
    from deepzine.training.speed import describe_time
    needed, free = needed_disk_bytes(plan, cost), free_disk_bytes(plan.log_dir)
    lines = describe_cost(cost)
    lines.append(f'disk: checkpoints and model folders need about {format_bytes(needed)} in {plan.log_dir} '
                 f'({format_bytes(free)} free{"; NOT ENOUGH" if free < needed else ""})')
    return lines + describe_time(estimate, cost)
