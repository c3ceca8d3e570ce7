"""The train stage's plan in words: what --dry-run prints and what training logs when it starts."""

import os

from deepzine.training import checkpoints


def describe_train_plan(plan):
    """Lines: the run, its phases with filters, steps and images, where it starts, and where it writes."""
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
    for size in sorted({phase.size for phase in trained}):
        at_size = [phase for phase in trained if phase.size == size]
        kinds = ' + '.join(phase.kind for phase in at_size)
        lines.append(f'  {size:>4}x{size:<4} {kinds:<13} {architecture.widths[size]:>4} filters  '
                     f'{at_size[0].steps} steps x {at_size[0].batch_size} images'
                     f'{" each" if len(at_size) > 1 else ""} = {sum(p.images for p in at_size):,} images')
    lines.append(plan.start.describe(plan.log_dir))
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
