"""The workflow admin's "Run with input" form: it starts one execution through ``workflow_execute``.

The test mode box is ticked by default: a run from the admin is a test unless the operator unticks
it. It decides ``input_data.test_mode`` (which the engine fixes on the execution at start); an
``input_data.test_mode`` that disagrees with the box is refused rather than guessed at.
"""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from workflows_app import operations
from workflows_app.admin.common import execution_link
from workflows_app.errors import OperationError

MAX_INPUT_CHARS = 64 * 1024


class RunForm(forms.Form):
    input_data = forms.JSONField(
        required=False, initial=dict, widget=forms.Textarea(attrs={"rows": 8, "cols": 80}),
        help_text='A JSON object: the execution\'s input, e.g. {"symbols": ["AAPL"]}.')
    test_mode = forms.BooleanField(
        required=False, initial=True, label="Test mode",
        help_text="On: a test run. Sets input_data.test_mode, fixed on the execution and honoured by the domain's "
                  "steps (trading: simulated market data and news, the paper broker).")

    def clean_input_data(self):
        if len(self.data.get(self.add_prefix("input_data"), "")) > MAX_INPUT_CHARS:
            raise forms.ValidationError(f"at most {MAX_INPUT_CHARS} characters of JSON")
        value = self.cleaned_data.get("input_data")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError('must be a JSON object, e.g. {"symbols": ["AAPL"]}')
        return value

    def clean(self):
        data = super().clean()
        given = (data.get("input_data") or {}).get("test_mode")
        if given is not None and given != data.get("test_mode"):
            self.add_error("input_data", "test_mode: the Test mode box sets it; remove it here or make the box agree")
        return data

    def input(self) -> dict:
        return {**self.cleaned_data["input_data"], "test_mode": self.cleaned_data["test_mode"]}


def start(modeladmin, request, workflow, input_data: dict) -> dict:
    """Start one execution of `workflow` via the operation; raises OperationError as it does."""
    return operations.workflow_execute(workflow_id=str(workflow.pk), input_data=input_data, trigger="manual",
                                       user=request.user, **{"async": True})


def started_message(modeladmin, request, workflow, reply: dict, test_mode: bool) -> None:
    mode = "test mode" if test_mode else "test mode OFF"
    modeladmin.message_user(request, format_html("Started {} of {} ({}).", execution_link(reply["execution_id"]),
                                                 workflow.name, mode))


def run_view(modeladmin, request, object_id):
    """GET: the form; POST: start the execution, then back to the workflow with a link to it."""
    workflow = modeladmin.get_object(request, object_id)
    if workflow is None:
        raise Http404("no such workflow")
    if not modeladmin.has_view_permission(request, workflow):
        raise PermissionDenied
    form = RunForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            reply = start(modeladmin, request, workflow, form.input())
        except OperationError as exc:
            field = str((exc.details or {}).get("field", "")) if isinstance(exc.details, dict) else ""
            form.add_error("input_data" if field.startswith("input_data") else None,
                           f"{field + ': ' if field else ''}{exc.message}")
        else:
            started_message(modeladmin, request, workflow, reply, form.cleaned_data["test_mode"])
            return redirect(reverse("admin:workflows_app_workflow_change", args=[workflow.pk]))
    if request.method == "POST" and form.errors:
        modeladmin.message_user(request, "Not started: see the errors below.", messages.ERROR)
    context = {**modeladmin.admin_site.each_context(request), "title": f"Run {workflow.name}", "form": form,
               "workflow": workflow, "opts": modeladmin.model._meta, "original": workflow,
               "media": modeladmin.media + form.media}
    return TemplateResponse(request, "admin/workflows_app/workflow/run.html", context)
