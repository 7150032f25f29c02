"""The admin face. Like every face it adds no logic: writes go through ``workflows_app.operations``.

Workflows are edited as their Step and Trigger rows (inlines, ``forms``). On submit the whole
definition is rebuilt from the forms and checked by the engine's own validator
(``definitions.validate_definition``, see ``editing``); each field error it reports
(``steps[1].params.threshold``) is shown on that inline form's field. A valid change is saved
through ``operations.workflow_update`` (a new immutable version; the service rewrites the rows),
a new workflow through ``operations.workflow_create`` (``workflows``). ``records`` holds the
read-only admins of what the engine writes.
"""
from workflows_app.admin import notifications, records, workflows  # noqa: F401 - registers the model admins
from workflows_app.admin.common import ReadOnlyAdmin, ReadOnlyInline, admin_link, ops_links, report
from workflows_app.admin.forms import StepForm, TriggerForm, WorkflowForm

__all__ = ["ReadOnlyAdmin", "ReadOnlyInline", "StepForm", "TriggerForm", "WorkflowForm", "admin_link", "ops_links",
           "report"]
