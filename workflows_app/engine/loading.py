"""Loading a step's message: one query for the execution, its version and workflow, and what the
step's earlier attempts left (the redelivery check), instead of a load and a second SELECT."""
from __future__ import annotations

from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce

from workflows_app.engine.outcomes import StaleMessage
from workflows_app.models import Execution, StepRun

S = Execution.Status


def load_step(execution_id, generation: int, step_index: int) -> Execution:
    """The execution with its version and workflow, and what earlier attempts of this step left, in
    one query: ``prior_status`` (the latest attempt that succeeded, was skipped or is waiting for its
    child) and ``prior_attempts`` (how many attempts there were). Within an execution a step's index
    names it (its version is fixed), and every attempt of a step records it."""
    runs = StepRun.objects.filter(execution=OuterRef("pk"), step_index=step_index, is_compensation=False)
    settled = runs.filter(status__in=(StepRun.Status.SUCCEEDED, StepRun.Status.SKIPPED, StepRun.Status.WAITING))
    counted = runs.order_by().values("execution").annotate(n=Count("pk")).values("n")
    try:
        execution = (Execution.objects.select_related("version", "workflow")
                     .annotate(prior_status=Subquery(settled.order_by("-id").values("status")[:1]),
                               prior_attempts=Coalesce(Subquery(counted), 0))
                     .get(pk=execution_id))
    except Execution.DoesNotExist:
        raise StaleMessage("execution deleted") from None
    if execution.dispatch_count != generation or execution.status not in (S.QUEUED, S.RUNNING):
        raise StaleMessage(f"execution {execution_id} is {execution.status}, generation {execution.dispatch_count}")
    return execution
