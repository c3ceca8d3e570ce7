"""The parameter registry: every YAML key is declared once, then filled, checked and documented from that one line.

A group of parameters is a class whose attributes are `Parameter` objects (the
original DeepZine's `add_parameter`, declared instead of called). Stages inherit
the groups they read; the registry is the union of all groups the pipeline knows.
"""

import difflib
import math
import os
import textwrap

import yaml

from deepzine.errors import ConfigError  # noqa: F401 (the error every check raises; stages import it from here too)

# --- checks: each returns None when the value is fine, else the reason ---------------------------------

def power_of_two(value):
    if value is not None and (value < 4 or value & (value - 1)):
        return 'must be a power of two, at least 4 (4, 8, 16, ..., 1024)'


def positive(value):
    if value is not None and value <= 0:
        return 'must be positive'


def non_negative(value):
    if value is not None and value < 0:
        return 'must be zero or more'


def unit_interval(value):
    if value is not None and not 0 <= value <= 1:
        return 'must be between 0 and 1'


def size_map(value):
    """For maps such as `batch_sizes: {128: 16}`: keys are image sizes, values positive counts."""
    for size, count in (value or {}).items():
        if power_of_two(size):
            return f'key {size}: {power_of_two(size)}'
        if count <= 0:
            return f'value for {size}: must be positive'


# --- conversion from what YAML or --set gives us -------------------------------------------------------

_NONE_SPELLINGS = {'none', 'null', '~', ''}
_TRUE_SPELLINGS = {'true', 'yes', 'on', '1'}
_FALSE_SPELLINGS = {'false', 'no', 'off', '0'}


def _to_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE_SPELLINGS | _FALSE_SPELLINGS:
        return value.strip().lower() in _TRUE_SPELLINGS
    raise ValueError('must be true or false')


def _to_int(value):
    if isinstance(value, bool):
        raise ValueError('must be a whole number, not true/false')
    if isinstance(value, str):
        try:
            value = float(value)  # '1e4' reaches us as a string
        except ValueError:
            raise ValueError('must be a whole number') from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise ValueError('must be a whole number')
    return value


def _to_float(value):
    if isinstance(value, bool):
        raise ValueError('must be a number, not true/false')
    try:
        value = float(value)  # PyYAML reads 1e-4 (no dot) as a string
    except (TypeError, ValueError):
        raise ValueError('must be a number') from None
    if not math.isfinite(value):
        raise ValueError('must be a finite number')
    return value


def _to_str(value):
    if isinstance(value, (dict, list, bool)):
        raise ValueError('must be a text value')
    return str(value)


def _to_path(value):
    """Paths are made absolute once, from the folder the command runs in (as the original DeepZine read them)."""
    return os.path.abspath(os.path.expandvars(os.path.expanduser(_to_str(value))))


def where_relative_paths_start():
    """For messages about a missing file: relative paths in a config are read from the current folder."""
    return f"relative paths in a config are read from the folder you run in, {os.getcwd()}"


def _to_list(value):
    if isinstance(value, (str, int)):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise ValueError('must be a list')
    return list(value)


def _to_size_map(value):
    if not isinstance(value, dict):
        raise ValueError('must be a map such as {128: 16, 256: 8}')
    return {_to_int(size): _to_int(count) for size, count in value.items()}


def _one_or_a_list(convert):
    """For keys that name one thing or several (`pdf_directory: ./pdfs` or `[./manuals, ./music]`): one value stays
    one value, a list becomes a list of converted values, so a config of one keeps meaning what it meant."""
    def converted(value):
        if not isinstance(value, (list, tuple)):
            return convert(value)
        if not value:
            raise ValueError('must name at least one (the list is empty)')
        if any(element is None or (isinstance(element, str) and not element.strip()) for element in value):
            raise ValueError('has an empty entry')
        return [convert(element) for element in value]
    return converted


_CONVERTERS = {'int': _to_int, 'float': _to_float, 'bool': _to_bool, 'str': _to_str,
               'path': _to_path, 'list': _to_list, 'size_map': _to_size_map,
               'str_or_list': _one_or_a_list(_to_str), 'path_or_list': _one_or_a_list(_to_path)}


class Parameter:
    """One YAML key: its default, kind (int, float, bool, str, path, list, size_map, and str_or_list and
    path_or_list for keys that take one value or a list), help, and checks.

    A default of None makes the key optional (None means "not set" or "automatic").
    """

    def __init__(self, default, kind, help, choices=None, check=None, aliases=None):
        if kind not in _CONVERTERS:
            raise TypeError(f'unknown parameter kind {kind!r}')
        self.default, self.kind, self.help = default, kind, help
        self.choices = tuple(choices) if choices else None
        self.check = check
        self.aliases = dict(aliases or {})  # accepted old spellings of values, e.g. {'origin': 'tozero'}
        self.name = None
        self.group = None

    def __set_name__(self, owner, name):
        self.name, self.group = name, owner

    def convert(self, value):
        """Return the checked value, or raise ConfigError naming the key, the value and what is allowed."""
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_SPELLINGS):
            if self.choices and 'none' in self.choices:  # a choice named none (hdf5_compression: none)
                return 'none'
            if self.default is None:
                return None
            raise ConfigError(f'{self.name}={value!r}: must be set ({self.help})')
        try:
            converted = _CONVERTERS[self.kind](value)
        except ValueError as error:
            raise ConfigError(f'{self.name}={value!r}: {error}') from None
        if self.choices:
            converted = self.aliases.get(converted, converted)
            if converted not in self.choices:
                raise ConfigError(f'{self.name}={value!r}: must be one of {", ".join(map(str, self.choices))}')
        reason = self.check(converted) if self.check else None
        if reason:
            raise ConfigError(f'{self.name}={value!r}: {reason}')
        return converted

    def describe_default(self):
        return 'None' if self.default is None else yaml.safe_dump(self.default, default_flow_style=True).strip().removesuffix('...').strip()


