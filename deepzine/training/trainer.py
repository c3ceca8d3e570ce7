"""The training loop: phases in order, checkpoints and exact resume, samples, logs, per-resolution models and export.

`train(plan)` runs a TrainPlan (deepzine.training.stage) to the end, or resumes it:

    log_dir/checkpoints/       ckpt-<global step>.*, run_config.yaml  (resume state)
    log_dir/<size>/            model.json + model.ckpt after each resolution's stable phase
    log_dir/tensorboard/       scalars and sample images
    log_dir/saved_model/       the final EMA generator, signature latents -> images
    samples_dir/samples_<size>[_Transition]/   sample and real grids

The host only feeds the step; it reads values back (one sync) at the loss,
sample and save intervals. Data order after a resume is a fresh, seeded
shuffle (seeded by the run, phase and step), not the exact order the killed
run would have used: the model state, RNG and position are exact.

With `collapse_guard` (deepzine.training.guard) every loss line, sample grid
and checkpoint is judged, and an alarm rolls the run back to its newest healthy
checkpoint at a lower learning rate; without it a NaN stops training.
"""

import logging
import math
import os
import secrets
import time

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from deepzine.parameters import ConfigError
from deepzine.training import checkpoints, schedule
from deepzine.training.guard import CollapseGuard, TrainingDiverged
from deepzine.training.outputs import SAMPLE_GRID_IMAGES, TrainingOutputs, loss_line
from deepzine.training.starting_point import FINE_TUNE, GROW, RESUME

logger = logging.getLogger(__name__)

SAVED_MODEL_FOLDER = 'saved_model'
QUIETED_LOGGERS = ('absl', 'tensorflow')


def train(plan, strategy=None):
    """Run or resume the training a TrainPlan describes; `strategy` overrides the one chosen from gpu_num (tests).

    Ctrl-C and SIGTERM (turned into a KeyboardInterrupt by the CLI) save the
    current step before the process ends.
    """
    from deepzine.data.store import PageStore
    # TensorFlow logs every checkpoint write ("Sharding callback duration") and export detail at INFO level.
    quieted = {name: logging.getLogger(name).level for name in QUIETED_LOGGERS}
    for name in QUIETED_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with PageStore(plan.data.path) as store:
            return Trainer(plan, store, strategy).run()
    finally:
        for name, level in quieted.items():
            logging.getLogger(name).setLevel(level)


def _all_finite(variables):
    import tensorflow as tf
    return all(bool(tf.reduce_all(tf.math.is_finite(variable)).numpy()) for variable in variables)


