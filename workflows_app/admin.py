"""The admin face. Like every face it adds no logic: writes go through ``workflows_app.operations``.

Workflows are edited as their Step and Trigger rows (inlines). On submit the whole definition is
rebuilt from the forms and checked by the engine's own validator
(``definitions.validate_definition``); each field error it reports (``steps[1].params.threshold``)
is shown on that inline form's field. A valid change is saved through ``operations.workflow_update``
(a new immutable version; the service rewrites the rows), a new workflow through
``operations.workflow_create``.
"""
from __future__ import annotations

import re
import uuid

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import models as dj_models
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join

from workflows_app import definitions, operations
from workflows_app import models as wf_models
from workflows_app.errors import OperationError
from workflows_app.models import (
    Agent,
    AuditEvent,
    DeadLetter,
    Execution,
    Step,
    StepRun,
    Trigger,
    Workflow,
    WorkflowVersion,
)
from workflows_app.registry import registry

JSON_WIDGET = {dj_models.JSONField: {"widget": forms.Textarea(attrs={"rows": 2, "cols": 48})}}

# Definition keys -> the Step inline form field that shows their errors.
STEP_FIELDS = {"name": "name", "type": "type", "params": "params", "condition": "condition", "actions": "actions",
               "group": "group", "parallel": "group", "retry": "retry", "timeout": "timeout",
               "compensate": "compensate", "agent": "agent", "workflow_id": "subprocess_workflow"}
WORKFLOW_FIELDS = {"name", "description", "priority", "queue", "metadata"}
_INDEXED = re.compile(r"^(steps|triggers)\[(\d+)\]\.?(.*)$")


def admin_link(obj, label=None):
    if obj is None:
        return "-"
    try:
        url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return str(label or obj)
    return format_html('<a href="{}">{}</a>', url, label or obj)


def report(modeladmin, request, label: str, call) -> None:
    """Run one operation call for an action and report its outcome as a message."""
    try:
        reply = call()
    except OperationError as exc:
        modeladmin.message_user(request, f"{label}: {exc.code}: {exc.message}", messages.ERROR)
        return None
    return reply


# --- workflows ----------------------------------------------------------------------------------


