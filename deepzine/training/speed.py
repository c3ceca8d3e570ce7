"""How long a run will take: a short measurement on this machine, and estimates for common GPUs.

    estimate = estimate_time(cost, jit_compile=False, devices=1)   # the plan's Hardware gives jit_compile
    print('\\n'.join(describe_time(estimate, cost)))

`cost` is deepzine.training.cost.run_cost(...). TensorFlow is imported by
`estimate_time` only. What it measures (2-4 s on a 2-core CPU, plus importing
TensorFlow when nothing has yet), each as the median of repeated calls, so a
shared machine's current load shows:

- one layer of the run at each of its sizes (`measure_layer_gflops`): the
  FLOP rate of its convolutions in the compute dtype;
- the real training step (deepzine.training.step) of a 4x4-only copy of the
  network: its first call (trace and graph optimization) and its steady step.
  That step is nearly all fixed cost, so it gives the cost of one kernel call.

Then, per phase, with kernel calls and FLOP by size from the cost:

    step     = kernel_calls x call_sec + sum over sizes of FLOP / (layer rate x STEP_EFFICIENCY)
    start-up = host_factor x (TRACE_BASE_SEC + TRACE_PER_KERNEL_CALL_SEC x kernel_calls + PHASE_END_SEC)
               + one step more (the first runs slower) + checkpoint bytes / CHECKPOINT_BYTES_PER_SEC
    phase    = start-up + steps x step

and once per run: importing TensorFlow, this measurement (the start of
training repeats it to log the estimate), building the networks, exporting the
generator. host_factor = the measured first 4x4 call / its value on the
calibration machine, so start-ups follow the host's speed and load. Constants
fitted on a 2-vCPU AVX-512 machine against real `python wrapper.py` runs
(bench/README.md, "Time estimate").
"""

import dataclasses
import os
import sys
import time

from deepzine.model.architecture import Architecture
from deepzine.training.cost import WORKSPACE_FRACTION, checkpoint_bytes, format_bytes, generator_layers, phase_cost
from deepzine.training.devices import choose_precision
from deepzine.training.gpu_models import (CUDA_CORE_EFFICIENCY, GPU_MODELS, TENSOR_EFFICIENCY, gpu_rate_tflops,
                                          visible_gpu_memory)
from deepzine.training.schedule import Phase

PROBE_FLOP = 3e9                      # per probe call: about 10 ms on the calibration machine
PROBE_MOST_IMAGES = 4096

# Calibrated on the benchmark machine against real runs (bench/README.md, "Time estimate"). Seconds of host work
# are given for a host whose first call of the 4x4 step takes REFERENCE_FIRST_4X4_CALL_SEC (host_factor 1).
STEP_EFFICIENCY = 0.9                 # the step's convolutions against the probe layer alone
REFERENCE_FIRST_4X4_CALL_SEC = 2.0      # measured there in fresh processes: 1.4-2.7 s (bench/README.md)
TRACE_BASE_SEC = 0.5                  # per phase: step object, dataset, the first call's fixed part
TRACE_PER_KERNEL_CALL_SEC = 0.016     # per phase: tracing and graph optimization grow with the graph
PHASE_END_SEC = 0.3                   # per phase: sample grid, model folder
CHECKPOINT_BYTES_PER_SEC = 200e6
IMPORT_TENSORFLOW_SEC = 1.6           # when TensorFlow was imported before the estimate (else measured)
RUN_FIXED_SEC = 1.0                   # per run: build networks and optimizers, TensorBoard writer
EXPORT_PER_LAYER_SEC = 0.05           # per run: the SavedModel export traces the final generator
FLOOR_SHARE_TO_SAY = 0.5              # a GPU line says when the per-step floor, not the GPU, sets most of its time
XLA_TRACE_FACTOR = 2.0                # compiling with XLA took 2-3x the plain trace (bench/README.md, Training)


@dataclasses.dataclass(frozen=True)
class MachineSpeed:
    """What the short measurement found on this machine."""
    layer_gflops: tuple             # ((size, GFLOP/s), ...) of one layer of the run, compute dtype
    first_call_sec: float           # trace + first call of the 4x4 step
    step_sec: float                 # steady 4x4 step
    call_sec: float                 # fixed cost of one kernel call of the step (derived)
    import_sec: float               # importing TensorFlow: measured, or the calibrated constant x host factor
    measure_sec: float              # what this measurement took, import excluded
    on_gpu: bool = False            # the step ran on a GPU: the host's fixed costs overlap its arithmetic
    load_average: float = None      # 1-minute load average when measured (other jobs slow a shared machine)

    @property
    def host_factor(self):
        return self.first_call_sec / REFERENCE_FIRST_4X4_CALL_SEC


