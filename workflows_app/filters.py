"""List filters (django-filter), applied by the operations so every face filters the same way."""
from __future__ import annotations

import django_filters

from workflows_app.errors import OperationError
from workflows_app.models import DeadLetter, NotificationDelivery, Workflow


class WorkflowFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Workflow.Status.choices)
    name = django_filters.CharFilter(field_name="name", lookup_expr="icontains", max_length=200)
    priority_min = django_filters.NumberFilter(field_name="priority", lookup_expr="gte")
    priority_max = django_filters.NumberFilter(field_name="priority", lookup_expr="lte")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Workflow
        fields: list[str] = []


class DeadLetterFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=DeadLetter.Status.choices)
    error_class = django_filters.CharFilter(max_length=100)
    queue_name = django_filters.CharFilter(max_length=100)
    source = django_filters.ChoiceFilter(choices=[("step", "step"), ("queue", "queue")])
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = DeadLetter
        fields: list[str] = []


class DeliveryFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=NotificationDelivery.Status.choices)
    kind = django_filters.CharFilter(max_length=100)
    channel = django_filters.CharFilter(max_length=100)
    execution_id = django_filters.UUIDFilter(field_name="execution_id")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = NotificationDelivery
        fields: list[str] = []


def apply(filterset_class, queryset, params: dict):
    """Filter `queryset` by the given params (None values ignored); errors name the field."""
    data = {k: v for k, v in params.items() if v not in (None, "")}
    filterset = filterset_class(data=data, queryset=queryset)
    if not filterset.is_valid():
        field, messages = next(iter(filterset.errors.items()))
        raise OperationError("INVALID_INPUT_DATA", f"{field}: {' '.join(messages)}", {"field": field,
                                                                                     "errors": filterset.errors})
    return filterset.qs