class Parameters:
    """Base class of every parameter group and stage: fills the declared attributes from a resolved config."""

    def __init__(self, config):
        for name in self.declared():
            setattr(self, name, config[name])

    @classmethod
    def declared(cls):
        """The parameters this class reads, by name, in declaration order (base classes first)."""
        found = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Parameter):
                    found[name] = value
        return found


def registry(groups):
    """All parameters of the given classes by name; a name declared twice is a programming error."""
    table = {}
    for group in groups:
        for name, parameter in group.declared().items():
            if name in table and table[name] is not parameter:
                raise TypeError(f'parameter {name} declared twice: {table[name].group.__name__} and {group.__name__}')
            table[name] = parameter
    return table


def resolve(raw, table):
    """YAML mapping (+ overrides already merged) -> complete dict of checked values; unknown keys are refused."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f'the config must be a mapping of key: value lines, got {type(raw).__name__}')
    for key in raw:
        if key not in table:
            close = difflib.get_close_matches(str(key), table, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ''
            raise ConfigError(f"unknown key '{key}'{hint}; 'python wrapper.py params' lists them all")
    return {name: parameter.convert(raw[name]) if name in raw else parameter.default
            for name, parameter in table.items()}


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node, deep=False):
        first_line = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in first_line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' is written twice (lines {first_line[key]} and {line}); keep one",
                    key_node.start_mark)
            first_line.setdefault(key, line)
        return super().construct_mapping(node, deep)


def load_yaml(path):
    """Read a config file safely (no Python objects, no repeated keys); any problem is a ConfigError naming the file."""
    try:
        with open(path, encoding='utf-8') as handle:
            return yaml.load(handle, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError:
        raise ConfigError(f'config file not found: {path}') from None
    except IsADirectoryError:
        raise ConfigError(f'{path}: is a folder; give the YAML config file') from None
    except UnicodeDecodeError:
        raise ConfigError(f'{path}: not a text file (not UTF-8); give a YAML config such as config.yaml') from None
    except OSError as error:
        raise ConfigError(f'{path}: cannot be read ({error.strerror})') from None
    except yaml.YAMLError as error:
        mark = getattr(error, 'problem_mark', None)
        where = f' line {mark.line + 1}' if mark else ''
        raise ConfigError(f'{path}{where}: not valid YAML ({getattr(error, "problem", error)})') from None


def parse_override(text):
    """`key=value` from the command line; the value is read as YAML so numbers and booleans keep their type."""
    key, sep, value = text.partition('=')
    if not sep or not key.strip():
        raise ConfigError(f'--set {text!r}: expected key=value')
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        return key.strip(), value


def _help_with_choices(parameter):
    if parameter.choices:
        return f'{parameter.help} ({" | ".join(map(str, parameter.choices))})'
    return parameter.help


def describe(table):
    """Markdown table of every parameter: name, default, help with choices; the README's config reference."""
    lines = ['| key | default | meaning |', '| --- | --- | --- |']
    for name, parameter in table.items():
        lines.append(f'| `{name}` | `{parameter.describe_default()}` | {_help_with_choices(parameter)} |')
    return '\n'.join(lines)


def describe_for_terminal(table, word=None, width=100):
    """Every parameter (or those whose name or help contains `word`) as wrapped text, for the params command."""
    lines = []
    for name, parameter in table.items():
        help_text = _help_with_choices(parameter)
        if word and word.lower() not in f'{name} {help_text}'.lower():
            continue
        lines.append(f'{name}: {parameter.describe_default()}')
        lines += textwrap.wrap(help_text, width=width, initial_indent='    ', subsequent_indent='    ')
    return '\n'.join(lines)


def describe_as_yaml(sections, values=None, header=''):
    """A complete config: every key under its section's title, its help as a comment above it, a value each.

    sections: [(title, [Parameter, ...])]; values: {key: value} to write instead
    of the defaults (the comment then names the default). `deepzine params
    --yaml` prints it; config.yaml is it with the stages switched on.
    """
    values = values or {}
    rule = '# ' + '=' * 98
    lines = [header.rstrip()] if header else []
    for title, parameters in sections:
        lines += ['', rule, f'# {title}', rule]
        for parameter in parameters:
            help_text = _help_with_choices(parameter)
            value = values.get(parameter.name, parameter.default)
            if value != parameter.default:
                help_text += f' (default: {parameter.describe_default()})'
            lines.append('')
            lines += textwrap.wrap(help_text, width=100, initial_indent='# ', subsequent_indent='# ')
            text = yaml.safe_dump({parameter.name: value}, default_flow_style=True, width=1000).strip()
            lines.append(text[1:-1] if text.startswith('{') else text)
    return '\n'.join(lines).lstrip('\n') + '\n'
