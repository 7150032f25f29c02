"""On submit, the whole definition is rebuilt from the workflow's inline forms and checked by the
engine's own validator; each error it reports is put on the form field it names."""
from __future__ import annotations

import re

from workflows_app import definitions
from workflows_app.errors import OperationError
from workflows_app.models import Step, Trigger, Workflow

# Definition keys -> the Step inline form field that shows their errors.
STEP_FIELDS = {"name": "name", "type": "type", "params": "params", "condition": "condition", "actions": "actions",
               "group": "group", "parallel": "group", "retry": "retry", "timeout": "timeout",
               "compensate": "compensate", "agent": "agent", "workflow_id": "subprocess_workflow"}
WORKFLOW_FIELDS = {"name", "description", "priority", "queue", "metadata"}
_INDEXED = re.compile(r"^(steps|triggers)\[(\d+)\]\.?(.*)$")


def _kept_forms(formset) -> list:
    """The inline forms that make up the definition, in position order."""
    kept = []
    for index, form in enumerate(formset.forms):
        if not hasattr(form, "cleaned_data"):
            continue
        if index >= formset.initial_form_count() and not form.has_changed():
            continue
        if formset.can_delete and formset._should_delete_form(form):
            continue
        position = form.cleaned_data.get("position")
        kept.append((position if position is not None else 10**6 + index, index, form))
    return [form for *_, form in sorted(kept, key=lambda item: (item[0], item[1]))]


def _untouched(form) -> bool:
    """The submitted values equal the row's (compared as values: blank and None alike)."""
    def norm(value):
        return None if value in ("", None) else value

    return all(norm(form.initial.get(name)) == norm(form.cleaned_data.get(name))
               for name in form.fields if name not in ("id", "workflow", "DELETE") and name in form.cleaned_data)


def _step_from_form(form) -> dict:
    data = form.cleaned_data
    step = {"name": data.get("name") or "", "params": data.get("params") or {}}
    for key, field in (("type", "type"), ("condition", "condition"), ("actions", "actions"), ("group", "group"),
                       ("retry", "retry"), ("timeout", "timeout"), ("compensate", "compensate"), ("agent", "agent"),
                       ("workflow_id", "subprocess_workflow")):
        value = data.get(field)
        if value not in (None, "", [], {}):
            step[key] = value
    return step


def _trigger_from_form(form) -> dict:
    params = form.cleaned_data.get("params") or {}
    if not isinstance(params, dict):
        return {"type": form.cleaned_data.get("type"), "params": params}
    return {**params, "type": form.cleaned_data.get("type")}


def _show_error(field: str, message: str, main_form, step_forms, trigger_forms, step_set, trigger_set) -> None:
    """Put one validator error on the form field it names."""
    match = _INDEXED.match(field)
    if match:
        kind, index, rest = match.group(1), int(match.group(2)), match.group(3)
        forms_, formset = (step_forms, step_set) if kind == "steps" else (trigger_forms, trigger_set)
        if index < len(forms_):
            form = forms_[index]
            head = re.split(r"[.\[]", rest, maxsplit=1)[0] if rest else ""
            tail = rest[len(head):].lstrip(".")
            if kind == "steps":
                target = STEP_FIELDS.get(head)
            else:
                target = "type" if head == "type" else "params"
                tail = rest if head != "type" else tail
            form.add_error(target, f"{tail}: {message}" if tail else message)
            return
        formset._non_form_errors.append(f"{field}: {message}")
        return
    root = field.split(".")[0].split("[")[0]
    if root in WORKFLOW_FIELDS and main_form is not None:
        main_form.add_error(root, message)
        step_set._non_form_errors.append("The definition has errors; see above.")
    elif root == "triggers":
        trigger_set._non_form_errors.append(f"{field}: {message}")
    else:
        step_set._non_form_errors.append(f"{field or 'definition'}: {message}")


def validate_inlines(request, obj, formsets) -> None:
    """Check the definition the posted forms make up; keep it on the request for ``save_model``."""
    main_form = getattr(request, "_nexus_main_form", None)
    step_set = next((f for f in formsets if f.model is Step), None)
    trigger_set = next((f for f in formsets if f.model is Trigger), None)
    if main_form is None or step_set is None or trigger_set is None:
        return
    if main_form.is_valid() and not obj._state.adding and _version_conflict(main_form, obj):
        return
    if not main_form.is_valid() or not step_set.is_valid() or not trigger_set.is_valid():
        return  # the forms' own errors first
    step_forms, trigger_forms = _kept_forms(step_set), _kept_forms(trigger_set)
    old, owner = _stored_definition(obj, request.user)
    raw = _definition_from_forms(obj, main_form.cleaned_data, step_forms, trigger_forms, old)
    try:
        normalised = definitions.validate_definition(
            raw, workflow_id=str(obj.pk) if obj.pk and not obj._state.adding else None, owner=owner)
    except OperationError as exc:
        errors = exc.details.get("errors") if isinstance(exc.details, dict) else None
        for error in errors or [{"field": "", "message": exc.message}]:
            _show_error(error["field"], error["message"], main_form, step_forms, trigger_forms, step_set, trigger_set)
        return
    request._nexus_definition = normalised


def _version_conflict(main_form, obj) -> bool:
    """Whether the editor loaded an older version than the current one (then the save is refused).
    Checked first: a newer version also rewrote the rows the inline forms point at."""
    current_version = Workflow.objects.filter(pk=obj.pk).values_list("current_version__number", flat=True).first()
    loaded = main_form.cleaned_data.get("loaded_version")
    if loaded is None or current_version is None or loaded == current_version:
        return False
    main_form.add_error(None, f"This workflow was changed (now version {current_version}, you loaded "
                              f"version {loaded}); reload the page and apply your change again.")
    return True


def _stored_definition(obj, user) -> tuple[dict, object]:
    """The workflow's stored definition and its owner (a new workflow: none yet, owned by its creator)."""
    if obj._state.adding:
        return {}, user
    current = Workflow.objects.select_related("current_version").filter(pk=obj.pk).first()
    old = current.current_version.definition if current and current.current_version_id else {}
    return old, current.owner if current else None


def _definition_from_forms(obj, data: dict, step_forms, trigger_forms, old: dict) -> dict:
    old_steps = {s["name"]: s for s in old.get("steps", [])}
    old_triggers = old.get("triggers", [])
    return {
        "name": data.get("name", obj.name), "description": data.get("description", obj.description) or "",
        "priority": data.get("priority", obj.priority), "queue": data.get("queue", obj.queue),
        "metadata": data.get("metadata", obj.metadata) or {},
        "steps": [_step_of(f, old_steps) for f in step_forms],
        "triggers": [_trigger_of(f, old_triggers) for f in trigger_forms],
    }


def _step_of(form, old_steps: dict) -> dict:
    # An untouched row keeps its stored step verbatim (keys the rows do not hold, such as a
    # step's description or `parallel`, survive an admin save).
    if form.instance.pk and _untouched(form) and form.instance.name in old_steps:
        return old_steps[form.instance.name]
    step = _step_from_form(form)
    previous = old_steps.get(step["name"], {})
    if previous.get("description"):
        step["description"] = previous["description"]
    return step


def _trigger_of(form, old_triggers: list) -> dict:
    position = form.instance.position
    if form.instance.pk and _untouched(form) and position is not None and position < len(old_triggers):
        return old_triggers[position]
    return _trigger_from_form(form)
