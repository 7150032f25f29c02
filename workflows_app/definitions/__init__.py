"""Workflow definitions: the schema, whole-definition validation and path updates.

A definition is plain JSON ({name, description, priority, queue, metadata, steps, triggers}).
``validate_definition`` returns the normalised definition or raises
``OperationError("INVALID_DEFINITION", ..., {"errors": [{"field", "message"}, ...]})`` listing
every problem it found, each naming its field (``steps[2].params.threshold``).

Modules: ``specs`` (the schemas, a step's type, running order), ``validation``, ``references``
(workflow references and who may run them), ``usage`` (the features a definition uses),
``paths`` (path updates).
"""
from workflows_app.definitions.paths import UPDATABLE_ROOTS, apply_updates, parse_path
from workflows_app.definitions.references import may_execute, resolve_workflow_ref
from workflows_app.definitions.specs import (
    MAX_STEPS,
    MAX_TRIGGERS,
    NAME_PATTERN,
    DefinitionSpec,
    RetrySpec,
    StepSpec,
    execution_groups,
    step_type_name,
)
from workflows_app.definitions.usage import FEATURES, features
from workflows_app.definitions.validation import validate_definition

__all__ = [
    "FEATURES", "MAX_STEPS", "MAX_TRIGGERS", "NAME_PATTERN", "UPDATABLE_ROOTS", "DefinitionSpec", "RetrySpec",
    "StepSpec", "apply_updates", "execution_groups", "features", "may_execute", "parse_path", "resolve_workflow_ref",
    "step_type_name", "validate_definition",
]
