"""Each stage reads only the keys it declares, and uses every key it declares."""

import inspect
import re

import pytest

from deepzine.pipeline import parameter_table, resolve_config, stage_classes


class OnlyDeclared(dict):
    """A resolved config that fails on any key the stage did not declare."""

    def __init__(self, values, declared):
        super().__init__(values)
        self.declared = set(declared)

    def __getitem__(self, key):
        if key not in self.declared:
            raise AssertionError(f'read undeclared key {key}')
        return super().__getitem__(key)

    def get(self, key, default=None):
        return self[key] if key in self else default


@pytest.mark.parametrize('stage_class', stage_classes(), ids=lambda stage_class: stage_class.toggle)
def test_a_stage_reads_only_what_it_declares(stage_class):
    config = resolve_config({})
    stage = stage_class(OnlyDeclared(config, stage_class.declared()))
    assert stage.settings() == {name: config[name] for name in stage_class.declared()}
    assert not hasattr(stage, 'config')  # no copy of the whole config to read from later


@pytest.mark.parametrize('stage_class', stage_classes(), ids=lambda stage_class: stage_class.toggle)
def test_a_stage_uses_every_key_it_declares(stage_class):
    source = ''.join(inspect.getsource(klass) for klass in stage_class.__mro__ if klass.__module__.startswith('deepzine'))
    source += inspect.getsource(inspect.getmodule(stage_class))
    unused = [name for name in stage_class.declared() if name != stage_class.toggle
              and not re.search(rf'self\.{name}\b', source)]
    assert not unused, f'{stage_class.__name__} declares keys it never reads: {unused}'


def test_every_key_belongs_to_a_stage_or_the_run():
    from deepzine.parameter_groups import RunParameters
    owned = set(RunParameters.declared())
    for stage_class in stage_classes():
        owned |= set(stage_class.declared())
    assert owned == set(parameter_table())
