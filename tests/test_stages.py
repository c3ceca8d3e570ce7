"""Each stage reads only the keys it declares, and uses every key it declares."""

import ast
import inspect
import pathlib
import re

import pytest

import deepzine
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


def stage_source(stage_class):
    """The code of a stage: its classes (with the parameter groups it inherits) and its module."""
    source = ''.join(inspect.getsource(klass) for klass in stage_class.__mro__ if klass.__module__.startswith('deepzine'))
    return source + inspect.getsource(inspect.getmodule(stage_class))


@pytest.mark.parametrize('stage_class', stage_classes(), ids=lambda stage_class: stage_class.toggle)
def test_a_stage_reads_only_what_it_declares(stage_class):
    config = resolve_config({})
    stage = stage_class(OnlyDeclared(config, stage_class.declared()))
    assert stage.settings() == {name: config[name] for name in stage_class.declared()}
    assert not hasattr(stage, 'config')  # no copy of the whole config to read from later
    undeclared = set(parameter_table()) - set(stage_class.declared())
    source = stage_source(stage_class)
    read = sorted(name for name in undeclared if re.search(rf'self\.{name}\b', source))
    assert not read, f'{stage_class.__name__} reads keys it does not declare: {read}'


@pytest.mark.parametrize('stage_class', stage_classes(), ids=lambda stage_class: stage_class.toggle)
def test_a_stage_uses_every_key_it_declares(stage_class):
    source = stage_source(stage_class)
    unused = [name for name in stage_class.declared() if name != stage_class.toggle
              and not re.search(rf'self\.{name}\b', source)]
    assert not unused, f'{stage_class.__name__} declares keys it never reads: {unused}'


def declared_in_the_package():
    """{name: module} of every `name = Parameter(...)` in a class anywhere in deepzine/."""
    found = {}
    for path in sorted(pathlib.Path(deepzine.__file__).parent.rglob('*.py')):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for statement in node.body:
                    if (isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call)
                            and getattr(statement.value.func, 'id', None) == 'Parameter'):
                        found.update({target.id: path.name for target in statement.targets})
    return found


def test_every_declared_key_belongs_to_a_stage_or_the_run():
    declared = declared_in_the_package()
    assert len(declared) > 50  # the scan finds the declarations
    orphans = sorted(f'{name} ({module})' for name, module in declared.items() if name not in parameter_table())
    assert not orphans, f'declared but read by no stage and not a key of the run: {orphans}'
