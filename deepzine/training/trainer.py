"""The training loop: phases in order, samples, logs, per-resolution models and the export.

`train(plan)` runs a TrainPlan (deepzine.training.stage) to the end, or continues it:

    log_dir/checkpoints/       ckpt-<global step>.*, run_config.yaml  (resume state)
    log_dir/<size>/            model.json + model.ckpt after each resolution's stable phase
    log_dir/tensorboard/       scalars and sample images
    log_dir/saved_model/       the final EMA generator, signature latents -> images
    samples_dir/samples_<size>[_Transition]/   sample and real grids

The loop reads only the plan. Beside it, parts with one job each: the
checkpoint keeper (deepzine.training.keeper) saves and restores, the guard
(deepzine.training.guard) judges every loss line, sample grid and checkpoint
and rolls the run back on an alarm (or, switched off, stops on a NaN), the
outputs (deepzine.training.outputs) write samples and TensorBoard. The
learning rate is set in one place, `_set_learning_rate`.

The host only feeds the step; it reads values back (one sync) at the loss,
sample and save intervals. Data order after a resume is a fresh, seeded
shuffle (seeded by the run, phase and step), not the exact order the killed
run would have used: the model state, RNG and position are exact.
"""

import logging
import os
import secrets
import time

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from deepzine.data.store import PageStore, page_dataset, raise_if_damaged
from deepzine.errors import RunFailed
from deepzine.evaluation.evaluate import evaluate_generator
from deepzine.model.export import export_saved_model
from deepzine.model.loading import generator_of
from deepzine.model.model_folder import model_folder_path, save_model_folder
from deepzine.test_hooks import pause_at
from deepzine.training import checkpoints
from deepzine.training.devices import is_chief, make_strategy
from deepzine.training.guard import guard_for
from deepzine.training.keeper import CheckpointKeeper
from deepzine.training.outputs import TrainingOutputs, loss_line, sample_collections, sample_grid_layout
from deepzine.training.plan_text import describe_train_plan, disk_warning
from deepzine.training.starting_point import RESUME, load_starting_networks
from deepzine.training.step import StepSettings, StepState, build_training_models, make_phase_step, reset_optimizer
from deepzine.training.time_left import TimeLeft

logger = logging.getLogger(__name__)

SAVED_MODEL_FOLDER = 'saved_model'
QUIETED_LOGGERS = ('absl', 'tensorflow')


def train(plan):
    """Run or resume the training a TrainPlan describes.

    Ctrl-C and SIGTERM (turned into a KeyboardInterrupt by the CLI) save the
    current step before the process ends.
    """
    # TensorFlow logs every checkpoint write ("Sharding callback duration") and export detail at INFO level.
    quieted = {name: logging.getLogger(name).level for name in QUIETED_LOGGERS}
    for name in QUIETED_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with PageStore(plan.data.path) as store:
            return Trainer(plan, store).run()
    finally:
        for name, level in quieted.items():
            logging.getLogger(name).setLevel(level)


def _all_finite(variables):
    return all(bool(tf.reduce_all(tf.math.is_finite(variable)).numpy()) for variable in variables)


