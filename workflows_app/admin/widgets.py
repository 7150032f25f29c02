"""The schema-driven params form of the step and trigger inlines.

The params stay a JSON textarea: it is what is posted, and the catalogue's validator
(``definitions.validate_definition``) checks it and names the field on error. In the browser,
``params_form.js`` draws a form from the selected type's JSON Schema (the same schemas as
``/api/v1/step-types/`` and ``/trigger-types/``) with @json-editor/json-editor, a pinned asset under
``static/workflows_app/vendor/``, and keeps the form and the textarea in sync both ways.
"""
from __future__ import annotations

from django import forms

from workflows_app import schemas

PARAMS_FORM_JS = "workflows_app/vendor/json-editor-2.17.2/jsoneditor.min.js"
SCHEMAS_ELEMENT_ID = "nexus-param-schemas"


class ParamsWidget(forms.Textarea):
    """The params' JSON textarea, marked with its kind ("step" or "trigger") for params_form.js."""

    def __init__(self, kind: str, attrs: dict | None = None):
        super().__init__(attrs={"rows": 3, "cols": 60, "data-nexus-params": kind, **(attrs or {})})

    class Media:
        js = [PARAMS_FORM_JS, "workflows_app/admin/params_form.js"]
        css = {"all": ["workflows_app/admin/params_form.css"]}


def param_schemas() -> dict:
    """Every registered type's params schema, by kind and name: what the page embeds (json_script)."""
    return {"step": {t["name"]: t["params_schema"] for t in schemas.step_type_listing()},
            "trigger": {t["name"]: t["params_schema"] for t in schemas.trigger_type_listing()}}