class StepForm(forms.ModelForm):
    class Meta:
        model = Step
        fields = ["position", "name", "type", "params", "condition", "actions", "group", "retry", "timeout",
                  "compensate", "agent", "subprocess_workflow"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["position"].required = False
        self.fields["position"].help_text = "Order (blank: after the others)."
        # A choice over the registered step types, but the field stays a CharField: the engine's
        # validator reports an unknown type on this field like any other definition error.
        self.fields["type"].widget = forms.Select(choices=_step_type_choices(self.instance.type))


class TriggerForm(forms.ModelForm):
    class Meta:
        model = Trigger
        fields = ["position", "type", "params"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["position"].required = False
        self.fields["type"].widget = forms.Select(choices=[("", "---")] + [(n, n) for n in _trigger_type_names()])
        self.fields["params"].help_text = 'The trigger\'s settings, e.g. {"cron": "0 9 * * 1-5", "timezone": "UTC"}.'


def _step_type_choices(current: str) -> list[tuple[str, str]]:
    """Computed per form: the registry is filled in the apps' ready(). A row's current type stays
    selectable even if no app registers it any more (saving then names the problem)."""
    names = sorted(registry.step_types)
    kept = [(current, f"{current} (not registered)")] if current and current not in names else []
    return [("", "--- (the step's name)"), *kept, *((n, n) for n in names)]


def _trigger_type_names() -> list[str]:
    return sorted(registry.trigger_types)


class StepInline(admin.StackedInline):
    model = Step
    form = StepForm
    extra = 0
    ordering = ["position"]
    formfield_overrides = JSON_WIDGET
    fieldsets = [
        (None, {"fields": [("position", "name", "type"), "params", ("condition", "actions")]}),
        ("Advanced", {"classes": ["collapse"], "fields": [("group", "timeout", "compensate"),
                                                          ("retry", "agent", "subprocess_workflow")]}),
    ]


class TriggerInline(admin.TabularInline):
    model = Trigger
    form = TriggerForm
    extra = 0
    ordering = ["position"]
    formfield_overrides = JSON_WIDGET
    readonly_fields = ["last_fired_at", "schedule"]
    fields = ["position", "type", "params", "last_fired_at", "schedule"]

    @admin.display(description="beat schedule")
    def schedule(self, obj):
        return admin_link(obj.periodic_task) if obj and obj.periodic_task_id else "-"


class VersionInline(admin.TabularInline):
    model = WorkflowVersion
    extra = 0
    can_delete = False
    fields = ["number", "changed_paths", "created_by", "created_at"]
    readonly_fields = fields
    ordering = ["-number"]
    verbose_name_plural = "versions (immutable)"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


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


class WorkflowForm(forms.ModelForm):
    # The version the editor loaded: a save over someone else's newer version is refused, not merged.
    loaded_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.instance._state.adding:
            self.fields["loaded_version"].initial = self.instance.version


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    form = WorkflowForm
    list_display = ["name", "status", "priority", "version", "queue", "owner", "executions_link", "updated_at"]
    list_filter = ["status", "queue"]
    search_fields = ["name", "description"]
    readonly_fields = ["id", "status", "version", "created_at", "updated_at", "ops_links"]
    fields = ["id", "name", "description", "status", "priority", "queue", "metadata", "owner", "version",
              "created_at", "updated_at", "ops_links", "loaded_version"]
    inlines = [StepInline, TriggerInline, VersionInline]
    actions = ["execute_now", "pause", "resume", "duplicate"]
    formfield_overrides = JSON_WIDGET
    change_list_template = "admin/workflows_app/workflow/change_list.html"

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is None:
            fields.append("owner")
        return fields

    # The main form is needed when the inlines are validated together with it.
    def get_form(self, request, obj=None, change=False, **kwargs):
        base = super().get_form(request, obj, change=change, **kwargs)

        class Form(base):
            def __init__(self, *args, **kw):
                super().__init__(*args, **kw)
                request._nexus_main_form = self

        return Form

    def _create_formsets(self, request, obj, change):
        formsets, inline_instances = super()._create_formsets(request, obj, change)
        if request.method == "POST":
            self._validate_definition(request, obj, formsets)
        return formsets, inline_instances

    def _validate_definition(self, request, obj, formsets) -> None:
        main_form = getattr(request, "_nexus_main_form", None)
        step_set = next((f for f in formsets if f.model is Step), None)
        trigger_set = next((f for f in formsets if f.model is Trigger), None)
        if main_form is None or step_set is None or trigger_set is None:
            return
        if main_form.is_valid() and not obj._state.adding:
            current_version = Workflow.objects.filter(pk=obj.pk).values_list("current_version__number", flat=True).first()
            loaded = main_form.cleaned_data.get("loaded_version")
            if loaded is not None and current_version is not None and loaded != current_version:
                # Checked first: a newer version also rewrote the rows the inline forms point at.
                main_form.add_error(None, f"This workflow was changed (now version {current_version}, you loaded "
                                          f"version {loaded}); reload the page and apply your change again.")
                return
        if not main_form.is_valid() or not step_set.is_valid() or not trigger_set.is_valid():
            return  # the forms' own errors first
        step_forms, trigger_forms = _kept_forms(step_set), _kept_forms(trigger_set)
        data = main_form.cleaned_data
        old = {}
        owner = request.user
        if not obj._state.adding:
            current = Workflow.objects.select_related("current_version").filter(pk=obj.pk).first()
            old = current.current_version.definition if current and current.current_version_id else {}
            owner = current.owner if current else None
        old_steps = {s["name"]: s for s in old.get("steps", [])}
        old_triggers = old.get("triggers", [])

        def step_of(form):
            # An untouched row keeps its stored step verbatim (keys the rows do not hold, such as a
            # step's description or `parallel`, survive an admin save).
            if form.instance.pk and _untouched(form) and form.instance.name in old_steps:
                return old_steps[form.instance.name]
            step = _step_from_form(form)
            previous = old_steps.get(step["name"], {})
            if previous.get("description"):
                step["description"] = previous["description"]
            return step

        def trigger_of(form):
            position = form.instance.position
            if form.instance.pk and _untouched(form) and position is not None and position < len(old_triggers):
                return old_triggers[position]
            return _trigger_from_form(form)

        raw = {
            "name": data.get("name", obj.name), "description": data.get("description", obj.description) or "",
            "priority": data.get("priority", obj.priority), "queue": data.get("queue", obj.queue),
            "metadata": data.get("metadata", obj.metadata) or {},
            "steps": [step_of(f) for f in step_forms],
            "triggers": [trigger_of(f) for f in trigger_forms],
        }
        try:
            normalised = definitions.validate_definition(
                raw, workflow_id=str(obj.pk) if obj.pk and not obj._state.adding else None, owner=owner)
        except OperationError as exc:
            errors = exc.details.get("errors") if isinstance(exc.details, dict) else None
            for error in errors or [{"field": "", "message": exc.message}]:
                _show_error(error["field"], error["message"], main_form, step_forms, trigger_forms, step_set, trigger_set)
            return
        request._nexus_definition = normalised

    def save_model(self, request, obj, form, change):
        definition = getattr(request, "_nexus_definition", None)
        if definition is None:  # no inlines posted (e.g. a programmatic save): keep the rows' definition
            definition = {**(obj.current_version.definition if obj.current_version_id else {}),
                          **{k: form.cleaned_data[k] for k in WORKFLOW_FIELDS if k in form.cleaned_data}}
        if not change:
            created = operations.workflow_create(**definition, user=request.user)
            obj.pk = uuid.UUID(created["workflow_id"])
            obj._state.adding = False
            obj.refresh_from_db()  # owner is read-only on the add form: the creator owns it
            return
        current = Workflow.objects.select_related("current_version").get(pk=obj.pk)
        old = current.current_version.definition if current.current_version_id else {}
        updates = {key: definition[key] for key in definitions.UPDATABLE_ROOTS if definition.get(key) != old.get(key)}
        if updates:
            try:
                reply = operations.workflow_update(workflow_id=str(obj.pk), updates=updates, user=request.user,
                                                   expected_version=form.cleaned_data.get("loaded_version"))
            except OperationError as exc:  # changed by someone else since the form was checked
                self.message_user(request, f"Not saved: {exc.message}", messages.ERROR)
                return
            self.message_user(request, f"Saved as version {reply['version']} (changed: {', '.join(reply['changed'])}).")
        if "owner" in form.changed_data:
            owner = form.cleaned_data["owner"]
            operations.workflow_set_owner(workflow_id=str(obj.pk), owner_id=owner.pk if owner else None,
                                          user=request.user)
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        """The rows were rewritten from the stored version by the service; nothing more to save."""
        for formset in formsets:  # what the admin's change message reads after a save
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def delete_model(self, request, obj):
        report(self, request, f"delete {obj.name}", lambda: operations.workflow_delete(workflow_id=str(obj.pk),
                                                                                      user=request.user))

    def delete_queryset(self, request, queryset):
        for workflow in queryset:
            self.delete_model(request, workflow)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "nexus_ops_links": ops_links()})

    @admin.display(description="executions")
    def executions_link(self, obj):
        url = reverse("admin:workflows_app_execution_changelist") + f"?workflow__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, obj.executions.count())

    @admin.display(description="operations")
    def ops_links(self, obj):
        return ops_links_html(obj)

    @admin.action(description="Execute now")
    def execute_now(self, request, queryset):
        for workflow in queryset:
            reply = report(self, request, f"execute {workflow.name}", lambda w=workflow: operations.workflow_execute(
                workflow_id=str(w.pk), trigger="manual", user=request.user, **{"async": True}))
            if reply:
                link = reverse("admin:workflows_app_execution_change", args=[reply["execution_id"]])
                self.message_user(request, format_html('Started <a href="{}">execution {}</a> of {}.', link,
                                                       reply["execution_id"], workflow.name))

    @admin.action(description="Pause")
    def pause(self, request, queryset):
        for workflow in queryset:
            if report(self, request, f"pause {workflow.name}",
                      lambda w=workflow: operations.workflow_pause(workflow_id=str(w.pk), user=request.user)):
                self.message_user(request, f"Paused {workflow.name}.")

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        for workflow in queryset:
            if report(self, request, f"resume {workflow.name}",
                      lambda w=workflow: operations.workflow_resume(workflow_id=str(w.pk), user=request.user)):
                self.message_user(request, f"Resumed {workflow.name}.")

    @admin.action(description="Duplicate")
    def duplicate(self, request, queryset):
        for workflow in queryset:
            definition = workflow.current_version.definition
            name = _free_name(f"{workflow.name}-copy")
            reply = report(self, request, f"duplicate {workflow.name}", lambda d=definition, n=name: operations.workflow_create(
                name=n, steps=d["steps"], triggers=d["triggers"], description=d.get("description", ""),
                priority=d.get("priority", 5), metadata=d.get("metadata"), queue=d.get("queue"), user=request.user))
            if reply:
                self.message_user(request, f"Duplicated {workflow.name} as {reply['name']}.")


