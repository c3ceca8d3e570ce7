"""Common NVIDIA GPUs for the time estimate: published peak rates, memory, and what a PGGAN step gets of them.

Estimates, not measurements: deepzine.training.speed turns a run's FLOP into
time with `gpu_rate_tflops`; `visible_gpu_memory` says what the GPUs present
hold, for the memory warning.

TensorFlow is imported only to ask for the GPUs present: the params command imports this module.
"""

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class GpuModel:
    """One GPU model: memory in GiB, peak dense TFLOP/s by the units each precision uses, compute capability."""
    name: str
    memory_gib: float
    fp32_tflops: float
    tf32_tflops: float                # None: no such units
    fp16_tflops: float
    bf16_tflops: float
    compute_capability: tuple         # what `mixed_precision: null` chooses by (deepzine.training.devices)


# Published peak dense rates, TFLOP/s, no sparsity (datasheets give sparse rates too: halved here): NVIDIA
# datasheets of the T4, V100 SXM2, A10, L4, A100 SXM 80 GB and H100 SXM; for the RTX 4090 the Ada Lovelace
# architecture whitepaper (FP16/BF16 with FP32 accumulate). T4 and V100 have no TF32 or bfloat16 units.
GPU_MODELS = (
    GpuModel('T4', 16, 8.1, None, 65, None, (7, 5)),
    GpuModel('V100', 16, 15.7, None, 125, None, (7, 0)),
    GpuModel('A10', 24, 31.2, 62.5, 125, 125, (8, 6)),
    GpuModel('L4', 24, 30.3, 60, 121, 121, (8, 9)),
    GpuModel('RTX 4090', 24, 82.6, 82.6, 165.2, 165.2, (8, 9)),
    GpuModel('A100', 80, 19.5, 156, 312, 312, (8, 0)),
    GpuModel('H100', 80, 67, 494.7, 989.4, 989.4, (9, 0)),
)
# Share of the tensor-core rate a PGGAN step reaches: a PyTorch PGGAN in float32 (TF32 convolutions) on an H100
# trained 48 images/s at 256x256, 980 GFLOP per image: 47 TFLOP/s, 6-12% of the TF32 rate. Small channel counts
# at high resolutions and unfused element-wise work leave tensor cores idle; taken as 10%, for 16 bits too.
TENSOR_EFFICIENCY = 0.10
# Without tensor units for the precision (float32 on T4/V100) CUDA cores do the work: that H100 step ran at 70%
# of its CUDA-core float32 rate; taken as 50% for these smaller, older chips.
CUDA_CORE_EFFICIENCY = 0.5


def gpu_rate_tflops(gpu, mixed_precision):
    """(effective TFLOP/s, the units it rests on) of one GPU; (None, why) without units for the precision."""
    if mixed_precision == 'mixed_float16':
        return TENSOR_EFFICIENCY * gpu.fp16_tflops, 'FP16 tensor cores'
    if mixed_precision == 'mixed_bfloat16':
        if gpu.bf16_tflops is None:
            return None, 'no bfloat16 units: use mixed_float16'
        return TENSOR_EFFICIENCY * gpu.bf16_tflops, 'BF16 tensor cores'
    if gpu.tf32_tflops is None:
        return CUDA_CORE_EFFICIENCY * gpu.fp32_tflops, 'FP32 CUDA cores'
    return TENSOR_EFFICIENCY * gpu.tf32_tflops, 'TF32 tensor cores'


def memory_from_device_name(name):
    """Bytes of a GPU from its name: the size it states (`NVIDIA A100-SXM4-40GB`), else that of the model it names
    (`Tesla T4`), else None."""
    stated = re.search(r'(\d+)\s*GB', name, re.IGNORECASE)
    models = [model.memory_gib for model in GPU_MODELS if model.name.replace(' ', '') in name.replace(' ', '')]
    gib = int(stated.group(1)) if stated else (models[0] if models else None)
    return None if gib is None else int(gib * 2 ** 30)


def visible_gpu_memory():
    """[(name, bytes or None)] of the GPUs TensorFlow sees ([] without): TensorFlow reports their names, not
    their total memory."""
    import tensorflow as tf
    names = [tf.config.experimental.get_device_details(gpu).get('device_name', gpu.name)
             for gpu in tf.config.list_physical_devices('GPU')]
    return [(name, memory_from_device_name(name)) for name in names]
