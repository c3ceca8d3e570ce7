"""The `train` stage: grow a Progressive GAN on the page HDF5, resumably, into log_dir.

    train: true
    gan_output_size: 128            # 4x4 stable, 8x8 fade, 8x8 stable, ..., 128x128 stable
    iterations_per_stage: 10000     # steps per phase (or images_per_phase: 800000, as the paper counts)

Re-running the same config on the same log_dir continues where the last run
stopped (mid-phase included). `validate` works out the whole run once - the
page file it reads, the architecture, the phases, where it starts, the
devices and precision, the learning rate, what it will cost and take - into a
`TrainPlan`; the trainer reads nothing else. Finding the devices and timing
this machine import TensorFlow in `validate` (a few seconds, once per process).
"""

import dataclasses

from deepzine.data.store import read_page_file_facts
from deepzine.model.architecture import Architecture
from deepzine.parameter_groups import (DataFileParameters, DeviceParameters, EvaluationParameters, LogDirParameters,
                                       ModelParameters, PretrainedModelParameters, SeedParameters)
from deepzine.parameters import ConfigError, Parameter, non_negative, positive, power_of_two, size_map
from deepzine.sizes import sizes_between
from deepzine.stage import Stage
from deepzine.training import schedule
from deepzine.training.devices import resolve_hardware
from deepzine.training.forecast import make_forecast
from deepzine.training.plan_text import describe_train_plan
from deepzine.training.starting_point import find_starting_point


def _below_one(value):
    if value is not None and not 0 <= value < 1:
        return 'must be at least 0 and below 1'


def _fraction(value):
    if value is not None and not 0 < value <= 1:
        return 'must be above 0 and at most 1'


@dataclasses.dataclass(frozen=True)
class EvaluationSettings:
    image_num: int
    memorization_num: int
    seed: int


@dataclasses.dataclass(frozen=True)
class TrainPlan:
    """Everything a training run needs, worked out once from the keys and the files already on disk; the trainer
    reads nothing else."""
    data: object                  # deepzine.data.store.PageFileFacts of the pages read (and their collections)
    collection_balance: bool      # draw each collection equally often (else in proportion to its pages)
    log_dir: str
    samples_dir: str
    architecture: Architecture    # the networks trained (a resumed or fine-tuned run's own)
    phases: tuple                 # every phase 4x4 .. gan_output_size (schedule.Phase)
    start: object                 # deepzine.training.starting_point.StartingPoint: where this run continues
    hardware: object              # deepzine.training.devices.Hardware: devices, XLA, precision
    learning_rate: float
    learning_rate_automatic: bool
    automatic_learning_rate: float  # what learning_rate: null gives; the collapse guard falls back to it
    gradient_penalty_weight: float
    drift_weight: float
    discriminator_updates: int
    generator_updates: int
    generator_ema_beta: float
    reset_optimizer_on_growth: bool
    collapse_guard: bool          # roll back to the newest healthy checkpoint on an alarm (deepzine.training.guard)
    collapse_retries: int
    collapse_learning_rate_factor: float
    random_seed: object
    model_save_interval_steps: int
    model_sample_interval_steps: int
    model_loss_output_interval_steps: int
    evaluation: object            # EvaluationSettings, or None
    forecast: object              # deepzine.training.forecast.Forecast of the phases left, or None when none are
    recorded_config: dict         # the stage's keys: written into checkpoints and model folders, never read back

    @property
    def first_phase_index(self):
        """Where a run without a checkpoint begins."""
        return self.start.first_phase_index

    @property
    def trained_phases(self):
        """The phases a run without a checkpoint trains."""
        return self.phases[self.first_phase_index:]

    @property
    def phases_left(self):
        """The phases this run trains, from where it starts (the first shortened by the steps already trained)."""
        return schedule.phases_from(self.phases, self.start.phase_index, self.start.step)

    @property
    def model_collections(self):
        """The collections the trained models are conditioned on (() when they are not), for stages that sample."""
        return tuple(self.data.collections) if self.architecture.conditional else ()

    @property
    def model_directory(self):
        """Where the model of each size goes (<log_dir>/<size>/), for stages that sample after training."""
        return self.log_dir

    def position_of(self, size, kind, step):
        """(phase index, step) where training continues from a checkpoint saved at this position."""
        return schedule.resume_position(self.phases, self.phases[self.first_phase_index].size, size, kind, step)