class Trainer:
    """One run of one TrainPlan against one open PageStore."""

    def __init__(self, plan, store):
        self.plan, self.store = plan, store
        self.phases, self.architecture = plan.phases, plan.architecture
        self.strategy = make_strategy(plan.hardware)
        if self.strategy.num_replicas_in_sync != plan.hardware.replicas:
            raise RunFailed(f'{plan.hardware.description}: TensorFlow gives {self.strategy.num_replicas_in_sync} '
                            f'devices, {plan.hardware.replicas} were planned; give every machine the same GPUs')
        self.chief = is_chief(self.strategy)
        run_seed = plan.random_seed if plan.random_seed is not None else secrets.randbits(62)
        keras.utils.set_random_seed(run_seed % 2 ** 32)  # the initial weights too: a seeded fresh run repeats exactly
        self.models = build_training_models(self.architecture, self.strategy, plan.learning_rate,
                                            plan.hardware.mixed_precision)
        self.state = StepState(seed=run_seed)
        self.sample_columns = sample_grid_layout(self.architecture.collection_count)[1]
        sample_latents = np.random.default_rng(run_seed).standard_normal(
            (len(sample_collections(self.architecture.collection_count)), self.architecture.latent_size)
        ).astype(np.float32)
        description = checkpoints.run_description(plan.recorded_config, plan.data.channels, self.architecture,
                                                  plan.data.collections)
        self.keeper = CheckpointKeeper(plan.log_dir, self.models, self.state, description, sample_latents, run_seed,
                                       chief=self.chief)
        self.guard = guard_for(plan, self.keeper)
        self.settings = StepSettings(latent_size=self.architecture.latent_size,
                                     gradient_penalty_weight=plan.gradient_penalty_weight,
                                     drift_weight=plan.drift_weight, discriminator_updates=plan.discriminator_updates,
                                     generator_updates=plan.generator_updates,
                                     generator_ema_beta=plan.generator_ema_beta,
                                     jit_compile=plan.hardware.jit_compile)
        self._cached_step = (None, None)  # (phase index, its traced step)
        self._unreadable_reported = 0

    # --- the run -----------------------------------------------------------------------------------------

    def run(self):
        plan, start = self.plan, self.plan.start
        for line in describe_train_plan(plan):
            logger.info(line)
        warning = disk_warning(plan.forecast, plan.log_dir) if self.chief else None
        if warning:
            logger.warning(warning)
        if self.chief:
            checkpoints.remove_leftovers(plan.log_dir)
        self._begin()
        index, step = start.phase_index, start.step
        self.time_left = TimeLeft(plan.forecast and plan.forecast.estimate, (index, step))
        self.outputs = TrainingOutputs(plan.log_dir, plan.samples_dir, self.chief)
        if index >= len(self.phases):
            logger.info('%s: every phase is already trained', plan.log_dir)
        elif start.kind != RESUME:
            self._write_checkpoint(self.phases[index])  # the starting state: trouble in the first interval returns here
        try:
            with logging_redirect_tqdm():
                while index < len(self.phases):
                    # Rolled back once _run_phase has returned: its iterator and progress bar are freed first, and
                    # a Ctrl-C during the roll-back is not saved as a state of the phase it left.
                    alarm = self._run_phase(self.phases[index], step)
                    index, step = self.guard.roll_back(alarm, self.phases[index]) if alarm else (index + 1, 0)
        finally:
            self.outputs.close()
        path = os.path.join(plan.log_dir, SAVED_MODEL_FOLDER)
        if self.chief:
            export_saved_model(self.models.generator_ema, self.architecture.latent_size, path,
                               plan.data.collections if self.architecture.conditional else ())
            logger.info('exported the final generator to %s', path)
        return path

    def _begin(self):
        """Put the plan's starting state into the networks: its checkpoint (with the guard's state and healthy
        checkpoints), or the model to grow or fine-tune."""
        start = self.plan.start
        if start.kind == RESUME:
            self.keeper.resume(start.checkpoint)
            self.guard.continue_from(start.guard_state)
            if start.note:
                logger.warning(start.note)
            where = (f'{self.phases[start.phase_index].name} step {start.step}' if start.phase_index < len(self.phases)
                     else 'the end')
            logger.info('resuming %s from %s at %s', self.plan.log_dir, os.path.basename(start.checkpoint), where)
        else:
            load_starting_networks(start, self.models, self.architecture, self.chief)
        self._set_learning_rate()

    def _set_learning_rate(self):
        """The one place the learning rate is set: the configured rate, times the guard's factor after roll-backs.
        A restored checkpoint's own value must never win."""
        self.models.set_learning_rate(self.plan.learning_rate * self.guard.learning_rate_factor)

    def _phase_dataset_iterator(self, phase, step):
        entropy = [int(self.keeper.run_seed.numpy()), phase.index, step] + self.guard.data_order_entropy()
        seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
        dataset = page_dataset(self.plan.data.path, phase.size, phase.batch_size, seed=seed,
                               collection_balance=self.plan.collection_balance)
        return iter(self.strategy.experimental_distribute_dataset(dataset))

    def _real_grid(self, phase):
        """Real pages beside the samples, drawn the same on every call: for a conditional run, each row from its
        collection; otherwise from all pages."""
        random = np.random.default_rng(int(self.keeper.run_seed.numpy()))
        rows = sample_collections(self.architecture.collection_count)
        numbers = self.store.collection_numbers if self.architecture.conditional else np.zeros(self.store.page_count)
        indices = []
        for collection in np.unique(rows):
            pages = np.flatnonzero(numbers == collection)
            wanted = int(np.sum(rows == collection))
            indices += list(random.choice(pages, min(wanted, len(pages)), replace=False))
        return self.store.read(phase.size, indices).astype(np.float32) / 127.5 - 1.0

    def _phase_step(self, phase):
        """The phase's traced step, kept while the phase lasts: a roll-back inside it then costs no new trace."""
        cached_index, cached_step = self._cached_step
        if cached_index != phase.index:
            cached_step = make_phase_step(self.strategy, self.models, self.state, self.settings, phase)
            self._cached_step = (phase.index, cached_step)
        return cached_step

    def _run_phase(self, phase, step):
        """Train `phase` from `step` to its end, or to an Alarm of the collapse guard, which it returns."""
        plan, state = self.plan, self.state
        if step == 0 and phase.index > 0 and plan.reset_optimizer_on_growth:
            reset_optimizer(self.models.generator_optimizer)
            reset_optimizer(self.models.discriminator_optimizer)
        self.guard.begin_phase(phase)
        self._set_learning_rate()
        state.phase_step.assign(step)
        state.take_metrics()
        train_step = self._phase_step(phase)
        iterator = self._phase_dataset_iterator(phase, step)
        real_images = self._real_grid(phase)
        logger.info('phase %d/%d: %s, %d steps of %d images%s%s', phase.index + 1, len(self.phases), phase.name,
                    phase.steps, phase.batch_size, f' (from step {step})' if step else '',
                    self.time_left.text(phase.index, step))
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
                pause_at(f'{phase.name} step {done}')
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
                               'config again continues from %s', phase.name, step, self.keeper.latest)
            else:
                logger.warning('interrupted: saved %s at %s step %d; run the same config again to continue',
                               self.keeper.latest, phase.name, step)
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
        alarm = self.guard.observe_losses(phase, step, metrics, steps)
        health = self.guard.scalars()
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

    def _check_finite(self, phase, step):
        """An Alarm (collapse guard) when a loss since the last line or a weight is NaN or infinite; else None."""
        non_finite = [] if self.state.metrics_finite() else ['a loss since the last line']
        if not _all_finite(self.models.generator.trainable_variables + self.models.discriminator.trainable_variables):
            non_finite.append('a network weight')
        return self.guard.observe_checkpoint(phase, step, non_finite)

    def _sample(self, phase, step, real_images):
        """Write one sample grid; an Alarm (collapse guard) or None."""
        alpha = float(self.state.alpha.numpy()) if phase.fading else None
        fakes, reals = self.outputs.sample_pages(phase, self.models.generator_ema, self.keeper.sample_latents,
                                                 alpha, real_images)
        self.outputs.write_samples(phase, step, int(self.state.global_step.numpy()), fakes, reals, self.sample_columns)
        return self.guard.observe_samples(phase, step, fakes, reals)

    def _save(self, phase):
        """Checkpoint the current step; an Alarm instead (collapse guard) when a value is NaN or infinite."""
        alarm = self._check_finite(phase, int(self.state.phase_step.numpy()))
        if not alarm:
            self._write_checkpoint(phase)
        return alarm

    def _write_checkpoint(self, phase):
        self.keeper.save(phase, healthy=self.guard.is_healthy(), guard_state=self.guard.saved_state())

    def _finish_phase(self, phase):
        """At a phase's end: the resolution's model folder (stable phases), a checkpoint, then the optional evaluation;
        an Alarm instead (collapse guard) when a value is NaN or infinite."""
        alarm = self._check_finite(phase, phase.steps)
        if alarm:
            return alarm
        if not phase.fading and self.chief:
            models = self.models
            save_model_folder(model_folder_path(self.plan.log_dir, phase.size), self.architecture, phase.size,
                              models.generator_ema, models.generator, models.discriminator,
                              config=self.plan.recorded_config, collections=self.plan.data.collections)
        self._write_checkpoint(phase)
        logger.info('%s done: checkpoint %s', phase.name, os.path.basename(self.keeper.latest or ''))
        if self.plan.evaluation and self.chief:
            self._evaluate(phase)
        return None

    def _evaluate(self, phase):
        """The evaluation stage's metrics for the EMA generator at this phase's size (at alpha 1 after a fade-in)."""
        size, evaluation = phase.size, self.plan.evaluation
        page_generator = generator_of(self.models.generator_ema, self.architecture, size,
                                      description=f'training EMA generator at {size}',
                                      collection_names=self.plan.data.collections)
        evaluate_generator(page_generator, self.store, size, self.plan.log_dir,
                           step=int(self.state.global_step.numpy()), image_num=evaluation.image_num,
                           seed=evaluation.seed, memorization_num=evaluation.memorization_num)
