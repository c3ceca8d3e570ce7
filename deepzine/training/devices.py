"""Choose the `tf.distribute` strategy from `gpu_num`: one device, several GPUs of one machine, or several machines.

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
"""

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


def choose_strategy(gpu_num):
    """A strategy for `gpu_num` (None, or a list of GPU indices); ConfigError for GPUs that do not exist."""
    import tensorflow as tf
    if _multi_worker_cluster() > 1:
        logger.info('TF_CONFIG names %d workers: MultiWorkerMirroredStrategy', _multi_worker_cluster())
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_physical_devices('GPU')
    if gpu_num is None:
        chosen = list(range(len(gpus)))
    elif not gpus:
        logger.warning('gpu_num=%s: no GPU is visible to TensorFlow, training on the CPU', gpu_num)
        chosen = []
    else:
        missing = [index for index in gpu_num if not isinstance(index, int) or not 0 <= index < len(gpus)]
        if missing:
            raise ConfigError(f'gpu_num={gpu_num}: TensorFlow sees {len(gpus)} GPU(s), indices 0..{len(gpus) - 1}; '
                              f'{missing} do not exist')
        chosen = list(dict.fromkeys(gpu_num))
    if len(chosen) > 1:
        return tf.distribute.MirroredStrategy([f'/gpu:{index}' for index in chosen])
    if len(chosen) == 1:
        return tf.distribute.OneDeviceStrategy(f'/gpu:{chosen[0]}')
    return tf.distribute.get_strategy()


def nvidia_gpus_present():
    """GPUs the NVIDIA driver sees (from /proc, no subprocess): a GPU TensorFlow may or may not be able to use."""
    try:
        return len(os.listdir('/proc/driver/nvidia/gpus'))
    except OSError:
        return 0


def describe_devices(strategy):
    """`the CPU (no GPU visible to TensorFlow)` or `2 GPUs (NVIDIA A100, NVIDIA A100)`: the training log says it once.

    Warns when the machine has an NVIDIA GPU that this TensorFlow cannot use
    (the CPU-only wheel, or CUDA libraries missing): otherwise training would
    silently run tens of times slower on the CPU.
    """
    import tensorflow as tf
    if not uses_gpu(strategy):
        if nvidia_gpus_present():
            logger.warning('this machine has %d NVIDIA GPU(s) but TensorFlow cannot use them, so training runs on the '
                           'CPU: install the GPU build (pip install "tensorflow[and-cuda]"; see the README, Hardware)',
                           nvidia_gpus_present())
        return 'the CPU (no GPU visible to TensorFlow)'
    names = []
    for device in tf.config.list_physical_devices('GPU'):
        details = tf.config.experimental.get_device_details(device)
        names.append(details.get('device_name', device.name))
    replicas = strategy.num_replicas_in_sync
    return f'{replicas} GPU{"s" if replicas > 1 else ""} ({", ".join(names[:replicas]) or "GPU"})'


def is_chief(strategy):
    """True on the process that writes files: always, except on workers other than 0 of a multi-machine run."""
    resolver = getattr(strategy, 'cluster_resolver', None)
    if resolver is None or not getattr(resolver, 'task_type', None):
        return True
    if resolver.task_type == 'chief':
        return True
    has_chief = 'chief' in resolver.cluster_spec().as_dict()
    return resolver.task_type == 'worker' and resolver.task_id == 0 and not has_chief


def uses_gpu(strategy):
    """Whether the step runs on GPUs (the default strategy places it on a GPU whenever one is visible)."""
    import tensorflow as tf
    try:
        devices = strategy.extended.worker_devices
    except RuntimeError:  # the default strategy has no device list
        return bool(tf.config.list_logical_devices('GPU'))
    return any('GPU' in device.upper() for device in devices)


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
