"""The training step of one phase as one `tf.function`: critic and generator updates, EMA, running loss sums.

Built once per phase (size, fade or stable, batch size are Python constants of
the trace), so a phase traces exactly once. Everything a step changes lives in
variables - weights, optimizer slots, the RNG state, the step counter inside
the phase, alpha and the loss sums - so the host never waits on a step except
when it logs, samples or saves.

Distribution: the same code runs under the default strategy (one device) and
`tf.distribute.MirroredStrategy`. Random numbers are drawn for the whole global
batch and each replica takes its slice, and every loss is averaged over the
global batch (`tf.nn.compute_average_loss`), so N devices compute exactly the
step one device would (except the minibatch-stddev groups, which are per device).
XLA (`jit_compile`) wraps only the loss and gradient computation: applying
gradients under a strategy inside XLA fails (TensorFlow 2.21: the merge call
of the optimizer cannot run in a compiled function), so XLA stays off that part.
"""

import contextlib
import dataclasses
import math

import keras
import tensorflow as tf

from deepzine.model.networks import blend_real_images, build_networks
from deepzine.training.losses import discriminator_loss_terms, generator_loss_terms

ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.0, 0.99, 1e-8  # Karras et al. 2018, section A.1
METRIC_NAMES = ('discriminator_loss', 'generator_loss', 'wasserstein', 'gradient_penalty', 'drift')


@dataclasses.dataclass
class TrainingModels:
    """The networks and optimizers of a run, all variables created inside the strategy's scope."""
    generator: keras.Model
    generator_ema: keras.Model
    discriminator: keras.Model
    generator_optimizer: keras.optimizers.Optimizer
    discriminator_optimizer: keras.optimizers.Optimizer
    loss_scaling: bool

    def set_learning_rate(self, rate):
        """Both optimizers' step size (a variable of each, which the traced steps read at every call)."""
        for optimizer in (self.generator_optimizer, self.discriminator_optimizer):
            optimizer.learning_rate = rate


@dataclasses.dataclass(frozen=True)
class StepSettings:
    latent_size: int
    gradient_penalty_weight: float = 10.0
    drift_weight: float = 0.001
    discriminator_updates: int = 1
    generator_updates: int = 1
    generator_ema_beta: float = 0.999
    jit_compile: bool = False


