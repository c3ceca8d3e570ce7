"""What the training left to do will cost and take, worked out once when the plan is made: FLOP, memory and disk from
the shapes (deepzine.training.cost), time from a few-second measurement of this machine (deepzine.training.speed).

The dry-run prints it and training logs it when it starts (deepzine.training.plan_text formats it); the trainer
also scales the time estimate by its own progress to say the run time left at each phase start.
"""

import dataclasses
import os
import shutil

from deepzine.training import checkpoints
from deepzine.training.cost import disk_bytes, run_cost
from deepzine.training.speed import estimate_time


@dataclasses.dataclass(frozen=True)
class Forecast:
    cost: object                  # deepzine.training.cost.RunCost of the phases left
    estimate: object              # deepzine.training.speed.TimeEstimate of the same phases
    disk_needed_bytes: int        # checkpoints kept, model folders and the exported generator
    disk_free_bytes: int          # on the disk of log_dir, when the plan was made
    conditioning: object = None   # RunCost of the same networks unconditioned, to show what conditioning adds

    @property
    def disk_is_short(self):
        return self.disk_free_bytes < self.disk_needed_bytes


def free_disk_bytes(path):
    """Free bytes on the disk that holds `path` (or its nearest existing folder)."""
    folder = os.path.abspath(path)
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    return shutil.disk_usage(folder).free


def make_forecast(architecture, phases, hardware, discriminator_updates, generator_updates, save_interval_steps,
                  guarded, log_dir, xla_on_gpus=True):
    """The Forecast of training `phases` (those left: the first may be shortened by a resume) on `hardware`;
    `xla_on_gpus`: whether the GPU lines assume XLA (the jit_compile key is not false).

    Measures this machine once per process (deepzine.training.speed reuses the measurement).
    """
    cost = run_cost(architecture, phases, discriminator_updates, generator_updates, hardware.mixed_precision)
    unconditioned = None
    if architecture.conditional:
        unconditioned = run_cost(dataclasses.replace(architecture, collection_count=1), phases, discriminator_updates,
                                 generator_updates, hardware.mixed_precision)
    estimate = estimate_time(cost, jit_compile=hardware.jit_compile, devices=hardware.replicas,
                             save_interval_steps=save_interval_steps, xla_on_gpus=xla_on_gpus,
                             automatic_precision=hardware.precision_automatic)
    kept = checkpoints.CHECKPOINTS_TO_KEEP + (checkpoints.HEALTHY_CHECKPOINTS_KEPT if guarded else 0)
    model_folders = len({phase.size for phase in phases if not phase.fading})
    return Forecast(cost, estimate, disk_bytes(cost, kept, model_folders), free_disk_bytes(log_dir), unconditioned)
