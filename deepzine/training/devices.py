"""What training runs on, decided once with the plan (`resolve_hardware`): the devices from `gpu_num`, XLA, and the
precision (`mixed_precision: null` picks the fastest the hardware has); then the `tf.distribute` strategy for them.

- `gpu_num: None` uses every visible GPU (MirroredStrategy when there are
  several), or the CPU when there is none.
- `gpu_num: 0` or `[0, 2]` uses those GPUs (indices as TensorFlow lists them,
  after CUDA_VISIBLE_DEVICES).
- Several machines: MultiWorkerMirroredStrategy, switched on by `TF_CONFIG`.
  On every machine, with the same config.yaml, data_hdf5 readable by all and
  log_dir on a filesystem all of them share (a resume must find the chief's
  checkpoints everywhere):

      export TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                         "task": {"type": "worker", "index": 0}}'   # index 1 on host2
      python wrapper.py config.yaml

  `batch_size` is then the batch of all machines together (divisible by the
  number of devices); only worker 0 writes samples, TensorBoard, model folders
  and the SavedModel (the others save checkpoints into throwaway folders, as
  the strategy requires). Tried with two processes on one machine only.

TensorFlow is imported where devices are listed: the params command imports this module.
"""

import dataclasses
import json
import logging
import os

from deepzine.parameters import ConfigError

logger = logging.getLogger(__name__)


def _multi_worker_cluster():
    """The worker count named by TF_CONFIG, or 0 when TF_CONFIG does not describe a multi-machine cluster."""
    text = os.environ.get('TF_CONFIG')
    if not text:
        return 0
    try:
        cluster = json.loads(text).get('cluster', {})
    except (ValueError, AttributeError):
        raise ConfigError('TF_CONFIG: not valid JSON (expected {"cluster": {"worker": [...]}, "task": {...}})') from None
    return len(cluster.get('worker', [])) + len(cluster.get('chief', []))


def make_strategy(hardware):
    """The tf.distribute strategy for a Hardware: several machines, several GPUs, one GPU, or the default device."""
    import tensorflow as tf
    if hardware.workers > 1:
        logger.info('TF_CONFIG names %d workers: MultiWorkerMirroredStrategy', hardware.workers)
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(hardware.gpu_indices) > 1:
        return tf.distribute.MirroredStrategy([f'/gpu:{index}' for index in hardware.gpu_indices])
    if len(hardware.gpu_indices) == 1:
        return tf.distribute.OneDeviceStrategy(f'/gpu:{hardware.gpu_indices[0]}')
    return tf.distribute.get_strategy()


def nvidia_gpus_present():
    """GPUs the NVIDIA driver sees (from /proc, no subprocess): a GPU TensorFlow may or may not be able to use."""
    try:
        return len(os.listdir('/proc/driver/nvidia/gpus'))
    except OSError:
        return 0


def is_chief(strategy):
    """True on the process that writes files: always, except on workers other than 0 of a multi-machine run."""
    resolver = getattr(strategy, 'cluster_resolver', None)
    if resolver is None or not getattr(resolver, 'task_type', None):
        return True
    if resolver.task_type == 'chief':
        return True
    has_chief = 'chief' in resolver.cluster_spec().as_dict()
    return resolver.task_type == 'worker' and resolver.task_id == 0 and not has_chief


def cpu_has_bfloat16_units():
    """True when the CPU advertises bfloat16 arithmetic (avx512_bf16 or amx_bf16 in /proc/cpuinfo), None if unknown.

    Measured here (bench/README.md): with these units mixed_bfloat16 trains about
    1.8x faster than float32; without them TensorFlow emulates bfloat16 and is
    about 12x slower (measured on a 2-core AMD EPYC without them).
    """
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as handle:
            flags = next((line.split(':', 1)[1].split() for line in handle if line.startswith('flags')), None)
    except OSError:
        return None
    if flags is None:
        return None
    return 'avx512_bf16' in flags or 'amx_bf16' in flags


def onednn_enabled():
    """Whether TensorFlow runs its CPU kernels through oneDNN (on by default on x86 since TensorFlow 2.9; bfloat16 is
    fast on a CPU only through it). TF_ENABLE_ONEDNN_OPTS=0 switches it off."""
    return os.environ.get('TF_ENABLE_ONEDNN_OPTS', '1').strip().lower() not in ('0', 'false', 'off')


# Compute capability from which NVIDIA GPUs have tensor cores for bfloat16 (Ampere) and for float16 (Volta).
BFLOAT16_TENSOR_CORES = (8, 0)
FLOAT16_TENSOR_CORES = (7, 0)


