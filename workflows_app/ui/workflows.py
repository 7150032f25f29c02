"""The workflow page: ``/ui/workflows/<id or name>/`` - its steps, and per trigger (and symbol) why it
did or did not fire (workflow_status's trigger states, drawn against their thresholds with Plotly)."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache

from workflows_app import operations
from workflows_app.operations import OperationError


def _chart_rows(triggers: list[dict]) -> list[dict]:
    """Triggers with a measured value and a threshold: value as a share of the threshold (1 = fires)."""
    rows = []
    for t in triggers:
        state = t.get("state") or {}
        if state.get("value") is not None and state.get("threshold"):
            label = f"{t['type']} {t.get('symbol') or ''}".strip() + f" #{t.get('trigger_id')}"
            rows.append({"label": label, "ratio": round(state["value"] / state["threshold"], 4),
                         "value": state["value"], "threshold": state["threshold"], "holds": bool(state.get("holds"))})
    return rows


@never_cache
@login_required(login_url=reverse_lazy("ui-login"))
def workflow_page(request, workflow_id):
    try:
        reply = operations.workflow_status(user=request.user, workflow_id=workflow_id)
    except OperationError as exc:
        if exc.code == "WORKFLOW_NOT_FOUND":
            raise Http404(exc.message) from None
        raise
    return render(request, "workflows/workflow.html", {"workflow": reply, "chart_rows": _chart_rows(reply["triggers"])})