@dataclasses.dataclass(frozen=True)
class PhaseTime:
    name: str
    steps: int
    startup_sec: float
    step_sec: float

    @property
    def total_sec(self):
        return self.startup_sec + self.steps * self.step_sec


@dataclasses.dataclass(frozen=True)
class TimeEstimate:
    """Seconds on this machine (from a measurement) and on the GPUs of GPU_MODELS (from published rates)."""
    machine: MachineSpeed
    phases: tuple                   # PhaseTime on this machine
    run_startup_sec: float          # import, building the networks, exporting the generator
    gpu_seconds: dict               # GPU name -> seconds on `devices` of them; None: no units for the precision
    devices: int
    mixed_precision: str
    export_sec: float = 0.0         # the part of run_startup_sec that comes after the last phase
    gpu_floor_share: dict = None    # GPU name -> share of the steps' time set by the per-step floor, not arithmetic
    gpu_precisions: dict = None     # GPU name -> the precision its line assumes

    @property
    def total_sec(self):
        return self.run_startup_sec + sum(phase.total_sec for phase in self.phases)

    def seconds_left(self, phase_number, step=0):
        """Seconds from the start of phases[phase_number] at `step` to the end of the run (the export included)."""
        current = self.phases[phase_number]
        return (self.export_sec + current.startup_sec + (current.steps - step) * current.step_sec
                + sum(phase.total_sec for phase in self.phases[phase_number + 1:]))


