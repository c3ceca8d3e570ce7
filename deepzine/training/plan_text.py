"""The train stage's plan in words: what --dry-run prints and what training logs when it starts. Formatting only: every
figure comes from the plan (its Forecast was measured when the plan was made)."""

import os

from deepzine.training import checkpoints
from deepzine.training.cost import describe_cost, format_bytes
from deepzine.training.speed import describe_time


def describe_train_plan(plan):
    """Lines: the run, where it starts, the cost of each phase left (filters, parameters, steps, images, FLOP),
    memory, disk and time estimates, and where it writes."""
    trained, architecture, hardware = plan.trained_phases, plan.architecture, plan.hardware
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
             f'{automatic} beta1 0 beta2 0.99, EMA {plan.generator_ema_beta}',
             f'on {hardware.description}: XLA {"on" if hardware.jit_compile else "off"}, precision '
             f'{hardware.mixed_precision} ({hardware.precision_reason})',
             plan.start.describe(plan.phases),
             describe_collections(plan)]
    if plan.forecast is None:
        lines.append(f'every phase is already trained in {plan.log_dir}')
    else:
        left = plan.phases_left
        if plan.start.phase_index > plan.first_phase_index or plan.start.step:
            lines.append(f'left to train: from {left[0].name} step {plan.start.step} (the costs below count from there)')
        lines += describe_forecast(plan.forecast, plan.log_dir)
    fallback = (f' (at most the automatic {plan.automatic_learning_rate:g})'
                if plan.learning_rate > plan.automatic_learning_rate else '')
    lines.append(f'collapse guard: on an alarm roll back to the newest healthy checkpoint (again in a phase: to its '
                 f'start), learning rate x{plan.collapse_learning_rate_factor:g} each time{fallback} and carried into the next '
                 f'phases, at most {plan.collapse_retries} times per phase'
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


def describe_collections(plan):
    """One line: the page file's collections with their page counts, whether the networks are conditioned on them,
    what that costs, and how training draws them."""
    data, architecture = plan.data, plan.architecture
    counts = data.collection_page_counts or (None,) * len(data.collections)
    listed = ', '.join(name if count is None else f'{name} ({count:,} pages)'
                       for name, count in zip(data.collections, counts))
    if len(data.collections) == 1:
        return f'one collection: {listed}'
    drawn = ('training draws each collection equally often' if plan.collection_balance
             else 'training draws each collection as often as it has pages')
    if not architecture.conditional:
        return (f'{len(data.collections)} collections: {listed}; the networks are not conditioned on them, so they '
                f'learn every collection\'s pages together; {drawn}')
    line = f'{len(data.collections)} collections: {listed}; conditional (a page is drawn for a collection); {drawn}'
    unconditioned = plan.forecast and plan.forecast.conditioning
    if unconditioned:
        cost = plan.forecast.cost
        extra = (cost.generator_parameters + cost.discriminator_parameters
                 - unconditioned.generator_parameters - unconditioned.discriminator_parameters)
        share = cost.gflop / unconditioned.gflop - 1
        line += f'; conditioning adds {extra:,} parameters and {share:.2%} of the arithmetic'
    return line


def describe_forecast(forecast, log_dir):
    """Lines: the cost table, memory, disk, and the time estimates of a Forecast."""
    lines = describe_cost(forecast.cost)
    lines.append(f'disk: checkpoints and model folders need about {format_bytes(forecast.disk_needed_bytes)} in '
                 f'{log_dir} ({format_bytes(forecast.disk_free_bytes)} free'
                 f'{"; NOT ENOUGH" if forecast.disk_is_short else ""})')
    return lines + describe_time(forecast.estimate, forecast.cost)


def disk_warning(forecast, log_dir):
    """The warning training logs before it starts when the checkpoints and model folders will not fit, or None."""
    if forecast is None or not forecast.disk_is_short:
        return None
    return (f'the checkpoints and model folders of this run need about {format_bytes(forecast.disk_needed_bytes)} on '
            f'the disk of {log_dir}, and {format_bytes(forecast.disk_free_bytes)} are free: training will stop when '
            f'the disk is full; free some space first')