class TrainStage(Stage, DataFileParameters, ModelParameters, DeviceParameters, LogDirParameters,
                 PretrainedModelParameters, EvaluationParameters, SeedParameters):
    toggle = 'train'
    summary = 'progressive growing 4x4 -> gan_output_size'

    train = Parameter(False, 'bool', 'train the progressive GAN on data_hdf5 into log_dir; re-running continues a stopped run')
    samples_dir = Parameter('./samples', 'path', 'folder for sample grids during training, one sub-folder per phase (samples_<size>, or samples_<size>_Transition during a fade-in, as the original named them)')

    # Schedule
    gan_starting_size = Parameter(4, 'int', 'first size to train; above 4 training starts from the model folder log_dir/<size/2>/ with the fade-in to this size, or, when this is gan_output_size and log_dir/<size>/ holds a model, fine-tunes that model (an original DeepZine one too) with this size\'s stable phase', check=power_of_two)
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
    generator_ema_beta = Parameter(0.999, 'float', 'exponential moving average of the generator weights per step; the average makes samples, model folders and the export (0: none, as the original)', check=_below_one)
    reset_optimizer_on_growth = Parameter(True, 'bool', 'zero Adam\'s moments at the start of every phase after the first, as the paper\'s code does')

    # Several collections in one model
    conditional = Parameter(None, 'bool', 'condition the networks on the collection each page came from, so pages can be asked for by collection; None: whenever data_hdf5 holds more than one collection')
    collection_balance = Parameter(False, 'bool', 'draw each collection equally often in training; false: in proportion to its pages')

    # Training that heals itself
    collapse_guard = Parameter(True, 'bool', 'watch losses, samples and weights; on divergence, NaN or collapsed samples roll back to the newest healthy checkpoint with a lower learning rate (false: a NaN stops training)')
    collapse_retries = Parameter(4, 'int', 'roll-backs allowed in one phase before training stops at the newest healthy checkpoint (0: stop at the first alarm)', check=non_negative)
    collapse_learning_rate_factor = Parameter(0.25, 'float', 'each roll-back multiplies the learning rate of both networks by this, and leaves it at most the automatic rate (a configured rate above it falls back to it at once); the lowered rate carries into the next phases and recovers one factor (up to the configured rate, or the automatic one if lower) as each stable phase begins after a fade-in that needed no roll-back', check=_fraction)

    evaluate_during_training = Parameter(False, 'bool', 'also evaluate (same counts and seed) the generator at the end of every training phase, into log_dir/metrics')

    # Speed
    jit_compile = Parameter(None, 'bool', 'compile the loss and gradients with XLA; None: on with a GPU, off on a CPU (measured slower there: bench/README.md)')
    mixed_precision = Parameter(None, 'str', 'compute in 16 bits keeping float32 weights, or not: None picks the fastest the hardware has (mixed_bfloat16 on CPUs with bfloat16 units and on GPUs from compute capability 8.0, mixed_float16 with loss scaling on 7.x, else float32; the plan says which and why)', choices=('float32', 'mixed_float16', 'mixed_bfloat16'))

    # Logging
    model_save_interval_steps = Parameter(1000, 'int', 'steps between checkpoints (also saved at each phase end and on Ctrl-C)', check=positive)
    model_sample_interval_steps = Parameter(400, 'int', 'steps between sample grids in samples_dir and TensorBoard', check=positive)
    model_loss_output_interval_steps = Parameter(40, 'int', 'steps between loss lines in the log and TensorBoard scalars', check=positive)

    def validate(self, earlier):
        data = self._page_file(earlier)
        if self.gan_starting_size > self.gan_output_size:
            raise ConfigError(f'gan_starting_size={self.gan_starting_size}: must not exceed gan_output_size={self.gan_output_size}')
        too_large = [size for size in (self.batch_sizes or {}) if size > self.gan_output_size]
        if too_large:
            raise ConfigError(f'batch_sizes={self.batch_sizes}: sizes {too_large} are above gan_output_size={self.gan_output_size}')
        for size in sizes_between(self.gan_starting_size, self.gan_output_size):
            data.require_size(size, 'train')
        if self.evaluate_during_training:
            self.check_evaluation_counts()
        settings = self.settings()
        configured = Architecture.from_keys(
            data.channels, self.gan_output_size, self.latent_size, self.max_filter, self.min_filter,
            self.filter_num_reduction_transition_size, self.equalized_learning_rate, self.minibatch_group_size,
            original=self.pretrained_model, collection_count=self._collection_count(data))
        phases = tuple(schedule.build_phases(self.gan_output_size, self.iterations_per_stage, self.batch_size,
                                             self.batch_size_reduction_transition_size, self.reduced_batch_size,
                                             self.batch_sizes, self.images_per_phase))
        start, architecture = find_starting_point(
            self.log_dir, phases, self.gan_starting_size, configured, data, self.pretrained_model, settings,
            guard=(data.channels, self.gradient_penalty_weight) if self.collapse_guard else None,
            conditional=self.conditional)
        if self.conditional and not architecture.conditional:
            raise ConfigError(f'conditional=true: {start.describe(phases)} keeps the networks of that model, which '
                              f'are unconditional; leave conditional unset to train it on every collection together')
        hardware = resolve_hardware(self.gpu_num, self.jit_compile, self.mixed_precision)
        left = schedule.phases_from(phases, start.phase_index, start.step)
        schedule.check_replica_batches(left, hardware.replicas, architecture.minibatch_group_size)
        automatic = self.learning_rate is None
        automatic_learning_rate = 0.001 if architecture.equalized_learning_rate else 0.0001
        learning_rate = automatic_learning_rate if automatic else self.learning_rate
        forecast = None
        if left:
            forecast = make_forecast(architecture, left, hardware, self.discriminator_updates, self.generator_updates,
                                     self.model_save_interval_steps, self.collapse_guard, self.log_dir,
                                     xla_on_gpus=self.jit_compile is not False)
        return TrainPlan(
            data=data, collection_balance=self.collection_balance, log_dir=self.log_dir, samples_dir=self.samples_dir, architecture=architecture, phases=phases,
            start=start, hardware=hardware, learning_rate=learning_rate, learning_rate_automatic=automatic,
            automatic_learning_rate=automatic_learning_rate,
            gradient_penalty_weight=self.gradient_penalty_weight, drift_weight=self.drift_weight,
            discriminator_updates=self.discriminator_updates, generator_updates=self.generator_updates,
            generator_ema_beta=self.generator_ema_beta, reset_optimizer_on_growth=self.reset_optimizer_on_growth,
            collapse_guard=self.collapse_guard, collapse_retries=self.collapse_retries,
            collapse_learning_rate_factor=self.collapse_learning_rate_factor,
            random_seed=self.random_seed, model_save_interval_steps=self.model_save_interval_steps,
            model_sample_interval_steps=self.model_sample_interval_steps,
            model_loss_output_interval_steps=self.model_loss_output_interval_steps,
            evaluation=(EvaluationSettings(self.evaluation_image_num, self.memorization_check_num, self.evaluation_seed)
                        if self.evaluate_during_training else None),
            forecast=forecast, recorded_config=settings)

    def _collection_count(self, data):
        """Collections the configured networks are conditioned on: 1 (none) unless `conditional` says otherwise or
        the page file holds several."""
        count = len(data.collections)
        if self.conditional and count < 2:
            raise ConfigError(f'conditional=true: data_hdf5={data.path} holds one collection '
                              f'({data.collections[0]}); a conditional model needs at least two')
        if self.collection_balance and count < 2:
            raise ConfigError(f'collection_balance=true: data_hdf5={data.path} holds one collection '
                              f'({data.collections[0]}): there is nothing to balance')
        return count if self.conditional is not False and count > 1 else 1

    def _page_file(self, earlier):
        """What the pages to train on look like: from the load_data stage of this run, or from the file on disk."""
        loading = earlier.get('load_data')
        if loading is not None and loading.page_file.path == self.data_hdf5:
            return loading.page_file
        return read_page_file_facts(self.data_hdf5)

    def describe(self, plan):
        return describe_train_plan(plan)

    def output_directory(self, plan):
        return self.log_dir

    def run(self, plan):
        from deepzine.training.trainer import train
        return train(plan)