def choose_precision(gpu_capabilities, bfloat16_units, onednn):
    """(mixed_precision, why) for `mixed_precision: null`: the fastest precision that trains as well as float32.

    `gpu_capabilities`: (major, minor) compute capability of each GPU used
    (empty on the CPU). bfloat16 on GPUs that have it: it runs as fast as
    float16 on tensor cores and keeps float32's exponent range, so the
    gradient penalty's second derivatives need no loss scaling. float16 with
    loss scaling on Volta and Turing; float32 on older GPUs. On a CPU,
    bfloat16 where the CPU has bfloat16 units and oneDNN uses them (measured
    about 2x float32 on the large layers, bench/README.md), float32 elsewhere
    (TensorFlow would emulate bfloat16, about 12x slower).
    """
    if gpu_capabilities:
        oldest = min(gpu_capabilities)
        version = '.'.join(map(str, oldest))
        if oldest >= BFLOAT16_TENSOR_CORES:
            return 'mixed_bfloat16', f'automatic: GPU compute capability {version} has bfloat16 tensor cores'
        if oldest >= FLOAT16_TENSOR_CORES:
            return 'mixed_float16', f'automatic: GPU compute capability {version} has float16 tensor cores, not bfloat16'
        return 'float32', f'automatic: GPU compute capability {version} has no tensor cores'
    if bfloat16_units and onednn:
        return 'mixed_bfloat16', 'automatic: this CPU has bfloat16 units (avx512_bf16 or amx_bf16)'
    if bfloat16_units:
        return 'float32', 'automatic: this CPU has bfloat16 units, but oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0)'
    return 'float32', 'automatic: this CPU has no bfloat16 units'


@dataclasses.dataclass(frozen=True)
class Hardware:
    """What training runs on, decided once before any work: the devices, XLA and the precision (with why)."""
    gpu_indices: tuple            # the GPUs of this machine that train (empty: the CPU)
    replicas: int                 # devices training together, over every machine: each takes its share of a batch
    workers: int                  # machines training together (TF_CONFIG); 1 normally
    description: str              # 'the CPU (no GPU visible to TensorFlow)', '2 GPUs (NVIDIA A100, ...)'
    jit_compile: bool
    mixed_precision: str
    precision_reason: str
    precision_automatic: bool = False  # mixed_precision: null; the GPU lines of the plan then show each GPU's choice

    @property
    def on_gpu(self):
        return bool(self.gpu_indices)


def _gpu_capability(device):
    import tensorflow as tf
    details = tf.config.experimental.get_device_details(device)
    return tuple(details.get('compute_capability') or (0, 0)), details.get('device_name', device.name)


def resolve_hardware(gpu_num, jit_compile, mixed_precision):
    """The Hardware for the keys gpu_num, jit_compile (None: on with a GPU) and mixed_precision (None: automatic).

    ConfigError for GPUs that do not exist. Several machines (TF_CONFIG) are
    assumed alike: each trains on the GPUs chosen here.
    """
    import tensorflow as tf
    gpus = tf.config.list_physical_devices('GPU')
    chosen = _chosen_gpus(gpu_num, len(gpus))
    workers = max(1, _multi_worker_cluster())
    details = [_gpu_capability(gpus[index]) for index in chosen]
    replicas = workers * max(1, len(chosen))
    if chosen:
        description = f'{len(chosen)} GPU{"s" if len(chosen) > 1 else ""} ({", ".join(name for _, name in details)})'
    else:
        if nvidia_gpus_present():
            logger.warning('this machine has %d NVIDIA GPU(s) but TensorFlow cannot use them, so training runs on the '
                           'CPU: install the GPU build (pip install "tensorflow[and-cuda]"; see the README, Hardware)',
                           nvidia_gpus_present())
        description = 'the CPU (no GPU visible to TensorFlow)' if not gpus else 'the CPU'
    if workers > 1:
        description = f'{workers} machines, each {description}'
    reason, automatic = 'set in the config', mixed_precision is None
    if automatic:
        mixed_precision, reason = choose_precision([capability for capability, _ in details],
                                                   cpu_has_bfloat16_units(), onednn_enabled())
    elif not chosen:
        advise_cpu_precision(mixed_precision, cpu_has_bfloat16_units())
    return Hardware(tuple(chosen), replicas, workers, description,
                    bool(chosen) if jit_compile is None else bool(jit_compile), mixed_precision, reason,
                    automatic)


def _chosen_gpus(gpu_num, visible):
    """Indices of the GPUs to use for `gpu_num` (None: every one) when `visible` GPUs are present."""
    if gpu_num is None:
        return list(range(visible))
    if not visible:
        logger.warning('gpu_num=%s: no GPU is visible to TensorFlow, training on the CPU', gpu_num)
        return []
    missing = [index for index in gpu_num if not isinstance(index, int) or not 0 <= index < visible]
    if missing:
        raise ConfigError(f'gpu_num={gpu_num}: TensorFlow sees {visible} GPU(s), indices 0..{visible - 1}; '
                          f'{missing} do not exist')
    return list(dict.fromkeys(gpu_num))


def advise_cpu_precision(mixed_precision, bfloat16_units):
    """One line on whether mixed_precision suits a CPU with (True), without (False) or maybe without (None) bf16 units."""
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
