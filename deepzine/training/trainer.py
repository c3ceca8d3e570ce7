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
from deepzine.training.outputs import SAMPLE_GRID_IMAGES, TrainingOutputs, loss_line
from deepzine.training.starting_point import FINE_TUNE, GROW, RESUME

logger = logging.getLogger(__name__)

SAVED_MODEL_FOLDER = 'saved_model'
QUIETED_LOGGERS = ('absl', 'tensorflow')


class TrainingDiverged(ConfigError):
    """A loss became NaN or infinite: training stops, keeping the last good checkpoint (printed as one line)."""


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

    def _starting_position(self):
        """(phase index, step) to continue from, as the plan's StartingPoint says."""
        start, log_dir = self.plan.start, self.plan.log_dir
        if self.latest:
            size, kind, step = self.checkpoint.restore(self.latest)
            for optimizer in (self.models.generator_optimizer, self.models.discriminator_optimizer):
                optimizer.learning_rate = self.plan.learning_rate  # the checkpoint's value must not win
            index, step_in_phase = schedule.resume_position(self.phases, self.phases[self.plan.first_phase_index].size,
                                                            size, kind, step)
            logger.info('resuming %s from %s (saved at %dx%d %s step %d)', log_dir, os.path.basename(self.latest),
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
        self.outputs = TrainingOutputs(self.plan.log_dir, self.plan.samples_dir, self.chief)
        if index >= len(self.phases):
            logger.info('%s: every phase is already trained', self.plan.log_dir)
        try:
            with logging_redirect_tqdm():
                for phase in self.phases[index:]:
                    self._run_phase(phase, step)
                    step = 0
        finally:
            self.outputs.close()
        path = os.path.join(self.plan.log_dir, SAVED_MODEL_FOLDER)
        if self.chief:
            export_saved_model(self.models.generator_ema, self.architecture.latent_size, path)
            logger.info('exported the final generator to %s', path)
        return path

    def _phase_dataset_iterator(self, phase, step):
        from deepzine.data.store import page_dataset
        seed = int(np.random.SeedSequence([int(self.checkpoint.run_seed.numpy()), phase.index, step]).generate_state(1)[0])
        dataset = page_dataset(self.plan.data.path, phase.size, phase.batch_size, seed=seed)
        return iter(self.strategy.experimental_distribute_dataset(dataset))

    def _real_grid(self, phase):
        count = min(SAMPLE_GRID_IMAGES, self.store.page_count)
        indices = np.random.default_rng(int(self.checkpoint.run_seed.numpy())).choice(self.store.page_count, count,
                                                                                         replace=False)
        return self.store.read(phase.size, np.sort(indices)).astype(np.float32) / 127.5 - 1.0

    def _run_phase(self, phase, step):
        import tensorflow as tf
        from deepzine.data.store import raise_if_damaged
        from deepzine.training.step import make_phase_step, reset_optimizer
        plan, state = self.plan, self.state
        if step == 0 and phase.index > 0 and plan.reset_optimizer_on_growth:
            reset_optimizer(self.models.generator_optimizer)
            reset_optimizer(self.models.discriminator_optimizer)
        state.phase_step.assign(step)
        state.take_metrics()
        train_step = make_phase_step(self.strategy, self.models, state, self.settings, phase)
        iterator = self._phase_dataset_iterator(phase, step)
        real_images = self._real_grid(phase)
        logger.info('phase %d/%d: %s, %d steps of %d images%s', phase.index + 1, len(self.phases), phase.name,
                    phase.steps, phase.batch_size, f' (from step {step})' if step else '')
        progress = tqdm(total=phase.steps, initial=step, desc=phase.name, unit='step', disable=None, dynamic_ncols=True)
        self._interval_start = (time.perf_counter(), step)
        try:
            for current in range(step, phase.steps):
                train_step(iterator)
                done = current + 1
                progress.update(1)
                if current == step:  # the first call traces (seconds): keep it out of images/s
                    self._interval_start = (time.perf_counter(), done)
                if done % plan.model_loss_output_interval_steps == 0 or done == phase.steps:
                    self._log(phase, done, progress)
                if done % plan.model_sample_interval_steps == 0 or done == phase.steps:
                    self._sample(phase, done, real_images)
                if done % plan.model_save_interval_steps == 0 and done < phase.steps:
                    self._save(phase)
            progress.close()
            self._finish_phase(phase)
        except tf.errors.OpError:
            # A page file damaged past what can be skipped: one line (not saved: the step may have half run).
            progress.close()
            raise_if_damaged(self.plan.data.path)
            raise
        except KeyboardInterrupt:
            progress.close()
            prefix = self._save(phase)
            logger.warning('interrupted: saved %s at %s step %d; run the same config again to continue', prefix,
                           phase.name, int(self.state.phase_step.numpy()))
            raise

    def _log(self, phase, step, progress):
        metrics, steps = self.state.take_metrics()
        now = time.perf_counter()
        started, start_step = self._interval_start
        images_per_second = (step - start_step) * phase.batch_size / (now - started) if step > start_step else None
        self._interval_start = (now, step)
        alpha = float(self.state.alpha.numpy())
        bad = [name for name, value in metrics.items() if not math.isfinite(value)]
        if bad:
            self._diverged(phase, step, bad)
        if images_per_second is not None:
            progress.set_postfix_str(f'{images_per_second:.1f} img/s', refresh=False)
        logger.info(loss_line(phase, step, metrics, alpha, images_per_second))
        unreadable = self.store.unreadable_page_count
        if unreadable > self._unreadable_reported:
            logger.warning('%d unreadable page(s) of %s skipped so far (each replaced by a readable one); '
                           'load_data with overwrite: true rebuilds the file', unreadable, self.plan.data.path)
            self._unreadable_reported = unreadable
        if self.chief and steps:
            self.outputs.write_scalars(int(self.state.global_step.numpy()), metrics, alpha, phase, images_per_second)

    def _diverged(self, phase, step, names):
        last = self.checkpoint.manager.latest_checkpoint or 'none yet'
        raise TrainingDiverged(f'training diverged at {phase.name} step {step}: {", ".join(names)} became NaN or '
                               f'infinite. Stopped without saving; the last good checkpoint is {last}. Lower '
                               f'learning_rate (now {self.plan.learning_rate}) or use mixed_precision: float32, '
                               f'then run again to continue from it')

    def _check_finite(self, phase, step):
        if not self.state.metrics_finite():
            self._diverged(phase, step, ['a loss'])
        if not _all_finite(self.models.generator.trainable_variables + self.models.discriminator.trainable_variables):
            self._diverged(phase, step, ['a network weight'])

    def _sample(self, phase, step, real_images):
        alpha = float(self.state.alpha.numpy()) if phase.fading else None
        self.outputs.write_samples(phase, step, int(self.state.global_step.numpy()), self.models.generator_ema,
                                   self.checkpoint.sample_latents, alpha, real_images)

    def _save(self, phase):
        self._check_finite(phase, int(self.state.phase_step.numpy()))
        return self.checkpoint.save(phase)

    def _finish_phase(self, phase):
        """At a phase's end: the resolution's model folder (stable phases), a checkpoint, then the optional evaluation."""
        from deepzine.model.model_folder import model_folder_path, save_model_folder
        self._check_finite(phase, phase.steps)
        if not phase.fading and self.chief:
            models = self.models
            save_model_folder(model_folder_path(self.plan.log_dir, phase.size), self.architecture, phase.size,
                              models.generator_ema, models.generator, models.discriminator, config=self.plan.settings)
        prefix = self.checkpoint.save(phase)
        logger.info('%s done: checkpoint %s', phase.name, os.path.basename(prefix))
        if self.plan.evaluation and self.chief:
            self._evaluate(phase)

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
