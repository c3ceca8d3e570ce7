"""Keep TensorFlow's own C++ log lines out of normal output.

TensorFlow 2.21 writes its start-up notices ('oneDNN custom operations are
on', 'Could not find cuda drivers', and 'WARNING: All log messages before
absl::InitializeLog()') straight to file descriptor 2 while it is imported,
before TF_CPP_MIN_LOG_LEVEL is read, so the variable alone cannot hide them.
`quiet_tensorflow()` sets TF_CPP_MIN_LOG_LEVEL=3 (no later INFO, WARNING or
ERROR lines such as 'failed call to cuInit' on a machine without a GPU) and,
the first time any module imports TensorFlow, runs that import with file
descriptor 2 read through a filter that drops exactly those lines. Anything
else written meanwhile is passed on. `--verbose` (or `verbose: true`) leaves
everything as TensorFlow prints it.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import threading

TENSORFLOW_LINE = re.compile(rb'^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]]+\] |'
                             rb'WARNING: All log messages before absl::InitializeLog\(\) is called)')


@contextlib.contextmanager
def _filtered_stderr():
    """File descriptor 2 goes through a pipe; lines from TensorFlow's C++ logging are dropped, the rest passed on."""
    sys.stderr.flush()
    original = os.dup(2)
    reader, writer = os.pipe()
    os.dup2(writer, 2)
    os.close(writer)

    def pass_on():
        with os.fdopen(reader, 'rb') as lines:
            for line in lines:
                if not TENSORFLOW_LINE.match(line):
                    os.write(original, line)

    thread = threading.Thread(target=pass_on, daemon=True)
    thread.start()
    try:
        yield
    finally:
        os.dup2(original, 2)  # closes the pipe's last writer: the reader sees the end and stops
        thread.join(timeout=5)
        os.close(original)


class _ExistingModule(importlib.abc.Loader):
    """Hands the import system the module already imported, keeping its own __spec__."""

    def __init__(self, module):
        self.module, self.original_spec = module, module.__spec__

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        module.__spec__ = self.original_spec


class _QuietFirstImport(importlib.abc.MetaPathFinder):
    """Imports TensorFlow under the filter the first time anything asks for it, then steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name != 'tensorflow':
            return None
        sys.meta_path.remove(self)
        with _filtered_stderr():
            module = importlib.import_module('tensorflow')
        return importlib.util.spec_from_loader(name, _ExistingModule(module))


def quiet_tensorflow():
    """Hide TensorFlow's C++ log lines from now on (a TF_CPP_MIN_LOG_LEVEL the user set is kept)."""
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    if 'tensorflow' not in sys.modules and not any(isinstance(finder, _QuietFirstImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietFirstImport())