def _free_name(base: str) -> str:
    name, n = base, 1
    while Workflow.objects.filter(name=name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def ops_links() -> list[tuple[str, str]]:
    links = [("Flower (Celery monitor)", settings.NEXUS_FLOWER_URL)]
    try:
        links.append(("Beat schedules (periodic tasks)", reverse("admin:django_celery_beat_periodictask_changelist")))
    except NoReverseMatch:
        pass
    try:
        links.append(("Live dashboard", reverse("dashboard")))
    except NoReverseMatch:
        pass
    return links


def ops_links_html(obj=None):
    return format_html_join(" · ", '<a href="{}" target="_blank" rel="noopener">{}</a>',
                            ((url, label) for label, url in ops_links()))


# --- executions ---------------------------------------------------------------------------------


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class StepRunInline(ReadOnlyInline):
    model = StepRun
    fields = ["step_name", "step_type", "attempt", "status", "is_compensation", "queue", "started_at", "duration_s",
              "result", "error_class", "error"]
    readonly_fields = fields
    ordering = ["started_at", "id"]

    @admin.display(description="duration (s)")
    def duration_s(self, obj):
        return f"{obj.duration:.3f}" if obj.duration is not None else "-"


class AuditEventInline(ReadOnlyInline):
    model = AuditEvent
    fields = ["timestamp", "event", "step", "data"]
    readonly_fields = fields
    ordering = ["timestamp", "id"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = ["id", "workflow", "status", "trigger", "test_mode", "current_step", "queued_at", "duration_s"]
    list_filter = ["status", "trigger", "test_mode", "workflow"]
    search_fields = ["id", "workflow__name"]
    date_hierarchy = "queued_at"
    list_select_related = ["workflow"]
    fields = ["id", "workflow", "version_number", "status", "trigger", "trigger_event", "test_mode", "priority",
              "input_data", "context", "current_step", "cursor", "error", "parent", "parent_step", "owner",
              "queued_at", "started_at", "finished_at", "heartbeat_at", "dispatch_count"]
    readonly_fields = fields
    inlines = [StepRunInline, AuditEventInline]
    actions = ["cancel", "retry"]

    @admin.display(description="version")
    def version_number(self, obj):
        return obj.version.number

    @admin.display(description="duration (s)")
    def duration_s(self, obj):
        return f"{obj.duration:.3f}" if obj.duration is not None else "-"

    @admin.action(description="Cancel")
    def cancel(self, request, queryset):
        for execution in queryset:
            if report(self, request, f"cancel {execution.pk}",
                      lambda e=execution: operations.execution_cancel(execution_id=str(e.pk), user=request.user)):
                self.message_user(request, f"Cancelled {execution.pk}.")

    @admin.action(description="Retry from the failed step")
    def retry(self, request, queryset):
        for execution in queryset:
            if report(self, request, f"retry {execution.pk}",
                      lambda e=execution: operations.execution_retry(execution_id=str(e.pk), user=request.user)):
                self.message_user(request, f"Retrying {execution.pk}.")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["timestamp", "event", "workflow", "execution", "step"]
    list_filter = ["event"]
    search_fields = ["event", "step", "execution__id"]
    list_select_related = ["workflow"]
    date_hierarchy = "timestamp"


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "source", "queue_name", "workflow", "step_name", "error_class", "status", "attempts",
                    "redrive_count", "execution_link"]
    list_filter = ["status", "source", "error_class", "queue_name"]
    search_fields = ["error", "step_name", "queue_name"]
    list_select_related = ["workflow"]
    readonly_fields = ["id", "source", "queue_name", "workflow", "execution_link", "step_name", "error_class", "error",
                       "traceback", "payload", "attempts", "status", "redrive_count", "next_attempt_at", "created_at",
                       "updated_at"]
    fields = readonly_fields
    actions = ["redrive"]

    @admin.display(description="execution")
    def execution_link(self, obj):
        return admin_link(obj.execution) if obj.execution_id else "-"

    @admin.action(description="Redrive")
    def redrive(self, request, queryset):
        ids = [str(pk) for pk in queryset.values_list("pk", flat=True)]
        reply = report(self, request, "redrive", lambda: operations.dead_letter_redrive(dead_letter_ids=ids,
                                                                                        user=request.user))
        if reply:
            self.message_user(request, f"Redrove {reply['count']} dead letter(s).")


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "type", "queue", "created_at"]
    search_fields = ["name", "type", "queue"]
    formfield_overrides = JSON_WIDGET


_MessageQueue = getattr(wf_models, "MessageQueue", None)
if _MessageQueue is not None:

    @admin.register(_MessageQueue)
    class MessageQueueAdmin(admin.ModelAdmin):
        list_display = ["name", "kind", "ordering", "max_retries", "visibility_timeout", "message_retention",
                        "batch_size", "deduplication", "max_messages"]
        list_filter = ["kind", "ordering", "deduplication"]
        search_fields = ["name", "description"]
