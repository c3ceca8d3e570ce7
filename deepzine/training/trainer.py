"""The training loop: phases in order, checkpoints and exact resume, samples, logs, per-resolution models and export.

`train(stage)` runs a TrainStage's config to the end (or resumes it):

    log_dir/checkpoints/       ckpt-<global step>.*, run_config.yaml  (resume state)
    log_dir/<size>/            model.json + model.ckpt after each resolution's stable phase
    log_dir/tensorboard/       scalars and sample images
    log_dir/saved_model/       the final EMA generator, signature latents -> images
    samples_dir/<size>[_transition]/   sample and real grids

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
from deepzine.sizes import sizes_between
from deepzine.training import checkpoints, schedule
from deepzine.training.outputs import SAMPLE_GRID_IMAGES, TrainingOutputs, loss_line

logger = logging.getLogger(__name__)

SAVED_MODEL_FOLDER = 'saved_model'
QUIETED_LOGGERS = ('absl', 'tensorflow')


class TrainingDiverged(ConfigError):
    """A loss became NaN or infinite: training stops, keeping the last good checkpoint (printed as one line)."""


def train(stage, strategy=None):
    """Run or resume the training a TrainStage describes; `strategy` overrides the one chosen from gpu_num (tests).

    Ctrl-C and SIGTERM (turned into a KeyboardInterrupt by the CLI) save the
    current step before the process ends.
    """
    from deepzine.data.store import PageStore
    # TensorFlow logs every checkpoint write ("Sharding callback duration") and export detail at INFO level.
    quieted = {name: logging.getLogger(name).level for name in QUIETED_LOGGERS}
    for name in QUIETED_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with PageStore(stage.data_hdf5) as store:
            return Trainer(stage, store, strategy).run()
    finally:
        for name, level in quieted.items():
            logging.getLogger(name).setLevel(level)


def effective_learning_rate(stage):
    """`learning_rate`, or when unset the value suited to the weight parametrization (see the stage's help)."""
    if stage.learning_rate is not None:
        return stage.learning_rate
    return 0.001 if stage.architecture_value('equalized_learning_rate') else 0.0001


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


def _all_finite(variables):
    import tensorflow as tf
    return all(bool(tf.reduce_all(tf.math.is_finite(variable)).numpy()) for variable in variables)


class Trainer:
    """One run of one TrainStage config against one open PageStore."""

    def __init__(self, stage, store, strategy=None):
        from deepzine.model.architecture import Architecture
        from deepzine.training.devices import choose_strategy, cpu_has_bfloat16_units, is_chief, uses_gpu
        self.stage, self.store, self.config = stage, store, stage.config
        self.phases = schedule.phases_from_stage(stage)
        self.first_index = stage.first_phase_index(self.phases)
        for size in sizes_between(stage.gan_starting_size, stage.gan_output_size):
            store.require_size(size)
        self.architecture = self._fine_tuned_architecture() or Architecture.from_parameters(stage, store.channels)
        self.latest = checkpoints.latest_checkpoint(stage.log_dir)
        if self.latest:
            checkpoints.check_same_run(checkpoints.read_checkpoint_description(self.latest), self.config,
                                       stage.log_dir, store.channels)
        self.strategy = strategy or choose_strategy(stage.gpu_num)
        self.chief = is_chief(self.strategy)
        check_replica_batches(self.phases[self.first_index:], self.strategy.num_replicas_in_sync,
                              self.architecture.minibatch_group_size)
        on_gpu = uses_gpu(self.strategy)
        self.jit_compile = on_gpu if stage.jit_compile is None else stage.jit_compile
        if not on_gpu:
            self._advise_cpu_precision(stage.mixed_precision, cpu_has_bfloat16_units())

    def _fine_tuned_architecture(self):
        """The saved model's own architecture when fine-tuning one: it may be one no model key describes (legacy)."""
        from deepzine.model.model_folder import read_model_json
        from deepzine.model.architecture import Architecture
        folder = self.stage.fine_tuning_folder()
        if folder is None:
            return None
        architecture = Architecture(**read_model_json(folder)['architecture'])
        if architecture.channels != self.store.channels:
            raise ConfigError(f'{folder}: the model makes {architecture.channels}-channel pages but data_hdf5='
                              f'{self.store.path} holds {self.store.channels}-channel pages; pack the data with '
                              f'channels: {architecture.channels}')
        return architecture

    @staticmethod
    def _advise_cpu_precision(mixed_precision, bfloat16_units):
        if mixed_precision == 'mixed_bfloat16' and not bfloat16_units:
            logger.warning('mixed_precision=mixed_bfloat16 on a CPU %s bfloat16 units: about 12x slower than float32 '
                           'where they are missing; use mixed_precision: float32 unless yours has them',
                           'without' if bfloat16_units is False else 'that may lack')
        elif mixed_precision == 'mixed_float16':
            logger.warning('mixed_precision=mixed_float16 on a CPU: several times slower than float32 (it is for '
                           'NVIDIA GPUs); use float32%s', ' or mixed_bfloat16' if bfloat16_units else '')
        elif mixed_precision == 'float32' and bfloat16_units:
            logger.info('this CPU has bfloat16 units: mixed_precision: mixed_bfloat16 may train faster (1.8x on the '
                        'benchmark machine, bench/README.md)')

    # --- setup -------------------------------------------------------------------------------------------

    def _build(self):
        import keras
        from deepzine.training.step import StepSettings, StepState, build_training_models
        stage = self.stage
        run_seed = stage.random_seed if stage.random_seed is not None else secrets.randbits(62)
        keras.utils.set_random_seed(run_seed % 2 ** 32)  # the initial weights too: a seeded fresh run repeats exactly
        self.models = build_training_models(self.architecture, self.strategy, effective_learning_rate(stage),
                                            stage.mixed_precision)
        self.state = StepState(seed=run_seed)
        sample_latents = np.random.default_rng(run_seed).standard_normal(
            (SAMPLE_GRID_IMAGES, self.architecture.latent_size)).astype(np.float32)
        self.checkpoint = checkpoints.RunCheckpoint(stage.log_dir, self.models, self.state,
                                                    checkpoints.run_description(self.config, self.store.channels),
                                                    sample_latents, run_seed, chief=self.chief)
        self.settings = StepSettings(latent_size=self.architecture.latent_size,
                                     gradient_penalty_weight=stage.gradient_penalty_weight,
                                     drift_weight=stage.drift_weight, discriminator_updates=stage.discriminator_updates,
                                     generator_updates=stage.generator_updates,
                                     generator_ema_beta=stage.generator_ema_beta, jit_compile=self.jit_compile)

    def _starting_position(self):
        """(phase index, step) to continue from: the latest checkpoint, a lower resolution's model folder, or the start."""
        stage = self.stage
        if self.latest:
            size, kind, step = self.checkpoint.restore(self.latest)
            for optimizer in (self.models.generator_optimizer, self.models.discriminator_optimizer):
                optimizer.learning_rate = effective_learning_rate(stage)  # the checkpoint's value must not win
            index, step_in_phase = schedule.resume_position(self.phases, stage.gan_starting_size, size, kind, step)
            logger.info('resuming %s from %s (saved at %dx%d %s step %d)', stage.log_dir, os.path.basename(self.latest),
                        size, size, kind, step)
            return index, step_in_phase
        if stage.gan_starting_size > 4:
            folder = stage.starting_model_folder()
            if folder is None:
                lower = os.path.join(stage.log_dir, str(stage.gan_starting_size // 2))
                raise ConfigError(f'gan_starting_size={stage.gan_starting_size}: starts after the lower resolutions, '
                                  f'but {lower} holds no trained model; start at 4 or copy that model folder there')
            self.checkpoint.import_model_folder(folder, self.architecture)
            logger.info('%s %dx%d from the model in %s', 'fine-tuning at' if stage.fine_tuning_folder() else 'starting at',
                        stage.gan_starting_size, stage.gan_starting_size, folder)
        return self.first_index, 0

    # --- the run -----------------------------------------------------------------------------------------

    def run(self):
        from deepzine.model.export import export_saved_model
        self._build()
        index, step = self._starting_position()
        self.outputs = TrainingOutputs(self.stage.log_dir, self.stage.samples_dir, self.chief)
        if index >= len(self.phases):
            logger.info('%s: every phase is already trained', self.stage.log_dir)
        logger.info('training on %d device(s), XLA %s, precision %s', self.strategy.num_replicas_in_sync,
                    'on' if self.jit_compile else 'off', self.stage.mixed_precision)
        try:
            with logging_redirect_tqdm():
                for phase in self.phases[index:]:
                    self._run_phase(phase, step)
                    step = 0
        finally:
            self.outputs.close()
        path = os.path.join(self.stage.log_dir, SAVED_MODEL_FOLDER)
        if self.chief:
            export_saved_model(self.models.generator_ema, self.architecture.latent_size, path)
            logger.info('exported the final generator to %s', path)
        return path

    def _phase_dataset_iterator(self, phase, step):
        from deepzine.data.store import page_dataset
        seed = int(np.random.SeedSequence([int(self.checkpoint.run_seed.numpy()), phase.index, step]).generate_state(1)[0])
        dataset = page_dataset(self.stage.data_hdf5, phase.size, phase.batch_size, seed=seed)
        return iter(self.strategy.experimental_distribute_dataset(dataset))

    def _real_grid(self, phase):
        count = min(SAMPLE_GRID_IMAGES, self.store.page_count)
        indices = np.random.default_rng(int(self.checkpoint.run_seed.numpy())).choice(self.store.page_count, count,
                                                                                         replace=False)
        return self.store.read(phase.size, np.sort(indices)).astype(np.float32) / 127.5 - 1.0

    def _run_phase(self, phase, step):
        from deepzine.training.step import make_phase_step, reset_optimizer
        stage, state = self.stage, self.state
        if step == 0 and phase.index > 0 and stage.reset_optimizer_on_growth:
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
                if done % stage.model_loss_output_interval_steps == 0 or done == phase.steps:
                    self._log(phase, done, progress)
                if done % stage.model_sample_interval_steps == 0 or done == phase.steps:
                    self._sample(phase, done, real_images)
                if done % stage.model_save_interval_steps == 0 and done < phase.steps:
                    self._save(phase)
            progress.close()
            self._finish_phase(phase)
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
        if self.chief and steps:
            self.outputs.write_scalars(int(self.state.global_step.numpy()), metrics, alpha, phase, images_per_second)

    def _diverged(self, phase, step, names):
        last = self.checkpoint.manager.latest_checkpoint or 'none yet'
        raise TrainingDiverged(f'training diverged at {phase.name} step {step}: {", ".join(names)} became NaN or '
                               f'infinite. Stopped without saving; the last good checkpoint is {last}. Lower '
                               f'learning_rate (now {effective_learning_rate(self.stage)}) or use mixed_precision: float32, '
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
        from deepzine.model.model_folder import save_model_folder
        self._check_finite(phase, phase.steps)
        if not phase.fading and self.chief:
            models = self.models
            save_model_folder(os.path.join(self.stage.log_dir, str(phase.size)), self.architecture, phase.size,
                              models.generator_ema, models.generator, models.discriminator, config=self.config)
        prefix = self.checkpoint.save(phase)
        logger.info('%s done: checkpoint %s', phase.name, os.path.basename(prefix))
        if self.config.get('evaluate_during_training') and self.chief:
            self._evaluate(phase)

    def _evaluate(self, phase):
        """The evaluation stage's metrics for the EMA generator at this phase's size (at alpha 1 after a fade-in)."""
        import tensorflow as tf
        from deepzine.evaluation.evaluate import evaluate_generator
        from deepzine.model.loading import PageGenerator
        size, latent_size = phase.size, self.architecture.latent_size
        generate = tf.function(lambda latents: self.models.generator_ema(latents, size=size),
                               input_signature=[tf.TensorSpec([None, latent_size], tf.float32)])
        page_generator = PageGenerator(lambda latents: generate(latents).numpy(), latent_size, size,
                                       self.architecture.channels, description=f'training EMA generator at {size}')
        evaluate_generator(page_generator, self.store, size, self.stage.log_dir,
                           step=int(self.state.global_step.numpy()),
                           image_num=self.config['evaluation_image_num'], seed=self.config['evaluation_seed'],
                           memorization_num=self.config['memorization_check_num'])
