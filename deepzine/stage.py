"""The base class of a pipeline stage: its toggle key, its checks, its plan for --dry-run, and its work."""

from deepzine.parameters import Parameter, Parameters


class Stage(Parameters):
    """One step of `python wrapper.py config.yaml`, switched on by the bool parameter named by `toggle`.

    Subclasses declare their own parameters (and inherit shared groups from
    `deepzine.parameter_groups`); the constructor fills them from the resolved config.
    Heavy imports (TensorFlow, h5py) belong inside `run`, so `--dry-run` and
    `--list-params` stay instant.
    """

    toggle = None  # e.g. 'load_data'
    earlier_stages = ()  # toggles of the stages that run before this one in the same run (set by the pipeline)

    random_seed = Parameter(None, 'int', 'seed for every random choice (latents, shuffling); None draws a fresh one')

    def validate(self):
        """Cross-key checks that need more than one value; raise ConfigError. Runs before any stage does work."""

    def plan(self):
        """Lines describing what `run` would do and where it writes, for --dry-run."""
        return []

    def output_directory(self):
        """The folder this stage writes into; the resolved config is saved there as config.yaml (None: nowhere)."""
        return None

    def run(self):
        raise NotImplementedError
