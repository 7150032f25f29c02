"""The operations contract: one typed operation per action, shared by every face.

REST views, MCP tools, admin actions and management commands call these and add no logic. Each is
an ``Operation`` of the catalogue (``workflows_app.operations.catalogue``): called with keyword
arguments and ``user`` (None for trusted local callers: CLI, MCP over stdio, beat), it returns a
JSON-serialisable dict with ``success: True`` or raises ``OperationError``. A non-staff user sees
and changes only their own workflows and executions.

``operations.<name>`` is the catalogue's operation of that name, so a new operation is one
decorated function (``@catalogue.operation(ArgsModel)`` on ``fn(args, user)``) in its area module
below, and nothing else: the faces, and this module, pick it up from the catalogue.
"""
from workflows_app.errors import OperationError
from workflows_app.operations import (  # noqa: F401
    agents,
    deadletters,
    events,
    executions,
    notifications,
    queues,
    workflows,
)
from workflows_app.operations.catalogue import Operation
from workflows_app.operations.catalogue import catalogue as _catalogue  # the module name stays the module's


def __getattr__(name: str) -> Operation:
    operation = _catalogue.get(name)
    if operation is None:
        raise AttributeError(f"module {__name__!r} has no operation {name!r}")
    return operation


def __dir__() -> list[str]:
    return sorted([*globals(), *_catalogue.operations])


__all__ = ["Operation", "OperationError"]