@contextlib.contextmanager
def dtype_policy(name):
    """Build layers under a Keras dtype policy, then restore the previous global policy (layers keep theirs)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _adam(learning_rate, loss_scaling):
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=ADAM_BETA_1, beta_2=ADAM_BETA_2, epsilon=ADAM_EPSILON)
    return keras.optimizers.LossScaleOptimizer(optimizer) if loss_scaling else optimizer


def build_training_models(architecture, strategy, learning_rate, mixed_precision='float32'):
    """Networks + Adam optimizers with their slots built inside `strategy.scope()` (lazy slots break MirroredStrategy).

    `mixed_precision`: 'float32', 'mixed_float16' (with dynamic loss scaling) or
    'mixed_bfloat16'. Variables stay float32 in every case.
    """
    loss_scaling = mixed_precision == 'mixed_float16'
    with strategy.scope(), dtype_policy(mixed_precision):
        generator, generator_ema, discriminator = build_networks(architecture)
        generator_optimizer = _adam(learning_rate, loss_scaling)
        discriminator_optimizer = _adam(learning_rate, loss_scaling)
        generator_optimizer.build(generator.trainable_variables)
        discriminator_optimizer.build(discriminator.trainable_variables)
    return TrainingModels(generator, generator_ema, discriminator, generator_optimizer, discriminator_optimizer,
                          loss_scaling)


def reset_optimizer(optimizer):
    """Zero Adam's moments and step count (its bias correction restarts), keeping the learning rate.

    Done when the trained layers change (Karras et al.'s `reset_opt_for_new_lod`):
    stale second moments would otherwise give the new layers 10x steps at first.
    """
    inner = getattr(optimizer, 'inner_optimizer', optimizer)
    for variable in inner.variables:
        if not variable.path.endswith('learning_rate'):
            variable.assign(tf.zeros_like(variable))


class StepState:
    """Variables the step updates besides the networks: RNG, position in the phase, alpha, loss sums.

    Created outside the strategy's scope (they live on the host device and are
    read and written in cross-replica context only).
    """

    def __init__(self, seed=None):
        self.rng = (tf.random.Generator.from_seed(seed) if seed is not None
                    else tf.random.Generator.from_non_deterministic_state())
        self.phase_step = tf.Variable(0, dtype=tf.int64, trainable=False, name='phase_step')
        self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name='global_step')
        self.alpha = tf.Variable(0.0, dtype=tf.float32, trainable=False, name='alpha')
        self.metric_sums = {name: tf.Variable(0.0, dtype=tf.float32, trainable=False, name=name)
                            for name in METRIC_NAMES}
        self.metric_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name='metric_steps')

    def metrics_finite(self):
        """False once any loss since the last take_metrics() was NaN or infinite (a host sync; call at intervals)."""
        return all(math.isfinite(float(total.numpy())) for total in self.metric_sums.values())

    def take_metrics(self):
        """Mean of each loss since the last call (reads the variables: the one host sync of a logging interval)."""
        steps = int(self.metric_steps.numpy())
        means = {name: float(total.numpy()) / max(steps, 1) for name, total in self.metric_sums.items()}
        for total in self.metric_sums.values():
            total.assign(0.0)
        self.metric_steps.assign(0)
        return means, steps


def _replica_slice(tensor, local_batch):
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    return tensor[replica * local_batch:(replica + 1) * local_batch]


def make_phase_step(strategy, models, state, settings, phase):
    """A `tf.function` step(iterator) for `phase` (a deepzine.training.schedule.Phase).

    `iterator` yields global batches (real images, their collection numbers)
    (a distributed iterator under a strategy). One call: `discriminator_updates`
    critic updates, each on a new real batch, then `generator_updates` generator
    updates, then the EMA update. Generated pages are made for the collections of
    the real batch they are judged against (the generator's updates take those of
    the last real batch), so each collection is drawn as often as the data gives
    it; with one collection every page's row is the same and the networks ignore it.
    """
    size, steps, global_batch = phase.size, phase.steps, phase.batch_size
    local_batch = global_batch // strategy.num_replicas_in_sync
    generator, discriminator, generator_ema = models.generator, models.discriminator, models.generator_ema
    collection_count = generator.architecture.collection_count
    ema_pairs = list(zip(generator.trainable_variables, generator_ema.trainable_variables))
    traced_variables = {}

    def average(values):
        return tf.nn.compute_average_loss(values, global_batch_size=global_batch)

    def scaled(loss, optimizer):
        """The loss the tape differentiates, times the float16 loss scale: this product must be written inside the
        tape's `with` block, or the tape never sees it and every gradient comes back None."""
        return optimizer.scale_loss(loss) if models.loss_scaling else loss

    def gradients_of(tape, target, network, key):
        """Gradients of the variables this phase uses, which are known at trace time and recorded once per trace.

        Layers of other resolutions get no gradient (None) and are left out, so
        Adam neither moves them nor decays their moments.
        """
        gradients = tape.gradient(target, network.trainable_variables)
        used = [index for index, gradient in enumerate(gradients) if gradient is not None]
        traced_variables[key] = [network.trainable_variables[index] for index in used]
        return [gradients[index] for index in used]

    def discriminator_gradients(reals, collections, latents, epsilon, alpha):
        fakes = generator(latents, collections, size=size, alpha=alpha)
        optimizer = models.discriminator_optimizer
        inner_scale = optimizer.dynamic_scale if models.loss_scaling else None
        with tf.GradientTape() as tape:
            terms = discriminator_loss_terms(discriminator, reals, fakes, collections, epsilon, size, alpha,
                                             settings.gradient_penalty_weight, settings.drift_weight, inner_scale)
            terms = {name: average(values) for name, values in terms.items()}
            target = scaled(terms['loss'], optimizer)
        return terms, gradients_of(tape, target, discriminator, 'discriminator')

    def generator_gradients(latents, collections, alpha):
        with tf.GradientTape() as tape:
            fakes = generator(latents, collections, size=size, alpha=alpha)
            loss = average(generator_loss_terms(discriminator, fakes, collections, size, alpha))
            target = scaled(loss, models.generator_optimizer)
        return loss, gradients_of(tape, target, generator, 'generator')

    if settings.jit_compile:
        discriminator_gradients = tf.function(discriminator_gradients, jit_compile=True)
        generator_gradients = tf.function(generator_gradients, jit_compile=True)

    def discriminator_replica_step(reals, collections, latents, epsilon, alpha):
        latents, epsilon = _replica_slice(latents, local_batch), _replica_slice(epsilon, local_batch)
        alpha = alpha if phase.fading else None
        if phase.fading:
            reals = blend_real_images(reals, alpha)
        terms, gradients = discriminator_gradients(reals, collections, latents, epsilon, alpha)
        models.discriminator_optimizer.apply_gradients(zip(gradients, traced_variables['discriminator']))
        return terms

    def generator_replica_step(latents, collections, alpha):
        loss, gradients = generator_gradients(_replica_slice(latents, local_batch), collections,
                                              alpha if phase.fading else None)
        models.generator_optimizer.apply_gradients(zip(gradients, traced_variables['generator']))
        return loss

    def reduce(per_replica):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    @tf.function
    def step(iterator):
        alpha = tf.constant(1.0)
        if phase.fading:
            alpha = tf.minimum(1.0, tf.cast(state.phase_step, tf.float32) / steps)
        state.alpha.assign(alpha)
        for _ in range(settings.discriminator_updates):
            latents = state.rng.normal([global_batch, settings.latent_size])
            epsilon = state.rng.uniform([global_batch])
            reals, numbers = next(iterator)
            collections = strategy.run(lambda numbers: tf.one_hot(numbers, collection_count), args=(numbers,))
            terms = strategy.run(discriminator_replica_step, args=(reals, collections, latents, epsilon, alpha))
        for _ in range(settings.generator_updates):
            latents = state.rng.normal([global_batch, settings.latent_size])
            generator_loss = strategy.run(generator_replica_step, args=(latents, collections, alpha))
        used = {id(variable) for variable in traced_variables['generator']}
        beta = settings.generator_ema_beta
        for variable, average_variable in ema_pairs:
            if id(variable) in used:
                average_variable.assign(variable + beta * (average_variable - variable))
        state.phase_step.assign_add(1)
        state.global_step.assign_add(1)
        # Running sums of the last critic and generator update of each step, for the log line and TensorBoard.
        values = {name: reduce(value) for name, value in terms.items() if name != 'loss'}
        values['discriminator_loss'] = reduce(terms['loss'])
        values['generator_loss'] = reduce(generator_loss)
        for name, value in values.items():
            state.metric_sums[name].assign_add(value)
        state.metric_steps.assign_add(1)

    return step
