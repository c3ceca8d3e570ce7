"""Stages made as the command line makes them: raw YAML values -> resolve (original keys too) -> validate -> plan."""

from deepzine.pipeline import resolve_config


class PreparedStage:
    """A stage and the plan its checks made, as the pipeline holds them."""

    def __init__(self, stage, plan):
        self.stage, self.plan = stage, plan

    def run(self):
        return self.stage.run(self.plan)

    def describe(self):
        return '\n'.join(self.stage.describe(self.plan))


def prepare_stage(stage_class, earlier=None, **raw):
    stage = stage_class(resolve_config(raw, [stage_class]))
    return PreparedStage(stage, stage.validate(earlier or {}))
