"""The vocabulary a definition is written in: GET /api/v1/step-types/ and /api/v1/trigger-types/.

Read-only, for any authenticated user; the data is the registries' (``workflows_app.schemas``), so a
step type or trigger type a domain app registers is listed with no change here.
"""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from workflows_app import schemas
from workflows_app.api.views import OperationView, errors

PARAMS_SCHEMA = "JSON Schema (2020-12) of the params, with its own $defs."


class RetryReply(serializers.Serializer):
    max_retries = serializers.IntegerField()
    backoff = serializers.FloatField(help_text="First delay, seconds; doubles every attempt.")
    backoff_max = serializers.FloatField()
    jitter = serializers.BooleanField()


class StepTypeReply(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    queue = serializers.CharField(help_text="The Celery queue its steps run on.")
    timeout = serializers.IntegerField(allow_null=True, help_text="Seconds; null: no limit of its own.")
    retry = RetryReply(help_text="The default retry policy (a step's `retry` overrides it).")
    action = serializers.BooleanField(help_text="Usable as a named action of a `conditional` step.")
    params_schema = serializers.JSONField(help_text=PARAMS_SCHEMA)


class StepTypeList(serializers.Serializer):
    success = serializers.BooleanField()
    step_types = StepTypeReply(many=True)
    count = serializers.IntegerField()


class TriggerTypeReply(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    event_kinds = serializers.ListField(child=serializers.CharField(),
                                        help_text="Event kinds it listens to; empty for schedule and manual.")
    params_schema = serializers.JSONField(help_text="JSON Schema (2020-12) of its settings (beside `type`).")


class TriggerTypeList(serializers.Serializer):
    success = serializers.BooleanField()
    trigger_types = TriggerTypeReply(many=True)
    count = serializers.IntegerField()


class StepTypeListView(OperationView):
    @extend_schema(operation_id="step_types", tags=["vocabulary"], responses={200: StepTypeList, **errors()},
                   summary="Every registered step type: description, queue, timeout, retry, params schema")
    def get(self, request):
        return Response(schemas.step_types_reply())


class TriggerTypeListView(OperationView):
    @extend_schema(operation_id="trigger_types", tags=["vocabulary"], responses={200: TriggerTypeList, **errors()},
                   summary="Every registered trigger type: description, event kinds, settings schema")
    def get(self, request):
        return Response(schemas.trigger_types_reply())
