"""The execution view: ``/ui/executions/<id>/`` (the page), ``.../data.json`` (what it polls every
~2 s while the execution runs) and ``.../action/`` (cancel, retry, re-run; POST with CSRF).

Everything goes through the operations (``execution_timeline``, ``execution_cancel``,
``execution_retry``, ``execution_rerun``): who may see or act is decided there, as for REST and MCP
(staff see every execution, a user their own; another user's is "not found")."""
from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from workflows_app import operations
from workflows_app.operations import OperationError

LOGIN = reverse_lazy("ui-login")
POLL_SECONDS = 2


def _timeline(request, execution_id) -> dict:
    try:
        return operations.execution_timeline(user=request.user, execution_id=str(execution_id))
    except OperationError as exc:
        if exc.code == "EXECUTION_NOT_FOUND":
            raise Http404(exc.message) from None
        raise


@never_cache
@login_required(login_url=LOGIN)
def execution_page(request, execution_id):
    timeline = _timeline(request, execution_id)
    steps = [node["name"] for group in timeline["graph"] for node in group["steps"]]
    head = timeline["execution"]
    # A large input is not put in the form: left empty, the re-run takes this execution's input.
    rerun_input = json.dumps(head["input_data"]["value"], indent=2) if "value" in head["input_data"] else ""
    failed_step = (head["error"] or {}).get("step") if isinstance(head["error"], dict) else None
    return render(request, "executions/execution.html", {
        "timeline": timeline, "head": head, "steps": steps, "poll_seconds": POLL_SECONDS,
        "rerun_input": rerun_input, "default_step": failed_step or (steps[0] if steps else None),
    })


@never_cache
def execution_data(request, execution_id):
    if not (request.user.is_authenticated and request.user.is_active):
        return JsonResponse({"success": False, "error": {"code": "PERMISSION_DENIED", "message": "log in first",
                                                         "details": {}}}, status=401)
    try:
        return JsonResponse(operations.execution_timeline(user=request.user, execution_id=str(execution_id)))
    except OperationError as exc:
        return JsonResponse(exc.as_dict(), status=404 if exc.code == "EXECUTION_NOT_FOUND" else 400)


def _action_arguments(request, action: str) -> dict:
    if action != "rerun":
        return {}
    arguments: dict = {"from_step": request.POST.get("from_step") or None}
    raw = (request.POST.get("input_data") or "").strip()
    if raw:
        try:
            arguments["input_data"] = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise OperationError("INVALID_INPUT_DATA", f"input_data is not JSON: {exc.msg} (line {exc.lineno})",
                                 {"field": "input_data"}) from None
    return arguments


ACTIONS = {"cancel": "execution_cancel", "retry": "execution_retry", "rerun": "execution_rerun"}


@require_POST
@login_required(login_url=LOGIN)
def execution_action(request, execution_id):
    """One operator action, confirmed in the page; the operation checks the permission and the state."""
    action = request.POST.get("action", "")
    if action not in ACTIONS:
        messages.error(request, f"unknown action '{action[:40]}'")
        return redirect("execution-view", execution_id=execution_id)
    try:
        reply = getattr(operations, ACTIONS[action])(user=request.user, execution_id=str(execution_id),
                                                     **_action_arguments(request, action))
    except OperationError as exc:
        if exc.code == "EXECUTION_NOT_FOUND":
            raise Http404(exc.message) from None
        messages.error(request, f"{action} refused: {exc.message}")
        return redirect("execution-view", execution_id=execution_id)
    target = reply.get("execution_id") or str(execution_id)
    messages.success(request, f"{action}: execution {target} is {reply.get('status')}")
    return redirect("execution-view", execution_id=target)
