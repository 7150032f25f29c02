from workflows_app.registry import Plugin, StepType


def transform(ctx) -> dict:
    return {}


PLUGIN = Plugin(name="plugin_clash", step_types=(StepType(name="transform", handler=transform),))