class Trainer:
    """One run of one TrainPlan against one open PageStore."""

    def __init__(self, plan, store, strategy=None):
        from deepzine.training.devices import (advise_cpu_precision, choose_strategy, cpu_has_bfloat16_units,
                                               describe_devices, is_chief, uses_gpu)
        self.plan, self.store = plan, store
        self.phases, self.architecture = list(plan.phases), plan.architecture
        for size in {phase.size for phase in plan.trained_phases}:
            store.require_size(size)
        if store.channels != self.architecture.channels:
            raise ConfigError(f'data_hdf5={store.path} holds {store.channels}-channel pages, the networks make '
                              f'{self.architecture.channels}-channel pages')
        self.latest = checkpoints.latest_checkpoint(plan.log_dir) if plan.start.kind == RESUME else None
        if self.latest:  # the newest checkpoint's own description: run_config.yaml may be older than it
            checkpoints.check_same_run(checkpoints.read_checkpoint_description(self.latest), self.architecture,
                                       plan.settings, store.channels, plan.log_dir)
        self.strategy = strategy or choose_strategy(plan.gpu_num)
        self.chief = is_chief(self.strategy)
        schedule.check_replica_batches(plan.trained_phases, self.strategy.num_replicas_in_sync,
                                       self.architecture.minibatch_group_size)
        on_gpu = uses_gpu(self.strategy)
        self.jit_compile = on_gpu if plan.jit_compile is None else plan.jit_compile
        self._unreadable_reported = 0
        if not on_gpu:
            advise_cpu_precision(plan.mixed_precision, cpu_has_bfloat16_units())
        logger.info('training on %s, XLA %s, precision %s', describe_devices(self.strategy),
                    'on' if self.jit_compile else 'off', plan.mixed_precision)

    # --- setup -------------------------------------------------------------------------------------------

    def _build(self):
        import keras
        from deepzine.training.step import StepSettings, StepState, build_training_models
        plan = self.plan
        run_seed = plan.random_seed if plan.random_seed is not None else secrets.randbits(62)
        keras.utils.set_random_seed(run_seed % 2 ** 32)  # the initial weights too: a seeded fresh run repeats exactly
        self.models = build_training_models(self.architecture, self.strategy, plan.learning_rate, plan.mixed_precision)
        self.state = StepState(seed=run_seed)
        sample_latents = np.random.default_rng(run_seed).standard_normal(
            (SAMPLE_GRID_IMAGES, self.architecture.latent_size)).astype(np.float32)
        description = checkpoints.run_description(plan.settings, self.store.channels, self.architecture)
        self.checkpoint = checkpoints.RunCheckpoint(plan.log_dir, self.models, self.state, description,
                                                    sample_latents, run_seed, chief=self.chief)
        self.settings = StepSettings(latent_size=self.architecture.latent_size,
                                     gradient_penalty_weight=plan.gradient_penalty_weight,
                                     drift_weight=plan.drift_weight, discriminator_updates=plan.discriminator_updates,
                                     generator_updates=plan.generator_updates,
                                     generator_ema_beta=plan.generator_ema_beta, jit_compile=self.jit_compile)
        self.guard = (CollapseGuard(plan, self.store.channels, self.checkpoint, self.models) if plan.collapse_guard
                      else None)
        self._cached_step = (None, None)  # (phase index, its traced step)

    def _starting_position(self):
        """(phase index, step) to continue from, as the plan's StartingPoint says."""
        start, log_dir = self.plan.start, self.plan.log_dir
        if self.latest:
            if self.guard:
                prefix, (size, kind, step) = self.guard.resume(self.latest)
            else:
                prefix, (size, kind, step) = self.latest, self.checkpoint.restore(self.latest)
                for optimizer in (self.models.generator_optimizer, self.models.discriminator_optimizer):
                    optimizer.learning_rate = self.plan.learning_rate  # the checkpoint's value must not win
            index, step_in_phase = schedule.resume_position(self.phases, self.phases[self.plan.first_phase_index].size,
                                                            size, kind, step)
            logger.info('resuming %s from %s (saved at %dx%d %s step %d)', log_dir, os.path.basename(prefix),
                        size, size, kind, step)
            return index, step_in_phase
        if start.kind == FINE_TUNE and start.original_checkpoint:
            if self.chief and os.path.isdir(start.folder):
                os.replace(start.folder, start.original_kept_at)
                logger.info('moved the original DeepZine checkpoint %s to %s (its size\'s model folder takes its place)',
                            start.folder, start.original_kept_at)
            self.checkpoint.import_original_checkpoint(start.original_kept_at)
        elif start.kind in (FINE_TUNE, GROW):
            self.checkpoint.import_model_folder(start.folder, self.architecture)
        if start.kind in (FINE_TUNE, GROW):
            logger.info('%s from the model in %s', 'fine-tuning' if start.kind == FINE_TUNE else 'growing', start.folder)
        return self.plan.first_phase_index, 0

    # --- the run -----------------------------------------------------------------------------------------

    def run(self):
        from deepzine.model.export import export_saved_model
        self._build()
        if self.chief:
            checkpoints.remove_leftovers(self.plan.log_dir)
        index, step = self._starting_position()
        self._forecast(index, step)
        self.outputs = TrainingOutputs(self.plan.log_dir, self.plan.samples_dir, self.chief)
        if index >= len(self.phases):
            logger.info('%s: every phase is already trained', self.plan.log_dir)
        elif self.guard and not self.latest:
            self.guard.save(self.phases[index])  # the starting state: trouble in the first interval can return to it
        try:
            with logging_redirect_tqdm():
                while index < len(self.phases):
                    # Rolled back once _run_phase has returned: its iterator and progress bar are freed first, and
                    # a Ctrl-C during the roll-back is not saved as a state of the phase it left.
                    alarm = self._run_phase(self.phases[index], step)
                    index, step = self.guard.roll_back(alarm, self.phases[index]) if alarm else (index + 1, 0)
        finally:
            self.outputs.close()
        path = os.path.join(self.plan.log_dir, SAVED_MODEL_FOLDER)
        if self.chief:
            export_saved_model(self.models.generator_ema, self.architecture.latent_size, path)
            logger.info('exported the final generator to %s', path)
        return path

    def _forecast(self, index, step):
        """Log what the phases left cost and take, warn when log_dir's disk is short, and keep the time estimate
        for the time left at each phase start (deepzine.training.plan_text)."""
        from deepzine.training import plan_text
        self.estimate, self._estimate_origin = None, (index, step)
        self._real_sec, self._estimated_sec, self._progress_mark = 0.0, 0.0, None
        if index >= len(self.phases):
            return
        cost, self.estimate = plan_text.forecast(self.plan, plan_text.steps_left(self.phases[index:], step),
                                                 self.jit_compile, self.strategy.num_replicas_in_sync)
        for line in plan_text.describe_forecast(self.plan, cost, self.estimate):
            logger.info(line)
        if self.chief:
            plan_text.warn_if_space_is_short(self.plan, cost)

    def _time_left(self, phase, step):
        """'; run time left: about ...' for the whole run from `phase` at `step`: the estimate, scaled by how long
        this run's phases so far took against it. Only phases that ran to their end count: after a roll-back the
        steps run are not known here, and repeated steps are no measure of speed."""
        from deepzine.training.speed import format_duration
        origin_index, origin_step = self._estimate_origin
        if self.estimate is None or phase.index < origin_index:
            return ''
        position = (phase.index - origin_index, step - origin_step if phase.index == origin_index else step)
        now = time.perf_counter()
        if self._progress_mark and position == (self._progress_mark[1][0] + 1, 0):
            marked_at, marked = self._progress_mark
            self._real_sec += now - marked_at
            self._estimated_sec += self.estimate.seconds_left(*marked) - self.estimate.seconds_left(*position)
        self._progress_mark = (now, position)
        measured = self._real_sec / self._estimated_sec if self._estimated_sec > 0 else None
        left = format_duration((measured or 1.0) * self.estimate.seconds_left(*position))
        return f'; run time left: about {left}' + (f' (this run so far at {1 / measured:.2f}x the estimated speed)'
                                                    if measured else ' (estimated)')

    def _phase_dataset_iterator(self, phase, step):
        from deepzine.data.store import page_dataset
        entropy = [int(self.checkpoint.run_seed.numpy()), phase.index, step]
        entropy += self.guard.data_order_entropy() if self.guard else []
        seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
        dataset = page_dataset(self.plan.data.path, phase.size, phase.batch_size, seed=seed)
        return iter(self.strategy.experimental_distribute_dataset(dataset))

    def _real_grid(self, phase):
        count = min(SAMPLE_GRID_IMAGES, self.store.page_count)
        indices = np.random.default_rng(int(self.checkpoint.run_seed.numpy())).choice(self.store.page_count, count,
                                                                                         replace=False)
        return self.store.read(phase.size, np.sort(indices)).astype(np.float32) / 127.5 - 1.0

    def _phase_step(self, phase):
        """The phase's traced step, kept while the phase lasts: a roll-back inside it then costs no new trace."""
        from deepzine.training.step import make_phase_step
        cached_index, cached_step = self._cached_step
        if cached_index != phase.index:
            cached_step = make_phase_step(self.strategy, self.models, self.state, self.settings, phase)
            self._cached_step = (phase.index, cached_step)
        return cached_step

    def _run_phase(self, phase, step):
        """Train `phase` from `step` to its end, or to an Alarm of the collapse guard, which it returns."""
        import tensorflow as tf
        from deepzine.data.store import raise_if_damaged
        from deepzine.training.step import reset_optimizer
        plan, state = self.plan, self.state
        if step == 0 and phase.index > 0 and plan.reset_optimizer_on_growth:
            reset_optimizer(self.models.generator_optimizer)
            reset_optimizer(self.models.discriminator_optimizer)
        if self.guard:
            self.guard.begin_phase(phase)
        state.phase_step.assign(step)
        state.take_metrics()
        train_step = self._phase_step(phase)
        iterator = self._phase_dataset_iterator(phase, step)
        real_images = self._real_grid(phase)
        logger.info('phase %d/%d: %s, %d steps of %d images%s%s', phase.index + 1, len(self.phases), phase.name,
                    phase.steps, phase.batch_size, f' (from step {step})' if step else '', self._time_left(phase, step))
        progress = tqdm(total=phase.steps, initial=step, desc=phase.name, unit='step', disable=None, dynamic_ncols=True)
        self._interval_start = (time.perf_counter(), step)
        alarm = None
        try:
            for current in range(step, phase.steps):
                train_step(iterator)
                done = current + 1
                progress.update(1)
                if current == step:  # the first call traces (seconds): keep it out of images/s
                    self._interval_start = (time.perf_counter(), done)
                if done % plan.model_loss_output_interval_steps == 0 or done == phase.steps:
                    alarm = self._log(phase, done, progress)
                if not alarm and (done % plan.model_sample_interval_steps == 0 or done == phase.steps):
                    alarm = self._sample(phase, done, real_images)
                if not alarm and done % plan.model_save_interval_steps == 0 and done < phase.steps:
                    alarm = self._save(phase)
                if not alarm and done == phase.steps:
                    alarm = self._finish_phase(phase)
                if alarm:
                    break
        except tf.errors.OpError:
            # A page file damaged past what can be skipped: one line (not saved: the step may have half run).
            progress.close()
            raise_if_damaged(self.plan.data.path)
            raise
        except KeyboardInterrupt:
            progress.close()
            step = int(self.state.phase_step.numpy())
            if self._save(phase):
                logger.warning('interrupted at %s step %d with NaN or infinite values: not saved; running the same '
                               'config again continues from %s', phase.name, step, self.checkpoint.saved.latest)
            else:
                logger.warning('interrupted: saved %s at %s step %d; run the same config again to continue',
                               self.checkpoint.saved.latest, phase.name, step)
            raise
        progress.close()
        return alarm

    def _log(self, phase, step, progress):
        """Log one loss line and write its scalars; an Alarm (collapse guard) or None."""
        metrics, steps = self.state.take_metrics()
        now = time.perf_counter()
        started, start_step = self._interval_start
        images_per_second = (step - start_step) * phase.batch_size / (now - started) if step > start_step else None
        self._interval_start = (now, step)
        alpha = float(self.state.alpha.numpy())
        alarm, health = None, None
        if self.guard:
            alarm = self.guard.observe_losses(phase, step, metrics, steps)
            health = self.guard.scalars()
        else:
            bad = [name for name, value in metrics.items() if not math.isfinite(value)]
            if bad:
                self._diverged(phase, step, bad)
        if images_per_second is not None:
            progress.set_postfix_str(f'{images_per_second:.1f} img/s', refresh=False)
        logger.info(loss_line(phase, step, metrics, alpha, images_per_second, health))
        unreadable = self.store.unreadable_page_count
        if unreadable > self._unreadable_reported:
            logger.warning('%d unreadable page(s) of %s skipped so far (each replaced by a readable one); '
                           'load_data with overwrite: true rebuilds the file', unreadable, self.plan.data.path)
            self._unreadable_reported = unreadable
        if self.chief and steps:
            self.outputs.write_scalars(int(self.state.global_step.numpy()), metrics, alpha, phase, images_per_second,
                                       health)
        return alarm

    def _diverged(self, phase, step, names):
        last = self.checkpoint.saved.latest or 'none yet'
        raise TrainingDiverged(f'training diverged at {phase.name} step {step}: {", ".join(names)} became NaN or '
                               f'infinite. Stopped without saving; the last good checkpoint is {last}. Lower '
                               f'learning_rate (now {self.plan.learning_rate}) or use mixed_precision: float32, '
                               f'then run again to continue from it')

    def _check_finite(self, phase, step):
        """An Alarm (collapse guard) when a loss since the last line or a weight is NaN or infinite; else None."""
        non_finite = [] if self.state.metrics_finite() else ['a loss since the last line']
        if not _all_finite(self.models.generator.trainable_variables + self.models.discriminator.trainable_variables):
            non_finite.append('a network weight')
        if self.guard:
            return self.guard.observe_checkpoint(phase, step, non_finite)
        if non_finite:
            self._diverged(phase, step, non_finite)
        return None

    def _sample(self, phase, step, real_images):
        """Write one sample grid; an Alarm (collapse guard) or None."""
        alpha = float(self.state.alpha.numpy()) if phase.fading else None
        fakes, reals = self.outputs.sample_pages(phase, self.models.generator_ema, self.checkpoint.sample_latents,
                                                 alpha, real_images)
        self.outputs.write_samples(phase, step, int(self.state.global_step.numpy()), fakes, reals)
        return self.guard.observe_samples(phase, step, fakes, reals) if self.guard else None

    def _save(self, phase):
        """Checkpoint the current step; an Alarm instead (collapse guard) when a value is NaN or infinite."""
        alarm = self._check_finite(phase, int(self.state.phase_step.numpy()))
        if not alarm:
            self._write_checkpoint(phase)
        return alarm

    def _write_checkpoint(self, phase):
        if self.guard:
            self.guard.save(phase)
        else:
            self.checkpoint.save(phase)

    def _finish_phase(self, phase):
        """At a phase's end: the resolution's model folder (stable phases), a checkpoint, then the optional evaluation;
        an Alarm instead (collapse guard) when a value is NaN or infinite."""
        from deepzine.model.model_folder import model_folder_path, save_model_folder
        alarm = self._check_finite(phase, phase.steps)
        if alarm:
            return alarm
        if not phase.fading and self.chief:
            models = self.models
            save_model_folder(model_folder_path(self.plan.log_dir, phase.size), self.architecture, phase.size,
                              models.generator_ema, models.generator, models.discriminator, config=self.plan.settings)
        self._write_checkpoint(phase)
        logger.info('%s done: checkpoint %s', phase.name, os.path.basename(self.checkpoint.saved.latest or ''))
        if self.plan.evaluation and self.chief:
            self._evaluate(phase)
        return None

    def _evaluate(self, phase):
        """The evaluation stage's metrics for the EMA generator at this phase's size (at alpha 1 after a fade-in)."""
        from deepzine.evaluation.evaluate import evaluate_generator
        from deepzine.model.loading import generator_of
        size, evaluation = phase.size, self.plan.evaluation
        page_generator = generator_of(self.models.generator_ema, self.architecture, size,
                                      description=f'training EMA generator at {size}')
        evaluate_generator(page_generator, self.store, size, self.plan.log_dir,
                           step=int(self.state.global_step.numpy()), image_num=evaluation.image_num,
                           seed=evaluation.seed, memorization_num=evaluation.memorization_num)
