import logging
import os

import pytest
import yaml

from deepzine import pipeline
from deepzine.parameters import ConfigError, Parameter
from deepzine.stage import Stage

CALLS = []


class FirstStage(Stage):
    toggle = 'first'
    first = Parameter(False, 'bool', 'run the first stage')
    first_output = Parameter(None, 'path', 'where the first stage writes')

    def validate(self, earlier):
        return {'writes': self.first_output}

    def output_directory(self, plan):
        return self.first_output

    def describe(self, plan):
        return [f'writes {plan["writes"]}']

    def run(self, plan):
        CALLS.append(('first', os.path.exists(os.path.join(self.first_output, 'first_config.yaml'))))
        logging.getLogger('first').info('first stage working')


class SecondStage(Stage):
    toggle = 'second'
    second = Parameter(False, 'bool', 'run the second stage')
    second_count = Parameter(1, 'int', 'how many')

    def validate(self, earlier):
        if self.second_count > 3:
            raise ConfigError(f'second_count={self.second_count}: at most 3')
        return {'count': self.second_count, 'after': sorted(earlier)}

    def run(self, plan):
        CALLS.append(('second', plan['count'], plan['after']))


CLASSES = [FirstStage, SecondStage]


@pytest.fixture(autouse=True)
def clear_calls():
    CALLS.clear()


def test_toggles_choose_the_stages_and_they_run_in_pipeline_order_with_the_earlier_plans(tmp_path):
    prepared = pipeline.prepare({'second': True, 'first': True, 'first_output': str(tmp_path / 'out')}, CLASSES)
    assert [stage.toggle for stage, _ in prepared.steps] == ['first', 'second']
    pipeline.run(prepared)
    assert CALLS == [('first', True), ('second', 1, ['first'])]
    saved = yaml.safe_load((tmp_path / 'out' / 'first_config.yaml').read_text())
    assert saved == {'first': True, 'first_output': str(tmp_path / 'out')}  # the stage's own keys


def test_each_run_appends_its_log_lines_to_the_stage_folder(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    for _ in range(2):
        pipeline.run(pipeline.prepare({'first': True, 'first_output': str(tmp_path)}, CLASSES))
    lines = (tmp_path / 'first.log').read_text().splitlines()
    assert [line.split(' ', 3)[3] for line in lines] == ['stage first: starting', 'first stage working',
                                                         'stage first: done'] * 2
    assert not [handler for handler in logging.getLogger().handlers
                if str(getattr(handler, 'baseFilename', '')).startswith(str(tmp_path))]  # none left behind


def test_a_stage_switched_off_does_not_run(tmp_path):
    pipeline.run(pipeline.prepare({'second': True}, CLASSES))
    assert CALLS == [('second', 1, [])]


def test_no_stage_switched_on_is_an_error():
    with pytest.raises(ConfigError, match='no stage is switched on: set at least one of first, second'):
        pipeline.prepare({}, CLASSES)


def test_every_enabled_stage_is_checked_before_any_runs(tmp_path):
    with pytest.raises(ConfigError, match='second_count=5'):
        pipeline.prepare({'first': True, 'first_output': str(tmp_path / 'out'), 'second': True, 'second_count': 5},
                         CLASSES)
    assert CALLS == [] and not (tmp_path / 'out').exists()


def test_a_disabled_stage_is_not_validated(tmp_path):
    prepared = pipeline.prepare({'first': True, 'first_output': str(tmp_path), 'second_count': 5}, CLASSES)
    assert [(stage.toggle, plan) for stage, plan in prepared.steps] == [('first', {'writes': str(tmp_path)})]
    assert prepared.config['second_count'] == 5  # its keys are still read and checked for type, not validated


def test_retired_original_keys_are_accepted_with_a_warning(caplog):
    prepared = pipeline.prepare({'second': True, 'preload_resized_data': True}, CLASSES)
    assert 'preload_resized_data' not in prepared.config
    assert 'preload_resized_data (original DeepZine) is ignored' in caplog.text


def test_plan_names_the_stages_and_where_they_write(tmp_path):
    prepared = pipeline.prepare({'first': True, 'first_output': str(tmp_path / 'out')}, CLASSES)
    text = pipeline.describe_plan(prepared)
    assert '1. first' in text and f'writes {tmp_path / "out"}' in text and 'second_count: 1' in text
    assert f'its settings -> {tmp_path / "out" / "first_config.yaml"}' in text
    assert not (tmp_path / 'out').exists()
