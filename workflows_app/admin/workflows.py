"""The workflow admin: a workflow edited as its Step and Trigger rows, saved through the operations."""
from __future__ import annotations

import uuid

from django.contrib import admin, messages
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from workflows_app import definitions, operations
from workflows_app.admin import run
from workflows_app.admin.common import (
    JSON_WIDGET,
    admin_link,
    apply_to_each,
    ops_links,
    ops_links_html,
    report,
)
from workflows_app.admin.editing import WORKFLOW_FIELDS, validate_inlines
from workflows_app.admin.forms import StepForm, TriggerForm, WorkflowForm
from workflows_app.admin.widgets import SCHEMAS_ELEMENT_ID, param_schemas
from workflows_app.errors import OperationError
from workflows_app.models import Step, Trigger, Workflow, WorkflowVersion
from workflows_app.selectors import schedules as schedule_outlook


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
    readonly_fields = ["last_fired_at", "schedule", "outlook"]
    fields = ["position", "type", "params", "last_fired_at", "schedule", "outlook"]

    @admin.display(description="beat schedule")
    def schedule(self, obj):
        return admin_link(obj.periodic_task) if obj and obj.periodic_task_id else "-"

    @admin.display(description="next firings / today")
    def outlook(self, obj):
        """The next five firings (calendar applied) and why it did not fire today (workflow_status's)."""
        if not obj or not obj.pk or obj.type not in schedule_outlook.SCHEDULE_TYPES:
            return "-"
        upcoming = schedule_outlook.upcoming(obj, obj.workflow)
        today = schedule_outlook.today(obj, obj.workflow) or {}
        why = today.get("not_fired_because") or f"fired {len(today.get('fired', []))} today"
        items = format_html_join("", "<li>{}</li>", ((at,) for at in upcoming)) if upcoming else "none"
        return format_html("<ul style='margin:0'>{}</ul><div>{}</div>", items, why)


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


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    form = WorkflowForm
    list_display = ["name", "status", "priority", "version", "queue", "owner", "executions_link", "updated_at"]
    list_filter = ["status", "queue"]
    search_fields = ["name", "description"]
    readonly_fields = ["id", "status", "version", "created_at", "updated_at", "ops_links", "trigger_states"]
    fields = ["id", "name", "description", "status", "priority", "queue", "metadata", "owner", "version",
              "created_at", "updated_at", "ops_links", "trigger_states", "loaded_version"]
    inlines = [StepInline, TriggerInline, VersionInline]
    actions = ["execute_now", "run_with_input", "pause", "resume", "duplicate"]
    formfield_overrides = JSON_WIDGET
    change_list_template = "admin/workflows_app/workflow/change_list.html"
    change_form_template = "admin/workflows_app/workflow/change_form.html"

    def get_urls(self):
        run_url = path("<path:object_id>/run/", self.admin_site.admin_view(self.run_view),
                       name="workflows_app_workflow_run")
        return [run_url, *super().get_urls()]

    def run_view(self, request, object_id):
        return run.run_view(self, request, object_id)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """The step and trigger forms draw params from these schemas (params_form.js)."""
        context = {**(extra_context or {}), "nexus_param_schemas": param_schemas(),
                   "nexus_param_schemas_id": SCHEMAS_ELEMENT_ID}
        return super().changeform_view(request, object_id, form_url, context)

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
            validate_inlines(request, obj, formsets)
        return formsets, inline_instances

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

    @admin.display(description="trigger state")
    def trigger_states(self, obj):
        """Why a trigger did (not) fire, as workflow_status reports it (the admin is staff-only)."""
        if obj is None or obj.pk is None:
            return "-"
        try:
            reply = operations.workflow_status(workflow_id=str(obj.pk), user=None)
        except OperationError as exc:
            return exc.message
        page = reverse("workflow-view", args=[obj.pk])
        return format_html('{}<a href="{}">workflow page</a>', render_to_string(
            "workflows/trigger_states.html", {"triggers": reply["triggers"]}), page)

    @admin.action(description="Execute now (test mode, no input)")
    def execute_now(self, request, queryset):
        """In test mode, like "Run with input" by default: a real-money run is a deliberate unticking."""
        for workflow in queryset:
            reply = report(self, request, f"execute {workflow.name}",
                           lambda w=workflow: run.start(self, request, w, {"test_mode": True}))
            if reply:
                run.started_message(self, request, workflow, reply, test_mode=True)

    @admin.action(description="Run with input…")
    def run_with_input(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Run with input: select exactly one workflow.", messages.WARNING)
            return None
        return redirect(reverse("admin:workflows_app_workflow_run", args=[queryset.get().pk]))

    @admin.action(description="Pause")
    def pause(self, request, queryset):
        apply_to_each(self, request, queryset, "pause", "Paused", operations.workflow_pause, "workflow_id",
                      lambda w: w.name)

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        apply_to_each(self, request, queryset, "resume", "Resumed", operations.workflow_resume, "workflow_id",
                      lambda w: w.name)

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