def format_duration(seconds):
    """`45 s`, `3 min 20 s`, `1 h 12 min`, `3 d 4 h`."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f'{seconds} s'
    if seconds < 3600:
        return f'{seconds // 60} min {seconds % 60} s'
    if seconds < 48 * 3600:
        return f'{seconds // 3600} h {seconds % 3600 // 60} min'
    return f'{seconds // 86400} d {seconds % 86400 // 3600} h'


# --- measuring this machine ------------------------------------------------------------------------------

def _median_seconds(function, budget_sec=0.2, least=5, most=25):
    """Median time of repeated calls after one warm-up call: the machine's typical speed under its current load
    (a best-of would report the rare quiet moment of a shared machine)."""
    function()
    times = []
    while len(times) < least or (sum(times) < budget_sec and len(times) < most):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _probe_flop(batch, size, width):
    return 3 * 2 * batch * size * size * 9 * width * width


def measure_layer_gflops(architecture, sizes, mixed_precision='float32'):
    """{size: GFLOP/s} of one layer of the run at each size, forward and both gradients, in the compute dtype.

    The layer: 3x3 convolution [images, size, size, width] -> width + bias +
    leaky ReLU, with as many images as make PROBE_FLOP per call, so that each
    call runs long enough for its fixed cost not to count (the step's fixed
    costs are measured apart). A rate per size catches what one figure cannot:
    small channel counts run far below the peak, large maps leave the cache,
    bfloat16 units help and float16 on a CPU is slow.
    """
    import tensorflow as tf
    dtype = {'float32': tf.float32, 'mixed_float16': tf.float16, 'mixed_bfloat16': tf.bfloat16}[mixed_precision]

    @tf.function
    def layer_forward_and_gradients(images, kernel, bias):
        with tf.GradientTape() as tape:
            tape.watch([images, kernel, bias])
            outputs = tf.nn.leaky_relu(tf.nn.conv2d(images, kernel, 1, 'SAME') + bias, 0.2)
            total = tf.reduce_sum(tf.cast(outputs, tf.float32))
        gradients = tape.gradient(total, [images, kernel, bias])
        return tf.add_n([tf.reduce_sum(tf.cast(gradient, tf.float32)) for gradient in gradients])

    rates = {}
    for size in sizes:
        width = architecture.widths[size]
        count = int(min(PROBE_MOST_IMAGES, max(1, round(PROBE_FLOP / _probe_flop(1, size, width)))))
        images = tf.cast(tf.random.normal([count, size, size, width]), dtype)
        kernel = tf.cast(tf.random.normal([3, 3, width, width]), dtype)
        bias = tf.zeros([width], dtype)
        seconds = _median_seconds(lambda: layer_forward_and_gradients(images, kernel, bias).numpy())
        rates[size] = _probe_flop(count, size, width) / seconds / 1e9
    return rates


def _four_by_four(architecture):
    return Architecture(latent_size=architecture.latent_size, channels=architecture.channels, output_size=4,
                        widths={4: architecture.widths[4]}, equalized_learning_rate=architecture.equalized_learning_rate,
                        normalize_latent=architecture.normalize_latent,
                        minibatch_group_size=architecture.minibatch_group_size)


def measure_small_step(cost, jit_compile=False):
    """(first call seconds, steady step seconds) of the real training step of a 4x4-only copy of the network."""
    import tensorflow as tf

    from deepzine.training.step import StepSettings, StepState, build_training_models, make_phase_step
    architecture, batch_size = cost.architecture, cost.phases[0].batch_size
    strategy = tf.distribute.get_strategy()
    models = build_training_models(_four_by_four(architecture), strategy, 0.001, cost.mixed_precision)
    state = StepState(seed=0)
    pages = tf.zeros([batch_size, 4, 4, architecture.channels])
    batches = iter(tf.data.Dataset.from_tensors((pages, tf.zeros([batch_size], tf.int32))).repeat())
    settings = StepSettings(latent_size=architecture.latent_size, discriminator_updates=cost.discriminator_updates,
                            generator_updates=cost.generator_updates, jit_compile=bool(jit_compile))
    step = make_phase_step(strategy, models, state, settings, Phase(0, 4, 'stable', 10 ** 9, batch_size))
    start = time.perf_counter()
    step(batches)
    state.phase_step.numpy()
    first_call_sec = time.perf_counter() - start

    def five_steps():
        for _ in range(5):
            step(batches)
        state.phase_step.numpy()

    return first_call_sec, _median_seconds(five_steps, budget_sec=0.3, least=5, most=10) / 5


def _compute_sec(phase, layer_gflops):
    return sum(flop / (STEP_EFFICIENCY * layer_gflops[size] * 1e9) for size, flop in phase.flop_by_size)


_HOST_SPEED = {}    # (precision, jit_compile, updates) -> MachineSpeed of the first run measured in this process
_LAYER_GFLOPS = {}  # (size, width, precision) -> GFLOP/s


def machine_speed(cost, jit_compile=False):
    """`measure_machine`, reusing what this process has measured already.

    The dry-run and the start of training both estimate, and a process that
    trains many small models (the tests) would otherwise pay seconds each time.
    The step's fixed costs (first call, cost of a kernel call) are the host's:
    measured once per precision, XLA setting and update counts. Layer rates
    depend on the layer: measured for each new size and width.
    """
    architecture, precision = cost.architecture, cost.mixed_precision
    sizes = sorted({size for phase in cost.phases for size, _ in phase.flop_by_size} | {4})
    host_key = (precision, jit_compile, cost.discriminator_updates, cost.generator_updates)
    if host_key not in _HOST_SPEED:
        machine = measure_machine(cost, jit_compile)
        _HOST_SPEED[host_key] = machine
        _LAYER_GFLOPS.update({(size, architecture.widths[size], precision): rate for size, rate in machine.layer_gflops})
        return machine
    missing = [size for size in sizes if (size, architecture.widths[size], precision) not in _LAYER_GFLOPS]
    if missing:
        measured = measure_layer_gflops(architecture, missing, precision)
        _LAYER_GFLOPS.update({(size, architecture.widths[size], precision): rate for size, rate in measured.items()})
    rates = tuple((size, _LAYER_GFLOPS[(size, architecture.widths[size], precision)]) for size in sizes)
    return dataclasses.replace(_HOST_SPEED[host_key], layer_gflops=rates)


def measure_machine(cost, jit_compile=False):
    """The few-second measurement `estimate_time` rests on (see the module docstring).

    `jit_compile`: whether the step is compiled with XLA (the plan's Hardware decides).
    """
    start = time.perf_counter()
    imported = 'tensorflow' in sys.modules
    import tensorflow as tf  # timed: the train stage pays this once
    import_sec = None if imported else time.perf_counter() - start
    start = time.perf_counter()
    on_gpu = bool(tf.config.list_physical_devices('GPU'))
    sizes = sorted({size for phase in cost.phases for size, _ in phase.flop_by_size} | {4})
    layer_gflops = measure_layer_gflops(cost.architecture, sizes, cost.mixed_precision)
    first_call_sec, step_sec = measure_small_step(cost, jit_compile)
    small = phase_cost(_four_by_four(cost.architecture), Phase(0, 4, 'stable', 1, cost.phases[0].batch_size),
                       cost.discriminator_updates, cost.generator_updates, cost.mixed_precision)
    call_sec = max(step_sec - _compute_sec(small, layer_gflops), 0.1 * step_sec) / small.kernel_calls
    if import_sec is None:
        import_sec = IMPORT_TENSORFLOW_SEC * first_call_sec / REFERENCE_FIRST_4X4_CALL_SEC
    load_average = os.getloadavg()[0] if hasattr(os, 'getloadavg') else None
    return MachineSpeed(tuple(sorted(layer_gflops.items())), first_call_sec, step_sec, call_sec, import_sec,
                        time.perf_counter() - start, on_gpu, load_average)


# --- the estimate ----------------------------------------------------------------------------------------

def _phase_times(cost, machine, step_seconds, trace_factor, save_interval_steps):
    checkpoint_sec = checkpoint_bytes(cost) / CHECKPOINT_BYTES_PER_SEC
    times = []
    for phase in cost.phases:
        step_sec = step_seconds(phase)
        saves = 1 + ((phase.steps - 1) // save_interval_steps if save_interval_steps else 0)
        host_sec = trace_factor * (TRACE_BASE_SEC + TRACE_PER_KERNEL_CALL_SEC * phase.kernel_calls) + PHASE_END_SEC
        startup_sec = machine.host_factor * host_sec + step_sec + saves * checkpoint_sec
        times.append(PhaseTime(phase.name, phase.steps, startup_sec, step_sec))
    return tuple(times)


def _export_sec(cost, machine, trace_factor):
    architecture = cost.architecture
    export_layers = len(generator_layers(architecture, architecture.output_size, False))
    return machine.host_factor * trace_factor * EXPORT_PER_LAYER_SEC * export_layers


def _run_startup_sec(cost, machine, trace_factor):
    """Importing TensorFlow, this measurement (training repeats it when it starts), building, exporting."""
    return (machine.import_sec + machine.measure_sec + machine.host_factor * RUN_FIXED_SEC
            + _export_sec(cost, machine, trace_factor))


def estimate_time(cost, jit_compile=False, mixed_precision=None, devices=1, machine=None, save_interval_steps=None,
                  xla_on_gpus=None, automatic_precision=False):
    """Measure this machine (a few seconds) and estimate the run's time there and on GPU_MODELS.

    `jit_compile`: XLA here (the plan's Hardware decides). `xla_on_gpus`:
    whether the GPU estimates assume XLA (None: as jit_compile; the train
    stage passes whether its key would switch XLA on there). `mixed_precision`: must
    be the cost's (None: the cost's). `devices`: devices training together
    (the batch is assumed to split perfectly). `machine`: a MachineSpeed to
    reuse instead of measuring (else measured once per process and shape). `save_interval_steps`: adds the periodic
    checkpoints (the one at each phase end is always counted). `automatic_precision`: the run's precision was chosen
    for this machine (`mixed_precision: null`), so each GPU line assumes what that choice would be on that GPU (the
    FLOP stay the cost's).
    """
    if mixed_precision not in (None, cost.mixed_precision):
        raise ValueError(f'mixed_precision={mixed_precision!r}: the cost was counted for {cost.mixed_precision!r}')
    machine = machine or machine_speed(cost, jit_compile)
    rates = dict(machine.layer_gflops)

    def here(phase):  # on a CPU the host computes too: fixed costs and arithmetic add up
        fixed_sec, compute_sec = phase.kernel_calls * machine.call_sec, _compute_sec(phase, rates) / devices
        return max(fixed_sec, compute_sec) if machine.on_gpu else fixed_sec + compute_sec

    phases = _phase_times(cost, machine, here, 1.0, save_interval_steps)
    if xla_on_gpus is None:
        xla_on_gpus = jit_compile
    gpu_trace_factor = XLA_TRACE_FACTOR if xla_on_gpus else 1.0
    gpu_seconds, gpu_floor_share = {}, {}
    gpu_precisions = {gpu.name: (choose_precision([gpu.compute_capability], False, False)[0] if automatic_precision
                                 else cost.mixed_precision) for gpu in GPU_MODELS}
    for gpu in GPU_MODELS:
        tflops, _ = gpu_rate_tflops(gpu, gpu_precisions[gpu.name])
        if tflops is None:
            gpu_seconds[gpu.name] = None
            continue

        def floor_sec(phase):
            return phase.kernel_calls * machine.call_sec

        def on_gpu(phase, tflops=tflops):  # the host queues kernels while the GPU runs earlier ones: the slower wins
            return max(floor_sec(phase), phase.step_flop / devices / (tflops * 1e12))

        gpu_phases = _phase_times(cost, machine, on_gpu, gpu_trace_factor, save_interval_steps)
        gpu_seconds[gpu.name] = (_run_startup_sec(cost, machine, gpu_trace_factor)
                                 + sum(phase.total_sec for phase in gpu_phases))
        steps_sec = sum(phase.steps * on_gpu(phase) for phase in cost.phases)
        floored = sum(phase.steps * on_gpu(phase) for phase in cost.phases if on_gpu(phase) == floor_sec(phase))
        gpu_floor_share[gpu.name] = floored / steps_sec if steps_sec else 0.0
    return TimeEstimate(machine, phases, _run_startup_sec(cost, machine, 1.0), gpu_seconds, devices,
                        cost.mixed_precision, _export_sec(cost, machine, 1.0), gpu_floor_share, gpu_precisions)


# --- what to print ---------------------------------------------------------------------------------------

def memory_per_device_bytes(cost, devices):
    """The cost's memory estimate when each of `devices` devices holds 1/devices of every batch."""
    memory = cost.memory
    return int(memory.total_bytes - memory.activation_bytes * (1 - 1 / devices) * (1 + WORKSPACE_FRACTION))


def describe_time(estimate, cost, gpus=None):
    """Printable lines: `estimated time on this machine: ...`, its phases, one line per GPU model, and a warning
    when the memory estimate exceeds a GPU present. `gpus`: [(name, bytes)] instead of asking TensorFlow."""
    machine = estimate.machine
    startup = estimate.run_startup_sec + sum(phase.startup_sec for phase in estimate.phases)
    precision, largest = estimate.mixed_precision, machine.layer_gflops[-1]
    load = (f' at load {machine.load_average:.1f} on {os.cpu_count()} CPUs (other jobs slow it)'
            if machine.load_average is not None and not machine.on_gpu else '')
    lines = [f'estimated time on this machine: {format_duration(estimate.total_sec)} (start-ups '
             f'{format_duration(startup)}, steps {format_duration(estimate.total_sec - startup)}; measured in '
             f'{machine.measure_sec:.1f} s{load}: a {largest[0]}x{largest[0]} layer at {largest[1]:.0f} GFLOP/s '
             f'{precision}, 4x4 step {1000 * machine.step_sec:.1f} ms, its first call {machine.first_call_sec:.1f} s)',
             '  per phase: ' + ', '.join(f'{phase.name} {format_duration(phase.total_sec)}' for phase in estimate.phases)]
    count = f'{estimate.devices} x ' if estimate.devices > 1 else ''
    precisions = estimate.gpu_precisions
    shown = (precision if set(precisions.values()) == {precision}
             else 'each GPU at the precision mixed_precision: null picks for it')
    lines.append(f'estimated on GPUs, not measured ({shown}; published peak rates at {TENSOR_EFFICIENCY:.0%} of '
                 f'tensor cores or {CUDA_CORE_EFFICIENCY:.0%} of CUDA cores, what a PGGAN step reaches; within 2x):')
    needed = memory_per_device_bytes(cost, estimate.devices)
    for gpu in GPU_MODELS:
        seconds = estimate.gpu_seconds.get(gpu.name)
        _, basis = gpu_rate_tflops(gpu, precisions[gpu.name])
        fits = '' if needed <= gpu.memory_gib * 2 ** 30 else f'; needs {format_bytes(needed)}: does not fit'
        floor = (estimate.gpu_floor_share or {}).get(gpu.name, 0.0)
        floored = (f'; {floor:.0%} of the steps\' time is set by the per-step floor, not by this GPU: the host\'s '
                   f'{machine.call_sec * 1e6:.0f} us per kernel call measured here, times the kernels of a step '
                   f'(a larger batch per step uses the GPU better)') if floor > FLOOR_SHARE_TO_SAY else ''
        lines.append(f'  {count}{gpu.name} ({gpu.memory_gib:g} GB, {basis}): '
                     f'{format_duration(seconds) if seconds is not None else "-"}{fits}{floored}')
    for name, total in (visible_gpu_memory() if gpus is None else gpus):
        if total is not None and needed > total:
            lines.append(f'warning: the memory estimate of {format_bytes(needed)} per device exceeds the '
                         f'{format_bytes(total)} of {name}: lower batch_size (or batch_sizes at the large sizes)')
    return lines
