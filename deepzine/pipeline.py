"""The stage order, and the run: resolve the config, check every enabled stage into a plan, then run the plans in order.

Each stage reads only files an earlier stage (or an earlier run) wrote, so any
stage can be re-run alone by switching the others off. Nothing is written
before every enabled stage has been checked.
"""

import contextlib
import dataclasses
import logging
import os

import yaml

from deepzine import compat
from deepzine.data.stage import LoadDataStage
from deepzine.evaluation.stage import EvaluateStage
from deepzine.files import write_yaml
from deepzine.parameter_groups import RunParameters
from deepzine.parameters import ConfigError, registry, resolve
from deepzine.sampling.inference import InferenceStage
from deepzine.sampling.interpolation import InterpolationStage
from deepzine.sampling.project_stage import ProjectStage
from deepzine.training.stage import TrainStage

log = logging.getLogger(__name__)


def stage_classes():
    """The stages in the order they run."""
    return [LoadDataStage, TrainStage, ProjectStage, InferenceStage, InterpolationStage, EvaluateStage]


def parameter_table(classes=None):
    """Every key a config may hold, in the order config.yaml lists them."""
    return registry([RunParameters] + list(classes or stage_classes()))


def parameter_sections():
    """[(title, [Parameter, ...])]: the run's keys, then each stage's keys not listed before it, in run order."""
    sections, listed = [], set()
    for group in [RunParameters] + stage_classes():
        title = 'The whole run' if group is RunParameters else f'{group.toggle}: {group.summary}'
        declared = group.declared()
        toggle = [declared[group.toggle]] if group is not RunParameters else []
        fresh = toggle + [parameter for name, parameter in declared.items()
                          if name not in listed and parameter not in toggle]
        listed.update(parameter.name for parameter in fresh)
        sections.append((title, fresh))
    return sections


@dataclasses.dataclass(frozen=True)
class PreparedRun:
    """A checked config: the resolved values and, in run order, each enabled stage with its plan."""
    config: dict
    steps: tuple  # ((stage, plan), ...)


def resolve_config(raw, classes=None):
    """YAML mapping (+ --set overrides) -> the complete, checked config; original keys translated or retired."""
    return resolve(compat.translate(raw), parameter_table(classes))


def prepare(raw, classes=None):
    """YAML mapping -> PreparedRun: every enabled stage checked into its plan, nothing written."""
    classes = list(classes or stage_classes())
    config = resolve_config(raw, classes)
    stages = [stage_class(config) for stage_class in classes if config[stage_class.toggle]]
    if not stages:
        toggles = ', '.join(stage_class.toggle for stage_class in classes)
        raise ConfigError(f'no stage is switched on: set at least one of {toggles} to true')
    plans = {}
    for stage in stages:
        plans[stage.toggle] = stage.validate(dict(plans))
    return PreparedRun(config, tuple((stage, plans[stage.toggle]) for stage in stages))


def describe_plan(prepared):
    lines = ['Resolved config:']
    lines += ['  ' + line for line in yaml.safe_dump(prepared.config, sort_keys=False).splitlines()]
    lines.append('Plan:')
    for number, (stage, plan) in enumerate(prepared.steps, 1):
        lines.append(f'  {number}. {stage.toggle}')
        lines += ['     ' + line for line in stage.describe(plan)]
        settings_path, log_path = stage.saved_files(plan)
        if settings_path:
            lines.append(f'     its settings -> {settings_path}; its log -> {log_path}')
    return '\n'.join(lines)


@contextlib.contextmanager
def log_file(path):
    """Append the log lines of a stage to `path` too: a resumed run's history stays in one file."""
    if not path:
        yield
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handler = logging.FileHandler(path, encoding='utf-8')
    handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s %(message)s', '%Y-%m-%d %H:%M:%S'))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def run(prepared):
    for stage, plan in prepared.steps:
        settings_path, log_path = stage.saved_files(plan)
        if settings_path:
            write_yaml(settings_path, {stage.toggle: True, **stage.settings()})
        with log_file(log_path):
            log.info('stage %s: starting', stage.toggle)
            stage.run(plan)
            log.info('stage %s: done', stage.toggle)
