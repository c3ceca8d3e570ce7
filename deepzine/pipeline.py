"""The stage order, and the run: resolve the config, check every enabled stage, then run them in order.

Each stage reads only files an earlier stage (or an earlier run) wrote, so any
stage can be re-run alone by switching the others off.
"""

import contextlib
import logging
import os

import yaml

from deepzine.files import write_yaml
from deepzine.parameters import ConfigError, registry, resolve

log = logging.getLogger(__name__)

# Keys the original DeepZine accepted that no longer mean anything: accepted with a warning, so old configs run.
RETIRED_KEYS = {
    'preload_resized_data': 'pages are always streamed from the HDF5',
    'starting_depth': 'use gan_starting_size',
    'progressive_depth': 'use gan_output_size',
    'batch_size_reduction_transition_depth': 'use batch_size_reduction_transition_size',
    'filter_num_reduction_transition_depth': 'use filter_num_reduction_transition_size',
}


def stage_classes():
    """The stages in the order they run. Imported here, not at module level, to keep the CLI light."""
    from deepzine.data.stage import LoadDataStage
    from deepzine.evaluation.stage import EvaluateStage
    from deepzine.sampling.inference import InferenceStage
    from deepzine.sampling.interpolation import InterpolationStage
    from deepzine.training.stage import TrainStage
    return [LoadDataStage, TrainStage, InferenceStage, InterpolationStage, EvaluateStage]


def parameter_table(classes=None):
    return registry(classes or stage_classes())


def drop_retired_keys(raw):
    raw = dict(raw or {})
    for key in [key for key in raw if key in RETIRED_KEYS]:
        log.warning('config key %s is retired and ignored: %s', key, RETIRED_KEYS[key])
        del raw[key]
    return raw


def prepare(raw, classes=None):
    """YAML mapping -> (resolved config, enabled stage objects), every check done, nothing written."""
    classes = classes or stage_classes()
    config = resolve(drop_retired_keys(raw), registry(classes))
    stages = [stage_class(config) for stage_class in classes if config[stage_class.toggle]]
    if not stages:
        toggles = ', '.join(stage_class.toggle for stage_class in classes)
        raise ConfigError(f'no stage is switched on: set at least one of {toggles} to true')
    for index, stage in enumerate(stages):
        stage.earlier_stages = tuple(earlier.toggle for earlier in stages[:index])
        stage.validate()
    return config, stages


def describe_plan(config, stages):
    lines = ['Resolved config:']
    lines += ['  ' + line for line in yaml.safe_dump(config, sort_keys=False).splitlines()]
    lines.append('Plan:')
    for number, stage in enumerate(stages, 1):
        lines.append(f'  {number}. {stage.toggle}')
        lines += ['     ' + line for line in stage.plan()]
        if stage.output_directory():
            lines.append(f'     resolved config -> {os.path.join(stage.output_directory(), "config.yaml")}')
    return '\n'.join(lines)


def write_resolved_config(config, folder):
    """Save the config a stage ran with as folder/config.yaml (temp file + rename), for later runs to reload."""
    write_yaml(os.path.join(folder, 'config.yaml'), config)


@contextlib.contextmanager
def log_file(folder, name):
    """Append the log lines of a stage to folder/<name>.log too: a resumed run's history stays in one file."""
    if not folder:
        yield
        return
    handler = logging.FileHandler(os.path.join(folder, f'{name}.log'), encoding='utf-8')
    handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s %(message)s', '%Y-%m-%d %H:%M:%S'))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def run(config, stages):
    for stage in stages:
        if stage.output_directory():
            write_resolved_config(config, stage.output_directory())
        with log_file(stage.output_directory(), stage.toggle):
            log.info('stage %s: starting', stage.toggle)
            stage.run()
            log.info('stage %s: done', stage.toggle)
