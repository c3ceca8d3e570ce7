"""The base class of a pipeline stage: its toggle key, its checks that produce a plan, and its work on that plan."""

import os

from deepzine.parameters import Parameters


class Stage(Parameters):
    """One step of `python wrapper.py config.yaml`, switched on by the bool parameter named by `toggle`.

    Subclasses declare their parameters (inheriting shared groups from
    `deepzine.parameter_groups`); the constructor fills exactly those from the
    resolved config, so a stage cannot read a key it does not declare.

    `validate(earlier)` checks everything that can be checked before work and
    works out what follows from the keys (architecture, phases, the model's
    location, ...) once, into a small frozen plan; `describe(plan)` prints it
    for --dry-run; `run(plan)` does the work from the plan alone. `earlier`
    maps the toggles of the stages that run before this one in the same run to
    their plans, so a stage can check what an earlier stage will write (a page
    file not written yet, a model not trained yet).

    Heavy imports (TensorFlow, h5py) belong inside `run` and the modules it
    calls, so `--dry-run` and the `params` command stay quick.
    """

    toggle = None  # e.g. 'load_data'
    summary = ''   # what the stage does, in a few words (config.yaml's section titles)

    def validate(self, earlier):
        """Cross-key and file checks (raise ConfigError); returns the plan `run` receives. Writes nothing."""
        return None

    def describe(self, plan):
        """Lines describing what `run(plan)` would do and where it writes, for --dry-run."""
        return []

    def output_directory(self, plan):
        """The folder this stage writes into; its settings and log are kept there (None: nowhere)."""
        return None

    def saved_files(self, plan):
        """(settings YAML, log file) this stage keeps in its output folder, or (None, None)."""
        folder = self.output_directory(plan)
        if not folder:
            return None, None
        return os.path.join(folder, f'{self.toggle}_config.yaml'), os.path.join(folder, f'{self.toggle}.log')

    def settings(self):
        """The values of every key this stage declares: saved next to its outputs and in its checkpoints."""
        return {name: getattr(self, name) for name in self.declared()}

    def run(self, plan):
        raise NotImplementedError
