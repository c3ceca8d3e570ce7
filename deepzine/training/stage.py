"""The `train` stage: grow a Progressive GAN on the page HDF5, resumably, into log_dir.

    train: true
    gan_output_size: 128            # 4x4 stable, 8x8 fade, 8x8 stable, ..., 128x128 stable
    iterations_per_stage: 10000     # steps per phase (or images_per_phase: 800000, as the paper counts)

Re-running the same config on the same log_dir continues where the last run
stopped (mid-phase included). TensorFlow is imported only by run().
"""

import os

from deepzine.model.model_folder import is_model_folder, read_model_json
from deepzine.parameter_groups import DataFileParameters, DeviceParameters, ModelFileParameters, ModelParameters
from deepzine.parameters import ConfigError, Parameter, non_negative, positive, power_of_two, size_map
from deepzine.stage import Stage
from deepzine.training import checkpoints, schedule


def _below_one(value):
    if value is not None and not 0 <= value < 1:
        return 'must be at least 0 and below 1'


class TrainStage(Stage, DataFileParameters, ModelParameters, DeviceParameters, ModelFileParameters):
    toggle = 'train'

    train = Parameter(False, 'bool', 'train the progressive GAN on data_hdf5 into log_dir; re-running continues a stopped run')
    samples_dir = Parameter('./samples', 'path', 'folder for sample grids during training, one sub-folder per phase (<size> or <size>_transition)')

    # Schedule
    gan_starting_size = Parameter(4, 'int', 'first size to train; above 4 training starts from the model folder log_dir/<size/2>/ with the fade-in to this size, or, when this is gan_output_size and log_dir/<size>/ holds a model, fine-tunes that model (a converted original DeepZine one too) with this size\'s stable phase', check=power_of_two)
    iterations_per_stage = Parameter(10000, 'int', 'training steps per phase (each resolution has a fade-in and a stable phase; 4x4 only stable)', check=positive)
    images_per_phase = Parameter(None, 'int', 'real images per phase instead of iterations_per_stage (the paper: 800000); steps = this / batch size', check=positive)
    batch_size = Parameter(16, 'int', 'images per training step (summed over all GPUs) below batch_size_reduction_transition_size', check=positive)
    batch_size_reduction_transition_size = Parameter(256, 'int', 'from this image size up, train with reduced_batch_size (memory)', check=power_of_two)
    reduced_batch_size = Parameter(4, 'int', 'images per step from batch_size_reduction_transition_size up', check=positive)
    batch_sizes = Parameter(None, 'size_map', 'images per step for given sizes, e.g. {128: 16, 256: 8}; overrides the two rules above for those sizes', check=size_map)

    # Optimization
    learning_rate = Parameter(None, 'float', 'Adam step size of both networks; None: 0.001 with equalized_learning_rate (the paper), 0.0001 without (the original DeepZine)', check=positive)
    discriminator_updates = Parameter(1, 'int', 'critic updates per step, each on a new real batch', check=positive)
    generator_updates = Parameter(1, 'int', 'generator updates per step', check=positive)
    gradient_penalty_weight = Parameter(10.0, 'float', 'WGAN-GP lambda: weight of (|grad D| - 1)^2 at points between real and fake images', check=non_negative)
    drift_weight = Parameter(0.001, 'float', 'weight of D(real)^2, which keeps the critic\'s output near 0 (Karras et al. 2018)', check=non_negative)
    generator_ema_beta = Parameter(0.999, 'float', 'exponential moving average of the generator weights per step; the average makes samples, model folders and the export', check=_below_one)
    reset_optimizer_on_growth = Parameter(True, 'bool', 'zero Adam\'s moments at the start of every phase after the first, as the paper\'s code does')

    # Speed
    jit_compile = Parameter(None, 'bool', 'compile the loss and gradients with XLA; None: on with a GPU, off on a CPU (measured slower there: bench/README.md)')
    mixed_precision = Parameter('float32', 'str', 'float32, or compute in 16 bits keeping float32 weights: mixed_float16 (with loss scaling) on NVIDIA GPUs, mixed_bfloat16 on TPUs and CPUs/GPUs with bfloat16 units', choices=('float32', 'mixed_float16', 'mixed_bfloat16'))

    # Logging
    model_save_interval_steps = Parameter(1000, 'int', 'steps between checkpoints (also saved at each phase end and on Ctrl-C)', check=positive)
    model_sample_interval_steps = Parameter(400, 'int', 'steps between sample grids in samples_dir and TensorBoard', check=positive)
    model_loss_output_interval_steps = Parameter(40, 'int', 'steps between loss lines in the log and TensorBoard scalars', check=positive)

    def __init__(self, config):
        super().__init__(config)
        self.config = dict(config)  # stored in checkpoints and model folders

    def phases(self):
        return schedule.phases_from_stage(self)

    def validate(self):
        self.require_data_file(self.earlier_stages)
        if self.gan_starting_size > self.gan_output_size:
            raise ConfigError(f'gan_starting_size={self.gan_starting_size}: must not exceed gan_output_size={self.gan_output_size}')
        too_large = [size for size in (self.batch_sizes or {}) if size > self.gan_output_size]
        if too_large:
            raise ConfigError(f'batch_sizes={self.batch_sizes}: sizes {too_large} are above gan_output_size={self.gan_output_size}')
        devices = len(self.gpu_num) if self.gpu_num else 1  # None: known only at run time, checked again there
        from deepzine.training.trainer import check_replica_batches
        phases = self.phases()
        check_replica_batches(phases[self.first_phase_index(phases):], devices, self.architecture_value('minibatch_group_size'))
        checkpoints.check_same_run(checkpoints.read_run_config(self.log_dir), self.config, self.log_dir)
        has_checkpoint = os.path.exists(os.path.join(checkpoints.checkpoint_directory(self.log_dir), 'checkpoint'))
        if self.gan_starting_size > 4 and not has_checkpoint and not self.starting_model_folder():
            lower = os.path.join(self.log_dir, str(self.gan_starting_size // 2))
            raise ConfigError(f'gan_starting_size={self.gan_starting_size}: the lower sizes must be trained already, but '
                              f'{lower} holds no model and {self.log_dir} no checkpoint; start at 4')

    def fine_tuning_folder(self):
        """log_dir/<gan_output_size>/ when the run fine-tunes that finished model (its stable phase only), else None."""
        folder = os.path.join(self.log_dir, str(self.gan_output_size))
        if self.gan_starting_size == self.gan_output_size > 4 and is_model_folder(folder):
            return folder
        return None

    def architecture_value(self, key):
        """A model key as the trained networks have it: the fine-tuned model's own value, else this config's."""
        folder = self.fine_tuning_folder()
        return read_model_json(folder)['architecture'][key] if folder else getattr(self, key)

    def starting_model_folder(self):
        """The model folder a fresh run above 4x4 starts from, or None when there is none."""
        lower = os.path.join(self.log_dir, str(self.gan_starting_size // 2))
        return self.fine_tuning_folder() or (lower if is_model_folder(lower) else None)

    def first_phase_index(self, phases):
        """Where a fresh run begins: 4x4, the fade-in of gan_starting_size, or its stable phase when fine-tuning."""
        return schedule.first_phase_index(phases, self.gan_starting_size) + (1 if self.fine_tuning_folder() else 0)

    def plan(self):
        from deepzine.training.trainer import effective_learning_rate
        phases = self.phases()
        trained = phases[self.first_phase_index(phases):]
        total_images = sum(phase.images for phase in trained)
        automatic = '' if self.learning_rate is not None else ' (automatic)'
        lines = [f'train {trained[0].size}x{trained[0].size} -> {self.gan_output_size}x{self.gan_output_size} on '
                 f'{self.data_hdf5}: {len(trained)} phases, {sum(p.steps for p in trained)} steps, '
                 f'{total_images:,} real images',
                 f'WGAN-GP (lambda {self.gradient_penalty_weight}, drift {self.drift_weight}), Adam lr '
                 f'{effective_learning_rate(self)}{automatic} beta1 0 beta2 0.99, EMA {self.generator_ema_beta}; '
                 f'XLA {"auto" if self.jit_compile is None else self.jit_compile}, precision {self.mixed_precision}']
        for size in sorted({phase.size for phase in trained}):
            at_size = [phase for phase in trained if phase.size == size]
            kinds = ' + '.join(phase.kind for phase in at_size)
            lines.append(f'  {size:>4}x{size:<4} {kinds:<13} {at_size[0].steps} steps x {at_size[0].batch_size} images'
                         f'{" each" if len(at_size) > 1 else ""} = {sum(p.images for p in at_size):,} images')
        if self.fine_tuning_folder():
            lines.append(f'fine-tune the model in {self.fine_tuning_folder()} (its own architecture; the model keys '
                         f'of this config do not apply), the stable phase of {self.gan_output_size}x{self.gan_output_size} only')
        if os.path.exists(os.path.join(checkpoints.checkpoint_directory(self.log_dir), 'checkpoint')):
            lines.append(f'resume: continues from the latest checkpoint in {checkpoints.checkpoint_directory(self.log_dir)}')
        lines += [f'checkpoints every {self.model_save_interval_steps} steps and at phase ends -> '
                  f'{checkpoints.checkpoint_directory(self.log_dir)}',
                  f'model folders -> {self.log_dir}/<size>/; TensorBoard -> {self.log_dir}/tensorboard; '
                  f'final generator -> {self.log_dir}/saved_model',
                  f'samples every {self.model_sample_interval_steps} steps -> {self.samples_dir}/<size>[_transition]/; '
                  f'loss line every {self.model_loss_output_interval_steps} steps']
        return lines

    def output_directory(self):
        return self.log_dir

    def run(self):
        from deepzine.training.trainer import train
        return train(self)
